"""WebDataset shards: ``DEST/webdataset/<split>-NNNNNN.tar``, one sample per photo.

A sample's files share its key, the photo id: ``506314.jpg`` (the image), ``506314.json``
(its metadata row) and ``506314.cls`` (its class index, a line of ``classes.txt``).
Shards close once they pass the shard size. A re-export writes the photos that are in
no shard yet into new shards, so a shard, once written, never changes. Tar headers carry
fixed times and owners: the same export gives the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from ..errors import StorageError
from ..imageinfo import convert_to_png
from .exportstate import ExportState, UnshardedPhoto
from .files import AtomicFile, _HashingWriter, write_text
from .manifest import FileEntry

FOLDER = "webdataset"
CLASSES = "classes.txt"


class _Shard:
    def __init__(self, dest: Path, split: str, number: int) -> None:
        self.split = split
        self.rel = f"{FOLDER}/{split}-{number:06d}.tar"
        self.atomic = AtomicFile(dest / self.rel, self.rel)
        self.sink: _HashingWriter = self.atomic.__enter__()
        # Closed by close() or abandon(): a shard outlives any one with-block.
        self.tar = tarfile.TarFile(
            fileobj=self.sink,  # type: ignore[arg-type]
            mode="w",
            format=tarfile.PAX_FORMAT,
        )
        self.photo_ids: list[int] = []

    def add(
        self, name: str, data: bytes | None, size: int = 0, source: BinaryIO | None = None
    ) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data) if data is not None else size
        info.mtime = 0
        info.mode = 0o644
        info.uname = info.gname = ""
        self.tar.addfile(info, io.BytesIO(data) if data is not None else source)

    def close(self) -> FileEntry:
        try:
            self.tar.close()
        except BaseException as exc:
            self.atomic.__exit__(type(exc), exc, None)
            raise
        self.atomic.__exit__(None, None, None)
        assert self.atomic.entry is not None
        return self.atomic.entry

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self.tar.close()
        error = RuntimeError("abandoned")
        with contextlib.suppress(Exception):
            self.atomic.__exit__(RuntimeError, error, None)


def write_shards(
    state: ExportState, dest: Path, *, shard_size: int, class_index: Mapping[int, int]
) -> int:
    """Write every exported photo that is in no shard yet; returns the shards written."""
    written = 0
    shard: _Shard | None = None
    try:
        for photo in state.unsharded():
            if shard is not None and (shard.split != photo.split or shard.sink.size >= shard_size):
                _finish(state, shard)
                written += 1
                shard = None
            if shard is None:
                shard = _Shard(dest, photo.split, state.shards(photo.split))
            _add_sample(shard, photo, dest, class_index)
        if shard is not None:
            _finish(state, shard)
            written += 1
            shard = None
    except BaseException:
        if shard is not None:
            shard.abandon()
        raise
    classes = "".join(f"{name}\n" for _, name, _ in state.classes())
    state.add_file(write_text(dest / FOLDER / CLASSES, f"{FOLDER}/{CLASSES}", classes))
    state.commit()
    return written


def _finish(state: ExportState, shard: _Shard) -> None:
    entry = shard.close()
    state.add_file(entry)
    state.set_shard(shard.photo_ids, shard.rel)
    state.commit()


def _add_sample(
    shard: _Shard, photo: UnshardedPhoto, dest: Path, class_index: Mapping[int, int]
) -> None:
    row = json.loads(photo.row)
    key = str(photo.photo_id)
    ext = "png" if photo.convert else photo.ext
    try:
        if photo.path is not None:
            image = dest / photo.path
            with image.open("rb") as handle:
                shard.add(f"{key}.{ext}", None, image.stat().st_size, handle)
        elif photo.convert:
            buffer = io.BytesIO()
            convert_to_png(Path(photo.source), buffer)
            shard.add(f"{key}.{ext}", buffer.getvalue())
        else:
            source = Path(photo.source)
            with source.open("rb") as handle:
                shard.add(f"{key}.{ext}", None, source.stat().st_size, handle)
    except OSError as exc:
        raise StorageError(f"cannot add photo {key} to {shard.rel}: {exc}") from exc
    shard.add(f"{key}.json", json.dumps(row, ensure_ascii=False, sort_keys=True).encode())
    shard.add(f"{key}.cls", f"{class_index[row['taxon_id']]}\n".encode())
    shard.photo_ids.append(photo.photo_id)
