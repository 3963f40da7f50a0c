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
from dataclasses import dataclass
from pathlib import Path

import aiofiles
import aiofiles.os
import aiohttp

from .errors import StorageError
from .events import EventCallback, LimitWait, ignore
from .limits import Limits
from .retry import RetryPolicy, parse_retry_after

#: Read size from the socket; writes are batched to ``WRITE_BUFFER`` so that a
#: typical photo costs one executor round trip for its write.
CHUNK = 256 * 1024
WRITE_BUFFER = 4 * 1024 * 1024

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
        self._on_event = on_event
        self._timeout = timeout or aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
        self._rng = random.Random()
        # A running mean of real sizes makes reservations close to the truth.
        self._mean = float(estimate)
        self._seen = 0

    def _on_wait(self, reason: str, resume_at: float) -> None:
        self._on_event(LimitWait(reason=reason, resume_at=resume_at))

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
            received = 0
            try:
                received, digest, content_type = await self._stream(url, part)
            except PhotoError as exc:
                reservation.release(received=exc.received)
                if not exc.retryable:
                    raise
                last = exc
                wait = exc.retry_after
            except BaseException:
                reservation.release()
                await _remove(part)
                raise
            else:
                reservation.commit(received)
                self._learn(received)
                final = target(content_type)
                try:
                    await aiofiles.os.replace(part, final)
                except OSError as exc:
                    await _remove(part)
                    raise StorageError(f"cannot write {final}: {exc.strerror}") from exc
                return Fetched(final, received, digest, content_type)
            if attempt + 1 < self._retry.attempts:
                await asyncio.sleep(
                    wait if wait is not None else self._retry.delay(attempt, self._rng)
                )
        assert last is not None
        raise PhotoError(f"{last.reason} (after {self._retry.attempts} attempts)", retryable=True)

    async def _stream(self, url: str, part: Path) -> tuple[int, str, str]:
        received = 0
        try:
            async with self._session.get(url, timeout=self._timeout) as response:
                _check_status(response)
                content_type = response.content_type.lower()
                if not content_type.startswith("image/"):
                    raise PhotoError(
                        f"the server sent {content_type or 'no content type'}, not an image",
                        retryable=True,
                    )
                expected = response.content_length
                digest = hashlib.sha256()
                buffer = bytearray()
                async with aiofiles.open(part, "wb") as out:
                    async for chunk in response.content.iter_chunked(CHUNK):
                        received += len(chunk)
                        digest.update(chunk)
                        buffer += chunk
                        if len(buffer) >= WRITE_BUFFER:
                            await out.write(bytes(buffer))
                            buffer.clear()
                    if buffer:
                        await out.write(bytes(buffer))
                if expected is not None and received != expected:
                    raise PhotoError(
                        f"the body was cut off ({received} of {expected} bytes)", retryable=True
                    )
                if received == 0:
                    raise PhotoError("the server sent an empty body", retryable=True)
                return received, digest.hexdigest(), content_type
        except PhotoError as exc:
            await _remove(part)
            exc.received = received
            raise
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            await _remove(part)
            error = PhotoError(f"the body was cut off ({received} bytes): {exc}", retryable=True)
            error.received = received
            raise error from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            await _remove(part)
            reason = (
                "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            )
            error = PhotoError(reason, retryable=True)
            error.received = received
            raise error from exc
        except OSError as exc:
            await _remove(part)
            raise StorageError(f"cannot write {part.parent}: {exc.strerror}") from exc


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


async def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        await aiofiles.os.remove(path)


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
