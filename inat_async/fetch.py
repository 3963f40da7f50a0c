"""Streaming one photo to disk: reserve its bytes, stream to a temporary file, rename into place.

A file under its final name is always complete: bytes go to a ``.part`` file next
to the target, and ``os.replace`` moves it into place only when the whole body
arrived, with an image content type and the announced length. Anything else
removes the ``.part`` file and becomes a :class:`PhotoError` (a failed photo is
data, recorded by the pipeline; it is not an :class:`~inat_async.errors.InatError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ParamSpec, TypeVar

import aiohttp
from aiofiles.threadpool.binary import AsyncBufferedIOBase

from .errors import StorageError
from .events import EventCallback, ignore, wait_reporter
from .limits import Limits, Reservation
from .retry import RetryPolicy, parse_retry_after

#: Most bytes taken from the response at once.
CHUNK = 256 * 1024
#: Bytes a download holds before writing them out: a photo up to this size is written
#: with one call, a larger one in pieces of this size, so memory stays near
#: ``workers x WRITE_BUFFER`` whatever the photo size.
WRITE_BUFFER = 1024 * 1024
#: Writes up to this size run in place: copying them to the page cache costs less than
#: handing them to a thread (a round trip and the GIL changing hands: 0.1 to 0.3 ms of
#: CPU per photo on a 2-core machine). Bigger ones go to the default executor, so the
#: event loop never stalls long on a slow disk.
IN_PLACE_WRITE = 256 * 1024

_P = ParamSpec("_P")
_T = TypeVar("_T")

CONTENT_TYPE_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/pjpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/heic": "heic",
    "image/tiff": "tif",
}
#: Every extension a photo without one in its URL can be saved with.
SAVED_EXTENSIONS = tuple(sorted(set(CONTENT_TYPE_EXTENSIONS.values())))


class PhotoError(Exception):
    """One photo could not be downloaded; ``missing`` when the server no longer has it."""

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        missing: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.missing = missing
        self.retry_after = retry_after
        #: Bytes that crossed the network before the failure: they count against the budget.
        self.received = 0


@dataclass(frozen=True, slots=True)
class Fetched:
    path: Path
    bytes: int
    sha256: str
    content_type: str


def extension_for(content_type: str) -> str:
    return CONTENT_TYPE_EXTENSIONS.get(content_type, "jpg")


class PhotoFetcher:
    """Downloads photos with retries, under the shared byte ledger."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        limits: Limits,
        retry: RetryPolicy | None = None,
        on_event: EventCallback = ignore,
        estimate: int = 100_000,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        self._session = session
        self._limits = limits
        self._retry = retry or RetryPolicy()
        self._on_wait = wait_reporter(on_event)
        self._timeout = timeout or aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
        self._rng = random.Random()
        # A running mean of real sizes makes reservations close to the truth.
        self._mean = float(estimate)
        self._seen = 0

    @property
    def estimate(self) -> int:
        return max(1, round(self._mean))

    def _learn(self, nbytes: int) -> None:
        self._seen += 1
        self._mean += (nbytes - self._mean) / min(self._seen, 50)

    async def download(self, url: str, part: Path, target: Callable[[str], Path]) -> Fetched:
        """Fetch ``url`` into ``part``, then rename it to ``target(content_type)``."""
        last: PhotoError | None = None
        for attempt in range(self._retry.attempts):
            reservation = await self._limits.reserve(self.estimate, on_wait=self._on_wait)
            try:
                body = await self._receive(url, part, reservation)
            except PhotoError as exc:
                reservation.release(received=exc.received)
                if not exc.retryable:
                    raise
                last = exc
                wait = exc.retry_after
            except BaseException:
                reservation.release()  # charges what arrived; _receive removed the part file
                raise
            else:
                reservation.commit(body.received)
                self._learn(body.received)
                return await body.finish(target)
            if attempt + 1 < self._retry.attempts:
                await asyncio.sleep(
                    wait if wait is not None else self._retry.delay(attempt, self._rng)
                )
        assert last is not None
        raise PhotoError(f"{last.reason} (after {self._retry.attempts} attempts)", retryable=True)

    async def _receive(self, url: str, part: Path, reservation: Reservation) -> _Body:
        """The whole body, checked: at most its last ``WRITE_BUFFER`` bytes still in memory."""
        body = _Body(part)
        try:
            async with self._session.get(url, timeout=self._timeout) as response:
                _check_status(response)
                content_type = response.content_type.lower()
                if not content_type.startswith("image/"):
                    raise PhotoError(
                        f"the server sent {content_type or 'no content type'}, not an image",
                        retryable=True,
                    )
                body.content_type = content_type
                expected = response.content_length
                async for chunk in response.content.iter_chunked(CHUNK):
                    reservation.add_received(len(chunk))
                    if body.add(chunk):
                        await body.flush()
                if expected is not None and body.received != expected:
                    raise PhotoError(
                        f"the body was cut off ({body.received} of {expected} bytes)",
                        retryable=True,
                    )
                if body.received == 0:
                    raise PhotoError("the server sent an empty body", retryable=True)
                return body
        except BaseException as exc:
            body.discard()
            if isinstance(exc, PhotoError):
                exc.received = body.received
                raise
            if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
                reason = f"the body was cut off ({body.received} bytes): {exc}"
            elif isinstance(exc, TimeoutError):
                reason = "timed out"
            elif isinstance(exc, aiohttp.ClientError):
                reason = f"{type(exc).__name__}: {exc}"
            elif isinstance(exc, OSError):
                raise StorageError(f"cannot write {part.parent}: {exc.strerror}") from exc
            else:
                raise
            error = PhotoError(reason, retryable=True)
            error.received = body.received
            raise error from exc


class _Body:
    """A photo body on its way to its ``.part`` file.

    Bytes are hashed as they arrive and held until ``WRITE_BUFFER`` of them are pending,
    so a typical photo is written with one ``write``: in place when it is small (see
    :data:`IN_PLACE_WRITE`), else in the executor, where the cost of a thread round trip
    is then paid once per megabyte, not once per chunk and per file operation. Opening,
    closing and renaming are quick metadata calls made in place, like the resume store's
    commits.
    """

    __slots__ = (
        "_chunks",
        "_digest",
        "_handle",
        "buffered",
        "content_type",
        "part",
        "received",
    )

    def __init__(self, part: Path) -> None:
        self.part = part
        self.content_type = ""
        self.received = 0
        self.buffered = 0
        self._chunks: list[bytes] = []
        self._digest = hashlib.sha256()
        self._handle: BinaryIO | None = None

    def add(self, chunk: bytes) -> bool:
        """Take one chunk; True when ``WRITE_BUFFER`` bytes are pending (flush them)."""
        self._digest.update(chunk)
        self._chunks.append(chunk)
        self.received += len(chunk)
        self.buffered += len(chunk)
        return self.buffered >= WRITE_BUFFER

    async def flush(self) -> None:
        if self._handle is None:
            self._handle = self.part.open("wb")  # closed by finish() or discard()
        executor = _IN_PLACE if self.buffered <= IN_PLACE_WRITE else None
        file = AsyncBufferedIOBase(self._handle, loop=None, executor=executor)
        chunks, self._chunks, self.buffered = self._chunks, [], 0
        await file.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    async def finish(self, target: Callable[[str], Path]) -> Fetched:
        """Write what is left, close the file and rename it to ``target(content_type)``."""
        final = self.part
        try:
            final = target(self.content_type)
            if self._chunks or self._handle is None:
                await self.flush()
            handle, self._handle = self._handle, None
            assert handle is not None
            handle.close()
            self.part.replace(final)
        except OSError as exc:
            self.discard()
            raise StorageError(f"cannot write {final}: {exc.strerror}") from exc
        except BaseException:
            self.discard()
            raise
        return Fetched(final, self.received, self._digest.hexdigest(), self.content_type)

    def discard(self) -> None:
        """Close and delete the part file. A write still running in the executor finishes
        first (closing waits for it), so nothing is written after this returns."""
        self._chunks = []
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()
        with contextlib.suppress(FileNotFoundError):
            self.part.unlink()


class _InPlace(Executor):
    """An executor that runs each call at once, in the calling thread."""

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # delivered to the awaiting task, as from a thread
            future.set_exception(exc)
        return future


_IN_PLACE = _InPlace()


def _check_status(response: aiohttp.ClientResponse) -> None:
    status = response.status
    if status == 200:
        return
    if status in (404, 410):
        raise PhotoError(
            f"HTTP {status}: the server no longer has this photo", retryable=False, missing=True
        )
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise PhotoError(f"HTTP {status}", retryable=True, retry_after=retry_after)
    raise PhotoError(f"HTTP {status}", retryable=status in (403, 408))


def remove_stale_parts(folder: Path) -> int:
    """Delete ``.part`` files that no living process is writing; returns how many."""
    removed = 0
    if not folder.is_dir():
        return 0
    for part in folder.glob(".*.part"):
        pid = _pid_of(part)
        if pid is not None and pid != os.getpid() and _alive(pid):
            continue
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
            removed += 1
    return removed


def part_name(observation_id: int, position: int) -> str:
    # The pid lets a later run tell a dead run's leftovers from a live run's work.
    return f".{observation_id}_{position}.{os.getpid()}.part"


def _pid_of(part: Path) -> int | None:
    pieces = part.name.split(".")
    return int(pieces[-2]) if len(pieces) >= 3 and pieces[-2].isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
