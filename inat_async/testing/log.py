"""What the fake server saw: one record per request, and counters derived from them.

Tests assert on these: "no photo was delivered twice", "API requests were a second
apart", "the cut-off fetch was retried". Times come from the server's clock (by default
its event loop's, i.e. ``time.monotonic()`` unless a test patches the loop's time).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

RequestKind = Literal["api", "photo", "placeholder", "other"]
#: complete: the whole body was written; cut: a TRUNCATED fault closed it early;
#: reset: closed before any answer; aborted: the client went away first.
Outcome = Literal["pending", "complete", "cut", "reset", "aborted"]


@dataclass(slots=True)
class RequestRecord:
    seq: int
    method: str
    path: str
    query: str
    kind: RequestKind
    started: float
    photo_id: int | None = None
    size: str | None = None
    status: int | None = None
    #: The FaultKind value that spoiled this request ("throttled" for the throttle's 429).
    fault: str | None = None
    outcome: Outcome = "pending"
    bytes_sent: int = 0
    content_length: int | None = None
    finished: float | None = None
    user_agent: str | None = None
    #: The credentials the request carried: which hosts get them is a test's business.
    authorization: str | None = None
    cookie: str | None = None

    @property
    def params(self) -> dict[str, str]:
        """The query parameters (the last value wins when one repeats)."""
        return dict(parse_qsl(self.query, keep_blank_values=True))

    @property
    def delivered(self) -> bool:
        """A whole, genuine answer: complete, unspoiled (a stall only delays) and successful."""
        genuine = self.fault is None or self.fault == "stall"
        return self.outcome == "complete" and genuine and self.status in (200, 206)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FetchCounts:
    """How the fetches of one photo size went."""

    delivered: int = 0
    cut: int = 0
    faulted: int = 0
    aborted: int = 0

    @property
    def total(self) -> int:
        return self.delivered + self.cut + self.faulted + self.aborted


class RequestLog:
    """Thread-safe list of :class:`RequestRecord`, with the questions tests ask of it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def open(self, record: RequestRecord) -> RequestRecord:
        with self._lock:
            record.seq = len(self._records)
            self._records.append(record)
        return record

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.records())

    def records(self, kind: RequestKind | None = None) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self._records if kind is None or r.kind == kind]

    def api_requests(self, path: str | None = None) -> list[RequestRecord]:
        """API requests, optionally only those whose path starts with ``path``."""
        return [r for r in self.records("api") if path is None or r.path.startswith(path)]

    def api_times(self, path: str | None = None) -> list[float]:
        """Arrival times of API requests, in order: for pacing assertions."""
        return [r.started for r in self.api_requests(path)]

    def photo_requests(self, photo_id: int | None = None) -> list[RequestRecord]:
        records = self.records("photo")
        return [r for r in records if photo_id is None or r.photo_id == photo_id]

    def photo_fetches(self, photo_id: int, size: str | None = None) -> FetchCounts:
        """Counts for one photo (all sizes together unless ``size``)."""
        counts = self.photo_stats()
        keys = [key for key in counts if key[0] == photo_id and (size is None or key[1] == size)]
        return FetchCounts(
            delivered=sum(counts[k].delivered for k in keys),
            cut=sum(counts[k].cut for k in keys),
            faulted=sum(counts[k].faulted for k in keys),
            aborted=sum(counts[k].aborted for k in keys),
        )

    def photo_stats(self) -> dict[tuple[int, str], FetchCounts]:
        """``{(photo id, size): FetchCounts}`` over every photo request so far."""
        tallies: dict[tuple[int, str], Counter[str]] = {}
        for record in self.records("photo"):
            if record.photo_id is None or record.size is None:
                continue
            tally = tallies.setdefault((record.photo_id, record.size), Counter())
            if record.delivered:
                tally["delivered"] += 1
            elif record.outcome == "cut":
                tally["cut"] += 1
            elif record.outcome == "aborted":
                tally["aborted"] += 1
            else:
                tally["faulted"] += 1
        return {
            key: FetchCounts(t["delivered"], t["cut"], t["faulted"], t["aborted"])
            for key, t in tallies.items()
        }

    def delivered_photos(self) -> Counter[tuple[int, str]]:
        """How many times each (photo id, size) was delivered whole."""
        return Counter(
            (r.photo_id, r.size)
            for r in self.records("photo")
            if r.delivered and r.photo_id is not None and r.size is not None
        )

    def refetched_photos(self) -> dict[tuple[int, str], int]:
        """Photos delivered whole more than once: wasted bandwidth, and a resume bug."""
        return {key: n for key, n in self.delivered_photos().items() if n > 1}

    def bytes_sent(self, kind: RequestKind | None = "photo") -> int:
        return sum(r.bytes_sent for r in self.records(kind))

    def summary(self) -> dict[str, Any]:
        records = self.records()
        return {
            "requests": len(records),
            "api_requests": sum(r.kind == "api" for r in records),
            "photo_requests": sum(r.kind == "photo" for r in records),
            "photos_delivered": sum(r.kind == "photo" and r.delivered for r in records),
            "placeholder_requests": sum(r.kind == "placeholder" for r in records),
            "faults": dict(Counter(r.fault for r in records if r.fault)),
            "photo_bytes": sum(r.bytes_sent for r in records if r.kind == "photo"),
            "refetched_photos": len(self.refetched_photos()),
        }
