"""``manifest.json``: what an export holds, and every file with its size and sha256.

It is plain JSON, laid out so that a reader can stream it: the header keys first, then
``"files"`` last with one file object a line. :func:`iter_manifest_files` reads that
layout line by line in flat memory, and falls back to parsing the whole document when a
person or another tool rewrote it in another layout.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StorageError, UsageError
from .common import create_temporary

MANIFEST = "manifest.json"
_FILES_LINE = '"files": ['


@dataclass(frozen=True, slots=True)
class FileEntry:
    #: POSIX path relative to the manifest's folder.
    path: str
    size: int
    sha256: str


def write_manifest(path: Path, header: Mapping[str, Any], files: Iterable[FileEntry]) -> None:
    """Write the manifest atomically, streaming ``files``."""
    try:
        fd, tmp = create_temporary(path)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write("{\n")
                for key, value in header.items():
                    handle.write(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},\n")
                handle.write(f"  {_FILES_LINE}")
                separator = "\n"
                for entry in files:
                    item = {"path": entry.path, "size": entry.size, "sha256": entry.sha256}
                    handle.write(separator + "    " + json.dumps(item, ensure_ascii=False))
                    separator = ",\n"
                handle.write("\n  ]\n}\n")
            tmp.replace(path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def read_manifest_header(path: Path) -> dict[str, Any]:
    """The manifest without its file list."""
    lines: list[str] = []
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip() == _FILES_LINE:
                    text = "".join(lines).rstrip().rstrip(",") + "\n}"
                    header = json.loads(text)
                    if isinstance(header, dict):
                        return header
                    break
                lines.append(line)
        document = _load_whole(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    document.pop("files", None)
    return document


def iter_manifest_files(path: Path) -> Iterator[FileEntry]:
    """Every file the manifest names, streamed when it has the layout this module writes."""
    try:
        streamed = _stream(path)
        if streamed is not None:
            yield from streamed
            return
        files = _load_whole(path).get("files")
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    if not isinstance(files, list):
        raise UsageError(f"{path} has no list of files")
    for item in files:
        yield _entry(item, path)


def _stream(path: Path) -> Iterator[FileEntry] | None:
    """None when the file does not have the streaming layout (checked before any entry)."""
    handle = path.open(encoding="utf-8")
    try:
        for line in handle:
            if line.strip() == _FILES_LINE:
                break
        else:
            handle.close()
            return None
    except BaseException:
        handle.close()
        raise
    return _entries(handle, path)


def _entries(handle: Any, path: Path) -> Iterator[FileEntry]:
    with handle:
        for line in handle:
            text = line.strip()
            if text in ("]", "],"):
                return
            if text:
                yield _entry(json.loads(text.rstrip(",")), path)
    raise ValueError("the list of files ends early")


def _entry(item: object, path: Path) -> FileEntry:
    if not isinstance(item, dict):
        raise UsageError(f"{path}: a file entry is not an object: {item!r}")
    name, size, digest = item.get("path"), item.get("size"), item.get("sha256")
    if not isinstance(name, str) or not isinstance(size, int) or not isinstance(digest, str):
        raise UsageError(f"{path}: a file entry lacks path, size or sha256: {item!r}")
    return FileEntry(name, size, digest)


def _load_whole(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        document = json.load(handle)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document
