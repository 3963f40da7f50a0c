"""Fault plans: which requests the fake server answers badly, and how.

Prefer exact plans, so a test knows what happens::

    faults.fail_photo(photo_id, FaultKind.TRUNCATED, times=2)   # first two fetches cut off
    faults.fail_api(FaultKind.TOO_MANY_REQUESTS, skip=3)        # the 4th API request gets 429

Random faults are seeded, and decided per (path, attempt number), so the same attempt of
the same URL fails whatever order concurrent workers ask in::

    faults.randomly(FaultKind.SERVICE_UNAVAILABLE, 0.1, seed=1)

Rules are tried in the order they were added; the first one that fires answers the
request. A :class:`Faults` is safe to change from any thread while the server runs.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal

Target = Literal["api", "photo", "any"]


class FaultKind(StrEnum):
    SERVICE_UNAVAILABLE = "503"
    """HTTP 503 with an HTML body (a load balancer's page; S3 XML "SlowDown" for /s3)."""
    TOO_MANY_REQUESTS = "429"
    """HTTP 429 with Retry-After in seconds and a non-JSON body: Varnish answers it."""
    SERVER_ERROR = "500"
    """HTTP 500: ``{"error": "Error", "status": 500}`` from the API, XML from S3."""
    NOT_FOUND = "404"
    """HTTP 404: JSON from the API, S3 XML "NoSuchKey" for photos."""
    TRUNCATED = "truncated"
    """The right status and Content-Length, then the connection closes mid-body."""
    RESET = "reset"
    """The connection closes before any response."""
    HTML_PAGE = "html"
    """HTTP 200 with an HTML error page (text/html) instead of the image or JSON."""
    S3_XML = "s3_xml"
    """An S3-style XML error document (status 403 unless ``status`` says otherwise)."""
    MALFORMED_JSON = "bad_json"
    """HTTP 200, application/json, complete Content-Length, but the JSON does not parse."""
    WRONG_SHAPE = "wrong_shape"
    """HTTP 200 with valid JSON that is not a result page (no ``results`` list)."""
    DEEP_JSON = "deep_json"
    """HTTP 200, a result page whose ``results`` nest arrays deeper than any JSON parser's
    recursion limit (hostile or broken: Python's ``json`` raises ``RecursionError``)."""
    STALL = "stall"
    """Wait ``delay`` seconds, then answer normally: for client timeouts."""
    ENDLESS = "endless"
    """HTTP 200, the genuine content type, no Content-Length, and a body that never ends
    (the genuine head, then filler until the client hangs up, or ``length`` bytes)."""
    HUGE_LENGTH = "huge_length"
    """HTTP 200 announcing ``length`` bytes in Content-Length; the genuine body, then close."""
    SHORT_LENGTH = "short_length"
    """HTTP 200 whose Content-Length announces ``cut_at`` of the body, and only that much
    follows: a lying length that a client reading to the length takes as complete."""
    TRICKLE = "trickle"
    """HTTP 200 with the genuine headers, then the body one byte every ``delay`` seconds."""
    NOT_AN_IMAGE = "not_an_image"
    """HTTP 200 announcing the genuine image type and length; the body is ``length`` bytes
    of 0xFF (the genuine length when ``length`` is None) or the HTML page of a portal."""
    REDIRECT = "redirect"
    """HTTP 302 to ``location`` (``file://...``, ``ftp://...``), or to the same URL again
    when ``location`` is None: an endless chain."""
    GZIP_BOMB = "gzip_bomb"
    """HTTP 200, ``Content-Encoding: gzip``: a small body that inflates to ``inflated``
    bytes of JSON-looking whitespace."""


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a rule may match on."""

    kind: Literal["api", "photo", "placeholder", "other"]
    path: str
    photo_id: int | None = None
    size: str | None = None
    #: The raw query string (``taxon_id=1&...``).
    query: str = ""


@dataclass(slots=True)
class FaultRule:
    """One fault plan. Build them with the :class:`Faults` helpers."""

    kind: FaultKind
    target: Target = "any"
    #: Matches request paths starting with this, e.g. "/v1/observations".
    path: str | None = None
    #: Matches requests whose query string holds this, e.g. "taxon_id=47219&" (one
    #: species' searches, whatever order concurrent walks ask in).
    query: str | None = None
    photo_id: int | None = None
    #: Photo size ("medium", ...); None matches every size.
    size: str | None = None
    #: How many requests to spoil; None spoils every matching request.
    times: int | None = 1
    #: Let this many matching requests through before spoiling any.
    skip: int = 0
    probability: float = 1.0
    seed: int = 0
    #: Status of the faulty answer, when the kind allows a choice (S3_XML, HTML_PAGE, ...).
    status: int | None = None
    #: Retry-After header value (seconds) of a 429.
    retry_after: int = 1
    #: Seconds a STALL waits before answering.
    delay: float = 30.0
    #: Share of the body a TRUNCATED answer sends before closing.
    cut_at: float = 0.5
    #: Bytes of an ENDLESS body, HUGE_LENGTH's announced length, NOT_AN_IMAGE's body.
    length: int | None = None
    #: NOT_AN_IMAGE: send an HTML page instead of 0xFF bytes.
    html: bool = False
    #: Where a REDIRECT points; None points back at the request's own URL.
    location: str | None = None
    #: Decompressed size of a GZIP_BOMB.
    inflated: int = 64 * 2**20
    matched: int = 0
    fired: int = 0
    _attempts: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def applies_to(self, ctx: RequestContext) -> bool:
        if self.target == "api" and ctx.kind != "api":
            return False
        if self.target == "photo" and ctx.kind != "photo":
            return False
        if self.path is not None and not ctx.path.startswith(self.path):
            return False
        if self.query is not None and self.query not in ctx.query:
            return False
        if self.photo_id is not None and ctx.photo_id != self.photo_id:
            return False
        return self.size is None or ctx.size == self.size

    def decide(self, ctx: RequestContext) -> bool:
        """Count a matching request and say whether this rule spoils it."""
        self.matched += 1
        attempt = self._attempts.get(ctx.path, 0)
        self._attempts[ctx.path] = attempt + 1
        if self.matched <= self.skip or self.exhausted:
            return False
        if (
            self.probability < 1.0
            and _chance(self.seed, self.kind, ctx.path, attempt) >= self.probability
        ):
            return False
        self.fired += 1
        return True

    def describe(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_attempts")
        data["kind"] = str(self.kind)
        return data


def _chance(seed: int, kind: str, path: str, attempt: int) -> float:
    raw = hashlib.blake2b(f"{seed}|{kind}|{path}|{attempt}".encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big") / 2**64


class Faults:
    """The server's fault plans; add and clear them at any time, from any thread."""

    def __init__(self, rules: list[FaultRule] | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = list(rules or [])

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def remove(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]

    def fail_photo(
        self,
        photo_id: int,
        kind: FaultKind | str,
        *,
        times: int | None = 1,
        size: str | None = None,
        skip: int = 0,
        status: int | None = None,
        cut_at: float = 0.5,
        retry_after: int = 1,
        delay: float = 30.0,
        length: int | None = None,
        html: bool = False,
    ) -> FaultRule:
        """Spoil the next ``times`` fetches of one photo (any size unless ``size``)."""
        return self.add(
            FaultRule(
                FaultKind(kind),
                "photo",
                photo_id=photo_id,
                size=size,
                times=times,
                skip=skip,
                status=status,
                cut_at=cut_at,
                retry_after=retry_after,
                delay=delay,
                length=length,
                html=html,
            )
        )

    def fail_api(
        self,
        kind: FaultKind | str,
        *,
        times: int | None = 1,
        path: str | None = None,
        query: str | None = None,
        skip: int = 0,
        status: int | None = None,
        cut_at: float = 0.5,
        retry_after: int = 1,
        delay: float = 30.0,
    ) -> FaultRule:
        """Spoil the next ``times`` API requests (only those under ``path`` whose query
        string holds ``query``, if given)."""
        return self.add(
            FaultRule(
                FaultKind(kind),
                "api",
                path=path,
                query=query,
                times=times,
                skip=skip,
                status=status,
                cut_at=cut_at,
                retry_after=retry_after,
                delay=delay,
            )
        )

    def fail_path(
        self,
        path: str,
        kind: FaultKind | str,
        *,
        times: int | None = 1,
        skip: int = 0,
        status: int | None = None,
        cut_at: float = 0.5,
        retry_after: int = 1,
    ) -> FaultRule:
        """Spoil requests whose path starts with ``path``, API or photo alike."""
        return self.add(
            FaultRule(
                FaultKind(kind),
                "any",
                path=path,
                times=times,
                skip=skip,
                status=status,
                cut_at=cut_at,
                retry_after=retry_after,
            )
        )

    def randomly(
        self,
        kind: FaultKind | str,
        probability: float,
        *,
        target: Target = "photo",
        seed: int = 0,
        times: int | None = None,
        status: int | None = None,
        retry_after: int = 1,
    ) -> FaultRule:
        """Spoil each matching request with ``probability``, reproducibly for a ``seed``."""
        return self.add(
            FaultRule(
                FaultKind(kind),
                target,
                probability=probability,
                seed=seed,
                times=times,
                status=status,
                retry_after=retry_after,
            )
        )

    def redirect(
        self,
        location: str | None = None,
        *,
        target: Target = "any",
        path: str | None = None,
        photo_id: int | None = None,
        times: int | None = None,
        status: int = 302,
    ) -> FaultRule:
        """Redirect matching requests to ``location`` (None: to themselves, endlessly)."""
        return self.add(
            FaultRule(
                FaultKind.REDIRECT,
                target,
                path=path,
                photo_id=photo_id,
                times=times,
                status=status,
                location=location,
            )
        )

    def gzip_bomb(
        self,
        inflated: int = 64 * 2**20,
        *,
        target: Target = "api",
        path: str | None = None,
        times: int | None = None,
    ) -> FaultRule:
        """Answer matching requests with a gzip body that inflates to ``inflated`` bytes."""
        return self.add(
            FaultRule(FaultKind.GZIP_BOMB, target, path=path, times=times, inflated=inflated)
        )

    def pick(self, ctx: RequestContext) -> FaultRule | None:
        """The rule that spoils this request, if any (and count it as fired)."""
        with self._lock:
            for rule in self._rules:
                if rule.applies_to(ctx) and rule.decide(ctx):
                    return rule
        return None
