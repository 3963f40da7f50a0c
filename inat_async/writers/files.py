"""Small file helpers shared by the export writers: atomic writes, and placing photos.

Text and CSV writes are atomic and hash what they write; a photo is placed by hard
link, symbolic link, copy or PNG conversion.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Literal

from ..errors import StorageError, UsageError
from ..imageinfo import convert_to_png
from ..resume import hash_file
from .common import create_temporary, csv_cell
from .manifest import FileEntry

LinkMode = Literal["auto", "hardlink", "symlink", "copy"]
LINK_MODES: tuple[LinkMode, ...] = ("auto", "hardlink", "symlink", "copy")
# Errors that say "this file system (pair) cannot hard-link at all": stop trying.
_NO_LINKS = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


class UnreadableImage(Exception):
    """Pillow cannot read a photo that needs converting: it is left out, as data."""


class _HashingWriter:
    """A binary sink that hashes and counts what goes through it."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()

    def tell(self) -> int:
        return self.size


class AtomicFile:
    """``with AtomicFile(path) as sink: sink.write(...)``: written to a temporary file,
    renamed into place on success, hashed on the way (:attr:`entry` afterwards)."""

    def __init__(self, path: Path, rel: str) -> None:
        self.path, self.rel = path, rel
        self.entry: FileEntry | None = None
        self._tmp: Path | None = None
        self._handle: BinaryIO | None = None
        self.sink: _HashingWriter | None = None

    def __enter__(self) -> _HashingWriter:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = create_temporary(self.path)
        except OSError as exc:
            raise StorageError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self._tmp = tmp
        self._handle = os.fdopen(fd, "wb")
        self.sink = _HashingWriter(self._handle)
        return self.sink

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self._handle is not None and self._tmp is not None and self.sink is not None
        try:
            self._handle.close()
            if exc_type is None:
                self._tmp.replace(self.path)
                self.entry = FileEntry(self.rel, self.sink.size, self.sink.digest.hexdigest())
        except OSError as error:
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
            raise StorageError(f"cannot write {self.path}: {error.strerror or error}") from error
        finally:
            if exc_type is not None:
                with contextlib.suppress(FileNotFoundError):
                    self._tmp.unlink()


class _TextSink:
    def __init__(self, sink: _HashingWriter) -> None:
        self._sink = sink

    def write(self, text: str) -> int:
        self._sink.write(text.encode("utf-8"))
        return len(text)


def write_csv(
    path: Path, rel: str, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> FileEntry:
    """Stream ``rows`` into a CSV file, atomically; its manifest entry."""
    atomic = AtomicFile(path, rel)
    with atomic as sink:
        writer = csv.DictWriter(
            _TextSink(sink), fieldnames=list(columns), extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        for row in rows:
            writer.writerow({key: csv_cell(value) for key, value in row.items()})
    assert atomic.entry is not None
    return atomic.entry


def write_text(path: Path, rel: str, text: str) -> FileEntry:
    atomic = AtomicFile(path, rel)
    with atomic as sink:
        sink.write(text.encode("utf-8"))
    assert atomic.entry is not None
    return atomic.entry


class Placer:
    """Puts photo files into the export: linked or copied as asked, or converted to PNG.

    ``auto`` hard-links (no second copy of the bytes) and falls back to copying, for good,
    once the file system says it cannot link. Counts each method used in :attr:`used`.
    """

    def __init__(self, mode: LinkMode) -> None:
        self.mode = mode
        self._links_work = mode in ("auto", "hardlink")
        self.used: dict[str, int] = {}
        #: Folders known to exist: one mkdir per class folder, not one per photo.
        self._folders: set[Path] = set()

    def place(
        self, source: Path, target: Path, *, convert: bool, known: tuple[int, str]
    ) -> tuple[int, str]:
        """Put ``source`` at ``target``; (size, sha256) of what ``target`` now holds.

        ``known`` is the source's size and sha256 (as the resume store recorded them and
        the caller checked the size): links and copies hold those bytes.
        """
        if target.parent not in self._folders:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create {target.parent}: {exc.strerror}") from exc
            self._folders.add(target.parent)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            if convert:
                with tmp.open("wb") as handle:
                    try:
                        convert_to_png(source, handle)
                    except (OSError, ValueError) as exc:
                        raise UnreadableImage(f"{source}: {exc}") from exc
                result = hash_file(tmp)
                method = "converted"
            else:
                method = self._put(source, tmp)
                result = known
            tmp.replace(target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        self.used[method] = self.used.get(method, 0) + 1
        return result

    def _put(self, source: Path, tmp: Path) -> str:
        # A leftover of a killed export under this pid's temporary name: start afresh.
        if os.path.lexists(tmp):
            tmp.unlink()
        if self.mode == "symlink":
            try:
                tmp.symlink_to(source.resolve())
            except OSError as exc:
                raise StorageError(f"cannot symlink {source}: {exc.strerror}") from exc
            return "symlinked"
        if self._links_work:
            try:
                os.link(source, tmp)
            except OSError as exc:
                if self.mode == "hardlink":
                    raise UsageError(
                        f"cannot hard-link {source} into the export ({exc.strerror}); "
                        "set link to auto or copy",
                        options=("link",),
                    ) from exc
                if exc.errno in _NO_LINKS:
                    self._links_work = False
            else:
                return "hard-linked"
        try:
            shutil.copyfile(source, tmp)
        except OSError as exc:
            raise StorageError(f"cannot copy {source}: {exc.strerror}") from exc
        return "copied"
