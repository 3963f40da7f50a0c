"""Streaming one photo to disk: reserve its bytes, stream to a temporary file, rename into place.

A file under its final name is always complete: bytes go to a ``.part`` file next
to the target, and ``os.replace`` moves it into place only when the whole body
arrived, with the announced length, and is an image of the announced type (see
:mod:`inat_async.photocheck`). Anything else removes the ``.part`` file and becomes a
:class:`PhotoError` (a failed photo is data, recorded by the pipeline; it is not an
:class:`~inat_async.errors.InatError`), except a folder that cannot take files at all
(a full disk, a read-only folder): that is a :class:`StorageError` and stops the run.

Fetching and saving are two steps: :meth:`PhotoFetcher.receive` returns a checked body
(:class:`Received`), whose :meth:`~Received.save` does the file work (hash, open, write,
close, rename) in one hop to a thread through ``aiofiles``, so a worker fetches its next
photo while the last one goes to disk. The file work runs on a :class:`PhotoFiles`: the
seam where tests put a full disk or a failing file system, as httpx takes a
``transport=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import hashlib
import io
import os
import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

import aiofiles.os
import aiohttp

from .errors import StorageError
from .events import EventCallback, ignore, wait_reporter
from .limits import Limits, Reservation
from .photocheck import TAIL_BYTES, check_image
from .retry import RetryPolicy, parse_retry_after
from .urls import redirect_failure

#: Most bytes taken from the response at once.
CHUNK = 256 * 1024
#: Bytes a download holds before writing them out: a photo up to this size is written in
#: one hop to a thread (open, write, close, rename), a larger one in pieces of this size,
#: so memory stays near ``workers x WRITE_BUFFER`` whatever the photo size.
WRITE_BUFFER = 1024 * 1024
#: Most bytes a photo of each size may have: a few times the largest real one (iNaturalist
#: re-encodes every size; originals are at most 2048 pixels on their long side). A body
#: over the cap, announced or streamed, fails its photo, so an endless body cannot fill
#: the disk or overrun a byte budget by more than this per photo in flight.
MAX_PHOTO_BYTES = {
    "square": 1_000_000,
    "thumb": 1_000_000,
    "small": 2_000_000,
    "medium": 8_000_000,
    "large": 25_000_000,
    "original": 100_000_000,
}
#: The longest ``Retry-After`` a photo host may ask for: the worker waits that long at most;
#: a longer one fails the photo at once with the wait it asked for (a rerun tries again).
MAX_PHOTO_RETRY_AFTER = 300.0
#: Every download may take this long, plus the time its size needs at :data:`MIN_RATE`: a
#: body that trickles (a byte a minute keeps a socket's read timeout from firing) ends.
BASE_TIMEOUT = 60.0
#: Bytes per second below which a photo is abandoned, averaged over the whole download.
MIN_RATE = 2_000

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
#: Errors of one photo's own path (a directory squatting on its name, a name the file
#: system refuses, a link where the file goes): that photo fails, the run goes on. Any
#: other ``OSError`` means the folder cannot take files and stops the run.
PER_PHOTO_ERRNOS = frozenset(
    {errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL, errno.EFBIG}
)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)


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
    #: The saved image's own (width, height), read from its header; None if unknown.
    dimensions: tuple[int, int] | None = None


def extension_for(content_type: str) -> str:
    return CONTENT_TYPE_EXTENSIONS.get(content_type, "jpg")


class PartHandle(Protocol):
    """What a part file is written through (any binary file object will do)."""

    def write(self, data: bytes | memoryview, /) -> int | None: ...

    def close(self) -> None: ...


class _FdFile:
    """A bare file descriptor: bodies are written in large pieces, so a buffered file
    object buys nothing, and opening one costs three more system calls (fstat, isatty,
    lseek), each a round trip of the GIL between a file thread and the loop's."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, data: bytes | memoryview, /) -> int:
        return os.write(self._fd, data)

    def close(self) -> None:
        os.close(self._fd)


class PhotoFiles:
    """The file system photos are written to; every method runs in a worker thread.

    The default writes to the local disk. Tests pass a subclass to :class:`PhotoFetcher`
    (or ``files=`` to :func:`~inat_async.download_all`) to simulate a full disk or a
    failing file system without touching the real one.
    """

    def create(self, path: Path) -> PartHandle:
        """A new file at ``path``, opened for writing. Never follows a link and never
        reuses an existing file, so nothing lands outside the folder through a link."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | _BINARY
        fd = os.open(path, flags, 0o666)  # the umask decides, as for any file the user makes
        return _FdFile(fd)

    def read(self, path: Path) -> BinaryIO:
        """A file written by :meth:`create`, opened for reading (to check its header)."""
        return path.open("rb")

    def replace(self, source: Path, target: Path) -> None:
        """Move ``source`` to ``target`` atomically (a link at ``target`` is replaced,
        never followed)."""
        source.replace(target)

    def remove(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


LOCAL_FILES = PhotoFiles()


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
        files: PhotoFiles | None = None,
        max_bytes: int = MAX_PHOTO_BYTES["original"],
        base_timeout: float = BASE_TIMEOUT,
        min_rate: float = MIN_RATE,
        max_retry_after: float = MAX_PHOTO_RETRY_AFTER,
        executor: Executor | None = None,
    ) -> None:
        self._session = session
        self._limits = limits
        self._retry = retry or RetryPolicy()
        self._on_wait = wait_reporter(on_event)
        self._timeout = timeout or aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
        self._files = files or LOCAL_FILES
        self._max_bytes = max_bytes
        self._base_timeout = base_timeout
        self._min_rate = min_rate
        self._max_retry_after = max_retry_after
        #: The threads of the file work (see :mod:`inat_async.disk`); None: the loop's own.
        self._executor = executor
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
        return await (await self.receive(url, part, target)).save()

    async def receive(self, url: str, part: Path, target: Callable[[str], Path]) -> Received:
        """Fetch ``url``, retrying, until a whole image of its announced type arrived; its
        bytes are charged. The file work is left to :meth:`Received.save`, so that a
        worker can fetch its next photo while this one goes to disk."""
        last: PhotoError | None = None
        for attempt in range(self._retry.attempts):
            reservation = await self._limits.reserve(self.estimate, on_wait=self._on_wait)
            body = _Body(part, self._files, self._executor)
            try:
                await self._receive(url, body, reservation)
                received = await body.ready(target)
            except PhotoError as exc:
                reservation.release(received=body.received)
                if not exc.retryable:
                    raise
                last = exc
                wait = exc.retry_after
            except BaseException:
                # Cancelled or a broken folder: charges the bytes that did cross the network.
                reservation.release()
                await body.discard()
                raise
            else:
                reservation.commit(body.received)
                self._learn(body.received)
                return received
            if attempt + 1 < self._retry.attempts:
                await asyncio.sleep(
                    wait if wait is not None else self._retry.delay(attempt, self._rng)
                )
        assert last is not None
        raise PhotoError(f"{last.reason} (after {self._retry.attempts} attempts)", retryable=True)

    async def _receive(self, url: str, body: _Body, reservation: Reservation) -> None:
        """Stream the whole body into ``body``, checked: at most ``WRITE_BUFFER`` bytes of it
        still in memory when this returns."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = asyncio.timeout_at(
            started + self._base_timeout + self._max_bytes / self._min_rate
        )
        try:
            async with deadline, self._session.get(url, timeout=self._timeout) as response:
                _check_status(response, self._max_retry_after)
                content_type = response.content_type.lower()
                if not content_type.startswith("image/"):
                    raise PhotoError(
                        f"the server sent {_printable(content_type) or 'no content type'}, "
                        "not an image",
                        retryable=True,
                    )
                body.content_type = content_type
                expected = response.content_length
                if expected is not None:
                    if expected > self._max_bytes:
                        raise _too_big(self._max_bytes, f"announces {expected:,} bytes")
                    # Time enough for the announced size at the lowest rate, no more.
                    deadline.reschedule(started + self._base_timeout + expected / self._min_rate)
                async for chunk in response.content.iter_chunked(CHUNK):
                    reservation.add_received(len(chunk))
                    if body.received + len(chunk) > self._max_bytes:
                        body.received += len(chunk)
                        raise _too_big(self._max_bytes, "sent more")
                    if body.add(chunk):
                        await body.flush()
                if expected is not None and body.received != expected:
                    raise PhotoError(
                        f"the body was cut off ({body.received} of {expected} bytes)",
                        retryable=True,
                    )
                if body.received == 0:
                    raise PhotoError("the server sent an empty body", retryable=True)
        except BaseException as exc:
            await body.discard()
            if isinstance(exc, PhotoError | StorageError):
                raise
            if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
                reason = f"the body was cut off ({body.received} bytes): {type(exc).__name__}"
            elif isinstance(exc, TimeoutError):
                seconds = loop.time() - started
                reason = (
                    f"too slow: {body.received:,} bytes in {seconds:.0f} s"
                    if deadline.expired()
                    else "timed out"
                )
            elif (refused := redirect_failure(exc)) is not None:
                # A redirect to file:// or ftp://, or an endless chain: no retry fixes it.
                raise PhotoError(refused, retryable=False) from exc
            elif isinstance(exc, aiohttp.ClientError):
                reason = f"{type(exc).__name__}: {_printable(str(exc))}"
            else:
                raise
            raise PhotoError(reason, retryable=True) from exc


def _too_big(cap: int, how: str) -> PhotoError:
    return PhotoError(
        f"the photo is larger than the {cap:,}-byte cap of its size (the server {how})",
        retryable=False,
    )


def _printable(text: str, limit: int = 200) -> str:
    """Server-made text made safe for a CSV cell and a terminal line."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


class _Body:
    """A photo body on its way to its ``.part`` file.

    Bytes are held until ``WRITE_BUFFER`` of them are pending, so a typical photo is
    checked in memory and reaches the disk in one hop to a thread that hashes, opens,
    writes, closes and renames it. The tail of the body is kept for the image check.
    """

    __slots__ = (
        "_chunks",
        "_tail",
        "buffered",
        "content_type",
        "executor",
        "file",
        "received",
    )

    def __init__(self, part: Path, files: PhotoFiles, executor: Executor | None = None) -> None:
        #: The threads that do the file work (None: the loop's default executor).
        self.executor = executor
        self.content_type = ""
        self.received = 0
        self.buffered = 0
        self._chunks: list[bytes] = []
        self.file = _PartFile(part, files)
        self._tail = b""

    def add(self, chunk: bytes) -> bool:
        """Take one chunk; True when ``WRITE_BUFFER`` bytes are pending (flush them)."""
        self._chunks.append(chunk)
        self.received += len(chunk)
        self.buffered += len(chunk)
        self._tail = (self._tail + chunk[-TAIL_BYTES:])[-TAIL_BYTES:]
        return self.buffered >= WRITE_BUFFER

    def _take(self) -> bytes:
        chunks, self._chunks, self.buffered = self._chunks, [], 0
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def flush(self) -> None:
        await _off_loop(self.file.write, self._take(), executor=self.executor)

    async def ready(self, target: Callable[[str], Path]) -> Received:
        """The whole body, checked: a body still in memory is checked here, on the loop
        (Pillow reads its header: CPU only, well under a millisecond), and saved later; a
        longer one, partly written already, is checked from its file, closed and renamed
        in one hop now (its final write is small)."""
        final = target(self.content_type)
        if self.file.opened:
            size, sha256 = await _off_loop(
                self.file.finish,
                self._take(),
                final,
                self._tail,
                self.content_type,
                executor=self.executor,
            )
            return Received(self, Fetched(final, self.received, sha256, self.content_type, size))
        data = self._take()
        size = _raise_unless_image(io.BytesIO(data), self._tail, self.content_type)
        return Received(self, Fetched(final, self.received, "", self.content_type, size), data=data)

    async def discard(self) -> None:
        """Close and delete the part file, off the loop. It runs even if the task is cancelled
        while waiting, and after any write still running (see :class:`_PartFile`)."""
        self._chunks = []
        future = asyncio.get_running_loop().run_in_executor(self.executor, self.file.discard)
        await asyncio.shield(future)


class Received:
    """A whole photo body that passed its checks, its bytes charged: :meth:`save` puts it
    under its final name (one hop to a thread: hash, open, write, close, rename)."""

    __slots__ = ("_body", "_data", "_fetched", "_saved")

    def __init__(self, body: _Body, fetched: Fetched, *, data: bytes | None = None) -> None:
        self._body = body
        self._data = data or b""
        self._fetched = fetched
        #: A long body is saved on arrival (checked from its file, in the hop of its rename):
        #: it comes without ``data``.
        self._saved = data is None

    async def save(self) -> Fetched:
        """Write the photo under its final name; on any failure or cancellation no file of
        it is left (a :class:`PhotoError` for its own path, :class:`StorageError` else)."""
        if self._saved:
            return self._fetched
        data, self._data = self._data, b""
        try:
            body = self._body
            sha256 = await _off_loop(
                body.file.save, data, self._fetched.path, executor=body.executor
            )
        except BaseException:
            await self._body.discard()
            raise
        self._saved = True
        self._fetched = dataclasses.replace(self._fetched, sha256=sha256)
        return self._fetched


class _PartFile:
    """The synchronous file work of one photo, run in worker threads. A lock orders the
    hops of one photo, so a discard never overlaps a write still running in a thread.

    The body is hashed here too, in the order it is written: a hash of a whole photo on
    the loop's thread releases the GIL and then waits to take it back from these
    threads, which stalled every other download (about 0.4 ms a photo at 8 workers).
    """

    __slots__ = ("_digest", "_files", "_handle", "_lock", "part")

    def __init__(self, part: Path, files: PhotoFiles) -> None:
        self.part = part
        self._files = files
        self._handle: PartHandle | None = None
        self._lock = threading.Lock()
        self._digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        with self._lock, _storage_errors(self.part):
            self._digest.update(data)
            self._write(data)

    @property
    def opened(self) -> bool:
        return self._handle is not None

    def _write(self, data: bytes) -> None:
        if self._handle is None:
            self._handle = self._files.create(self.part)
        view = memoryview(data)
        while view:  # an unbuffered write may take part of the bytes
            written = self._handle.write(view)
            if not written:
                raise OSError(errno.EIO, "the file took no bytes")
            view = view[written:]

    def save(self, data: bytes, final: Path) -> str:
        """Write a whole body checked in memory, close it and rename it: its sha256."""
        return self._complete(data, final, None)[1]

    def finish(
        self, data: bytes, final: Path, tail: bytes, kind: str
    ) -> tuple[tuple[int, int] | None, str]:
        """Write the last bytes of a body partly written already, close it, check it from
        its file (Pillow reads no further than the header) and rename it: the image's
        (width, height) if Pillow read them, and the whole body's sha256."""
        return self._complete(data, final, (tail, kind))

    def _complete(
        self, data: bytes, final: Path, check: tuple[bytes, str] | None
    ) -> tuple[tuple[int, int] | None, str]:
        # On any failure the part file is gone.
        with self._lock:
            try:
                self._digest.update(data)
                with _storage_errors(final):
                    if data or self._handle is None:
                        self._write(data)
                    handle, self._handle = self._handle, None
                    assert handle is not None
                    handle.close()
                    size = None
                    if check is not None:
                        with self._files.read(self.part) as written:
                            size = _raise_unless_image(written, *check)
                    self._files.replace(self.part, final)
                    return size, self._digest.hexdigest()
            except BaseException:
                self._discard()
                raise

    def discard(self) -> None:
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        handle, self._handle = self._handle, None
        with contextlib.suppress(OSError):
            if handle is not None:
                handle.close()
            self._files.remove(self.part)


def _raise_unless_image(source: BinaryIO, tail: bytes, kind: str) -> tuple[int, int] | None:
    """The image's (width, height) if Pillow read them; PhotoError if it is no whole image."""
    check = check_image(source, tail, kind)
    if check.problem is not None:
        raise PhotoError(check.problem, retryable=True)
    return check.size


@contextlib.contextmanager
def _storage_errors(path: Path) -> Iterator[None]:
    """An error of this photo's own path fails the photo; any other stops the run."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if exc.errno in PER_PHOTO_ERRNOS:
            raise PhotoError(f"cannot write {path.name}: {reason}", retryable=False) from exc
        raise StorageError(f"cannot write {path}: {reason}") from exc


def _call(fn: Callable[..., _T], *args: object) -> _T:
    return fn(*args)


#: One hop to a thread, through aiofiles' public wrapper (``executor=`` picks the threads).
_off_loop = aiofiles.os.wrap(_call)


def _check_status(response: aiohttp.ClientResponse, max_retry_after: float) -> None:
    status = response.status
    if status == 200:
        return
    if status in (404, 410):
        raise PhotoError(
            f"HTTP {status}: the server no longer has this photo", retryable=False, missing=True
        )
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is not None and retry_after > max_retry_after:
            # A worker never sleeps for days: the photo fails now and a rerun tries again.
            raise PhotoError(
                f"HTTP {status}: the server asked to wait {_duration(retry_after)} "
                f"(more than {_duration(max_retry_after)})",
                retryable=False,
            )
        raise PhotoError(f"HTTP {status}", retryable=True, retry_after=retry_after)
    raise PhotoError(f"HTTP {status}", retryable=status in (403, 408))


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86_400), ("hours", 3_600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.0f} {unit}"
    return f"{seconds:.0f} s"


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


def part_name(observation_id: int | str, position: int) -> str:
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
