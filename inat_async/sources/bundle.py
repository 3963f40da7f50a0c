"""Downloading the latest Open Data bundle over plain HTTPS, resumable with Range requests.

The bucket is public, so a user needs no AWS tools: one HEAD gives the bundle's size; a
complete file of that size is left alone; otherwise the bytes go to ``<name>.part``,
which survives an interruption and is continued on the next call with
``Range: bytes=<its size>-``. A server that ignores the range (200) restarts the file
from its first byte; one that answers 416 says the part already holds every byte, or
more than the object has (then it starts over). The file is renamed into place only
once its size equals the size the server announced, so a half-written bundle is never
mistaken for a whole one. The ETag of the bundle a part was started from is kept beside
it (``<name>.part.etag``): a part of another version (a new month's bundle) is discarded
rather than continued (a part with no recorded ETag, e.g. left by curl, is trusted).

>>> path = await fetch_bundle("open-data/", on_progress=print)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from ..errors import InatError, UsageError
from ..settings import DEFAULT_USER_AGENT
from .opendata import OPEN_DATA_URL

#: Key of the newest monthly bundle in the bucket.
BUNDLE_KEY = "metadata/inaturalist-open-data-latest.tar.gz"
_CONTENT_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+)$")


class BundleFetchError(InatError):
    """The bundle could not be downloaded whole; a partial file stays to be resumed."""


@dataclass(frozen=True, slots=True)
class BundleProgress:
    """Where a bundle download stands: reported at its start, after each chunk, at its end."""

    path: Path
    done: int
    total: int
    #: Bytes that were already on disk when this call started (a resumed download).
    resumed: int = 0
    #: True once the file is in place (or was already there, complete).
    finished: bool = False
    #: True when the file in place was complete already and nothing was downloaded.
    up_to_date: bool = False


def bundle_url(base_url: str = OPEN_DATA_URL) -> str:
    """``URL/metadata/inaturalist-open-data-latest.tar.gz``."""
    return f"{base_url.rstrip('/')}/{BUNDLE_KEY}"


async def fetch_bundle(
    directory: str | os.PathLike[str] = ".",
    *,
    url: str = OPEN_DATA_URL,
    on_progress: Callable[[BundleProgress], None] | None = None,
    stall_timeout: float = 60.0,
    user_agent: str = DEFAULT_USER_AGENT,
    session: aiohttp.ClientSession | None = None,
) -> Path:
    """Download the latest bundle into ``directory``; return the path of the complete file.

    Raises :class:`BundleFetchError` when the server fails or the bytes do not add up
    (the ``.part`` file is kept when it can be continued), :class:`UsageError` when the
    URL or the folder is unusable.
    """
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"the Open Data URL must be http(s): {url!r}", options=["url"])
    folder = Path(directory)
    try:
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the folder {folder}: {exc.strerror}") from exc
    target = folder / BUNDLE_KEY.rsplit("/", 1)[1]
    report = on_progress or (lambda _progress: None)
    client_timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=stall_timeout, sock_read=stall_timeout
    )
    headers = {"User-Agent": user_agent}
    if session is None:
        async with aiohttp.ClientSession(timeout=client_timeout, headers=headers) as own:
            return await _fetch(own, bundle_url(url), target, report)
    return await _fetch(session, bundle_url(url), target, report)


async def _fetch(
    session: aiohttp.ClientSession,
    url: str,
    target: Path,
    report: Callable[[BundleProgress], None],
) -> Path:
    part = target.with_name(target.name + ".part")
    tag_file = target.with_name(target.name + ".part.etag")
    try:
        total, etag = await _head(session, url)
        if etag and _size(part) and _read_tag(tag_file) not in (None, etag):
            # The part belongs to another version of the bundle (last month's): its bytes
            # must not be spliced with this one's.
            await asyncio.to_thread(part.unlink)
        if _size(target) == total:
            report(BundleProgress(target, total, total, total, finished=True, up_to_date=True))
            return target
        if etag:
            await asyncio.to_thread(tag_file.write_text, etag)
        for _attempt in range(2):
            start = _size(part) or 0
            if start > total:
                await asyncio.to_thread(part.unlink)  # more bytes than the object has
                start = 0
            if start == total:
                break
            if await _download(session, url, part, start, total, report):
                break
        else:  # pragma: no cover - a second 416 after starting over from byte 0
            raise BundleFetchError("the server refused every range of the bundle", url=url)
    except (aiohttp.ClientError, TimeoutError) as exc:
        got = _size(part) or 0
        raise BundleFetchError(
            f"the bundle download was interrupted after {got} bytes ({_describe(exc)}); "
            "run the same command again to continue it",
            url=url,
        ) from exc
    except OSError as exc:
        raise BundleFetchError(f"cannot write {part}: {exc.strerror}") from exc
    await asyncio.to_thread(os.replace, part, target)
    await asyncio.to_thread(tag_file.unlink, missing_ok=True)
    report(BundleProgress(target, total, total, finished=True))
    return target


async def _head(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    """The bundle's size and ETag ("" when the server gives none)."""
    async with session.head(url, allow_redirects=False) as response:
        if response.status != 200:
            raise BundleFetchError(
                f"the bucket answered HTTP {response.status} for the bundle", url=url
            )
        if response.content_length is None:
            raise BundleFetchError("the bucket did not say how large the bundle is", url=url)
        return response.content_length, response.headers.get("ETag", "")


async def _download(
    session: aiohttp.ClientSession,
    url: str,
    part: Path,
    start: int,
    total: int,
    report: Callable[[BundleProgress], None],
) -> bool:
    """Fetch from byte ``start`` into ``part``; False when a 416 says to start over."""
    headers = {"Range": f"bytes={start}-"} if start else {}
    async with session.get(url, headers=headers, allow_redirects=False) as response:
        if response.status == 416:
            announced = _content_range(response.headers.get("Content-Range"))
            if announced is not None and announced[2] == start:
                return True  # the part already holds every byte
            await asyncio.to_thread(part.unlink)
            return False
        if response.status == 206 and start:
            announced = _content_range(response.headers.get("Content-Range"))
            if announced is None or announced[0] != start or announced[2] != total:
                raise BundleFetchError(
                    "the bucket answered a different range or size than asked "
                    f"(Content-Range {response.headers.get('Content-Range')!r}, "
                    f"expected bytes {start}-/{total}); the partial file was kept",
                    url=url,
                )
            mode, offset = "ab", start
        elif response.status == 200:
            # No range, or a server that ignored it: the body is the whole object.
            if response.content_length is not None and response.content_length != total:
                raise _mismatch(url, response.content_length, total)
            mode, offset = "wb", 0
        else:
            raise BundleFetchError(
                f"the bucket answered HTTP {response.status} for the bundle", url=url
            )
        report(BundleProgress(part, offset, total, resumed=offset))
        handle = await asyncio.to_thread(open, part, mode)
        try:
            async for chunk in response.content.iter_any():
                offset += len(chunk)
                if offset > total:
                    break
                await asyncio.to_thread(handle.write, chunk)
                report(BundleProgress(part, offset, total, resumed=start if mode == "ab" else 0))
            await asyncio.to_thread(handle.flush)
            await asyncio.to_thread(os.fsync, handle.fileno())
        finally:
            await asyncio.to_thread(handle.close)
    if offset != total:
        if offset > total:
            await asyncio.to_thread(part.unlink)
        raise _mismatch(url, offset, total)
    return True


def _mismatch(url: str, got: int, total: int) -> BundleFetchError:
    return BundleFetchError(
        f"the bundle's size does not match: {got} bytes received, the bucket announced "
        f"{total}; nothing was put in place",
        url=url,
    )


def _content_range(value: str | None) -> tuple[int, int, int] | None:
    """``bytes a-b/total`` -> (a, b, total); ``bytes */total`` -> (-1, -1, total)."""
    match = _CONTENT_RANGE.match(value or "")
    if match is None:
        return None
    first, last, total = match.groups()
    if first is None:
        return -1, -1, int(total)
    return int(first), int(last), int(total)


def _read_tag(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__
