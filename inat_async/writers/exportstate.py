"""The export's own store, ``DEST/.inat-async/export.sqlite3``: what was exported where.

It makes a re-export incremental and stable: a photo already exported keeps its split,
path and bytes; a group (observer or observation) keeps its split; a class keeps its
index; a photo whose bytes equal an exported one is recorded as a duplicate, not
exported again. Every file written is listed with its size and sha256, from which
``manifest.json`` is written. Hidden, so dataset loaders skip it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StorageError
from .manifest import FileEntry

STATE_DIR = ".inat-async"
STATE_FILE = "export.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS classes (
    taxon_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    idx INTEGER NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS groups (
    taxon_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    split TEXT NOT NULL,
    alias INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (taxon_id, key)
);
CREATE TABLE IF NOT EXISTS photos (
    photo_id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    taxon_id INTEGER NOT NULL,
    split TEXT NOT NULL,
    ext TEXT NOT NULL,
    source TEXT NOT NULL,
    convert INTEGER NOT NULL,
    path TEXT,
    shard TEXT,
    license TEXT,
    row TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS photos_sha256 ON photos (sha256);
CREATE INDEX IF NOT EXISTS photos_unsharded ON photos (split, photo_id) WHERE shard IS NULL;
CREATE TABLE IF NOT EXISTS duplicates (
    photo_id INTEGER NOT NULL,
    taxon_id INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    kept_photo_id INTEGER NOT NULL,
    conflict INTEGER NOT NULL,
    row TEXT NOT NULL,
    PRIMARY KEY (photo_id, taxon_id)
);
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Exported:
    """A photo already in the export."""

    photo_id: int
    taxon_id: int
    split: str


class ExportState:
    """Open with :meth:`open`; writes are batched into explicit transactions."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self._pending = 0

    @classmethod
    def path_in(cls, dest: Path) -> Path:
        return dest / STATE_DIR / STATE_FILE

    @classmethod
    def open(cls, dest: Path) -> ExportState:
        path = cls.path_in(dest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(groups)")}
            if "alias" not in columns:  # an export store older than the column
                db.execute("ALTER TABLE groups ADD COLUMN alias INTEGER NOT NULL DEFAULT 0")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the export store {path}: {exc}") from exc
        except OSError as exc:
            raise StorageError(f"cannot create {path.parent}: {exc.strerror}") from exc
        return cls(db, path)

    def close(self) -> None:
        self.commit()
        self._db.close()

    def __enter__(self) -> ExportState:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writing, batched ----------------------------------------------------------------

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        try:
            if not self._db.in_transaction:
                self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write the export store {self.path}: {exc}") from exc
        self._pending += 1

    def maybe_commit(self, every: int = 2000) -> None:
        if self._pending >= every:
            self.commit()

    def commit(self) -> None:
        if self._db.in_transaction:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot write the export store {self.path}: {exc}") from exc
        self._pending = 0

    # -- identity and settings -------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self._write(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            (key, json.dumps(value, sort_keys=True)),
        )

    # -- classes and groups ------------------------------------------------------------------

    def class_index(self, taxon_id: int, name: str) -> tuple[str, int]:
        """The folder name and index of a taxon's class, fixed the first time it is seen."""
        row = self._db.execute(
            "SELECT name, idx FROM classes WHERE taxon_id = ?", (taxon_id,)
        ).fetchone()
        if row is not None:
            return row[0], row[1]
        taken = self._db.execute("SELECT 1 FROM classes WHERE name = ?", (name,)).fetchone()
        if taken is not None:  # two taxa whose names fold to one folder name
            name = f"{name}_{taxon_id}"
        (idx,) = self._db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM classes").fetchone()
        self._write(
            "INSERT INTO classes (taxon_id, name, idx) VALUES (?, ?, ?)", (taxon_id, name, idx)
        )
        return name, idx

    def classes(self) -> list[tuple[int, str, int]]:
        """(taxon id, folder name, index), by index."""
        return list(self._db.execute("SELECT taxon_id, name, idx FROM classes ORDER BY idx"))

    def group_split(self, taxon_id: int, keys: tuple[str, ...]) -> tuple[str | None, int]:
        """The split already given to any of ``keys`` (aliases of one group), if any, and
        how many of the keys have it recorded."""
        found: str | None = None
        known = 0
        for key in keys:
            row = self._db.execute(
                "SELECT split FROM groups WHERE taxon_id = ? AND key = ?", (taxon_id, key)
            ).fetchone()
            if row is not None:
                known += 1
                found = found or str(row[0])
        return found, known

    def set_group_split(self, taxon_id: int, key: str, split: str, *, alias: bool) -> None:
        """``alias``: another name of a group recorded under its own key (a login)."""
        self._write(
            "INSERT OR IGNORE INTO groups (taxon_id, key, split, alias) VALUES (?, ?, ?, ?)",
            (taxon_id, key, split, int(alias)),
        )

    def groups_per_class(self) -> dict[int, int]:
        """Groups (observers or observations) per taxon id, aliases not counted."""
        return dict(
            self._db.execute(
                "SELECT taxon_id, COUNT(*) FROM groups WHERE alias = 0 GROUP BY taxon_id"
            )
        )

    # -- photos ----------------------------------------------------------------------------

    def has_photo(self, photo_id: int, taxon_id: int) -> bool:
        """Already exported, or already recorded as a duplicate under this taxon."""
        if self._db.execute("SELECT 1 FROM photos WHERE photo_id = ?", (photo_id,)).fetchone():
            return True
        return (
            self._db.execute(
                "SELECT 1 FROM duplicates WHERE photo_id = ? AND taxon_id = ?",
                (photo_id, taxon_id),
            ).fetchone()
            is not None
        )

    def placed(self, photo_id: int) -> tuple[str, bool] | None:
        """(path in DEST, converted) of an exported photo with an image-folder file."""
        row = self._db.execute(
            "SELECT path, convert FROM photos WHERE photo_id = ? AND path IS NOT NULL",
            (photo_id,),
        ).fetchone()
        return None if row is None else (str(row[0]), bool(row[1]))

    def same_bytes(self, sha256: str) -> Exported | None:
        row = self._db.execute(
            "SELECT photo_id, taxon_id, split FROM photos WHERE sha256 = ? LIMIT 1", (sha256,)
        ).fetchone()
        return None if row is None else Exported(row[0], row[1], row[2])

    def same_photo(self, photo_id: int) -> Exported | None:
        row = self._db.execute(
            "SELECT photo_id, taxon_id, split FROM photos WHERE photo_id = ?", (photo_id,)
        ).fetchone()
        return None if row is None else Exported(row[0], row[1], row[2])

    def add_photo(
        self,
        *,
        photo_id: int,
        sha256: str,
        taxon_id: int,
        split: str,
        ext: str,
        source: str,
        convert: bool,
        path: str | None,
        license: str | None,
        row: dict[str, Any],
    ) -> None:
        self._write(
            """INSERT INTO photos (photo_id, sha256, taxon_id, split, ext, source, convert,
                   path, license, row) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                photo_id,
                sha256,
                taxon_id,
                split,
                ext,
                source,
                int(convert),
                path,
                license,
                json.dumps(row, ensure_ascii=False),
            ),
        )

    def add_duplicate(
        self,
        *,
        photo_id: int,
        taxon_id: int,
        sha256: str,
        kept_photo_id: int,
        conflict: bool,
        row: dict[str, Any],
    ) -> None:
        self._write(
            """INSERT OR IGNORE INTO duplicates (photo_id, taxon_id, sha256, kept_photo_id,
                   conflict, row) VALUES (?, ?, ?, ?, ?, ?)""",
            (photo_id, taxon_id, sha256, kept_photo_id, int(conflict), json.dumps(row)),
        )

    def rows(self, split: str | None = None) -> Iterator[tuple[str | None, dict[str, Any]]]:
        """(path, metadata row) of exported photos, by path (or photo id without one)."""
        sql = "SELECT path, row FROM photos"
        args: tuple[object, ...] = ()
        if split is not None:
            sql += " WHERE split = ?"
            args = (split,)
        sql += " ORDER BY path, photo_id"
        for path, row in self._db.execute(sql, args):
            yield path, json.loads(row)

    def text_observation_ids(self) -> bool:
        """True when some exported photo's observation id is text (an Open Data UUID)."""
        sql = "SELECT 1 FROM photos WHERE json_type(row, '$.observation_id') = 'text' LIMIT 1"
        return self._db.execute(sql).fetchone() is not None

    def unsharded(self, batch: int = 1000) -> Iterator[UnshardedPhoto]:
        """Photos not yet in a WebDataset shard, by split and id, read a batch at a time
        so that the caller may mark them while iterating."""
        after: tuple[str, int] = ("", -1)
        while True:
            rows = self._db.execute(
                """SELECT photo_id, split, ext, source, convert, path, row FROM photos
                   WHERE shard IS NULL AND (split, photo_id) > (?, ?)
                   ORDER BY split, photo_id LIMIT ?""",
                (*after, batch),
            ).fetchall()
            if not rows:
                return
            for photo_id, split, ext, source, convert, path, row in rows:
                yield UnshardedPhoto(photo_id, split, ext, source, bool(convert), path, row)
            after = (rows[-1][1], rows[-1][0])

    def set_shard(self, photo_ids: list[int], shard: str) -> None:
        for photo_id in photo_ids:
            self._write("UPDATE photos SET shard = ? WHERE photo_id = ?", (shard, photo_id))

    def duplicates(self) -> Iterator[tuple[int, int, str, int, bool, dict[str, Any]]]:
        for photo_id, taxon_id, sha256, kept, conflict, row in self._db.execute(
            """SELECT photo_id, taxon_id, sha256, kept_photo_id, conflict, row FROM duplicates
               ORDER BY sha256, photo_id"""
        ):
            yield photo_id, taxon_id, sha256, kept, bool(conflict), json.loads(row)

    def duplicate_counts(self) -> tuple[int, int]:
        """(duplicates, of which conflicts)."""
        total, conflicts = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(conflict), 0) FROM duplicates"
        ).fetchone()
        return int(total), int(conflicts)

    def counts(self) -> dict[int, dict[str, int]]:
        """Photos per taxon id and split."""
        counts: dict[int, dict[str, int]] = {}
        for taxon_id, split, number in self._db.execute(
            "SELECT taxon_id, split, COUNT(*) FROM photos GROUP BY taxon_id, split"
        ):
            counts.setdefault(taxon_id, {})[split] = number
        return counts

    def license_counts(self) -> list[tuple[str | None, int]]:
        return list(self._db.execute("SELECT license, COUNT(*) FROM photos GROUP BY license"))

    def converted(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM photos WHERE convert").fetchone()[0])

    def shards(self, split: str) -> int:
        """How many shards of ``split`` exist (the next one is numbered so)."""
        row = self._db.execute(
            "SELECT COUNT(DISTINCT shard) FROM photos WHERE split = ? AND shard IS NOT NULL",
            (split,),
        ).fetchone()
        return int(row[0])

    # -- files -------------------------------------------------------------------------------

    def add_file(self, entry: FileEntry) -> None:
        self._write(
            "INSERT OR REPLACE INTO files (path, size, sha256) VALUES (?, ?, ?)",
            (entry.path, entry.size, entry.sha256),
        )

    def files(self) -> Iterator[FileEntry]:
        for path, size, sha256 in self._db.execute(
            "SELECT path, size, sha256 FROM files ORDER BY path"
        ):
            yield FileEntry(path, size, sha256)

    def file_totals(self) -> tuple[int, int]:
        files, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM files"
        ).fetchone()
        return int(files), int(size)


@dataclass(frozen=True, slots=True)
class UnshardedPhoto:
    photo_id: int
    split: str
    ext: str
    source: str
    convert: bool
    path: str | None
    row: str
