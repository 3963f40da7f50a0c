"""The resume store: an embedded SQLite database inside the output folder.

It is the single source of truth of a dataset. Per species it keeps the resolved
taxon and the walk's watermark (the highest observation id fully recorded); per
observation the metadata row; per photo its status (``pending``, ``done`` with
bytes and sha256, ``failed`` with reason and attempts). A page of observations and
its photos are committed in one transaction *before* any photo is queued, so a
crash at any moment leaves either the whole page or none of it. The CSV files are
derived from this store (see :mod:`inat_async.layout`), never appended to.

WAL mode with ``synchronous=NORMAL``: a commit is an append to the log without an
fsync, cheap enough to run per photo on the event loop, and durable across a
process kill (only a power cut can lose the last commits, which the next run
simply downloads again).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ._readonly import connect_readonly
from ._wal import enable_wal
from .errors import OutputConflictError, StorageError
from .fetch import remove_stale_parts
from .models import Observation, ObservationId, Photo, Taxon
from .options import Query
from .photocheck import check_file, content_type_for

SCHEMA_VERSION = 2
STATE_DIR = ".inat-async"
STATE_FILE = "state.sqlite3"

#: How long a write made by a thread's connection waits for the write lock (the event
#: loop's connection never waits inside SQLite on the per-photo path: see StatusBatch).
BUSY_TIMEOUT_MS = 30_000

#: Columns added after schema 1, with their types: :func:`_migrate` adds them to old stores.
#: ``observer_id`` is the observer's numeric id (logins can change; NULL: unknown, in
#: rows stored before it was kept); ``stored_width``/``stored_height`` are the pixel
#: dimensions of the downloaded file (``width``/``height`` are the original's).
_ADDED_PHOTO_COLUMNS = (
    ("observer_id", "INTEGER"),
    ("stored_width", "INTEGER"),
    ("stored_height", "INTEGER"),
)

#: Columns added to ``species`` after schema 1. ``changes`` counts the writes that touched
#: the species' rows: an output written at a count still current needs no rewrite.
_ADDED_SPECIES_COLUMNS = (
    ("changes", "INTEGER NOT NULL DEFAULT 0"),
    # What the walks left out and why (JSON: reason -> count), summed over every run,
    # so that a resumed species reports what an uninterrupted run would. NULL in a
    # store written before it was kept: those earlier skips are unknown.
    ("skipped", "TEXT"),
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS species (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    taxon_id INTEGER,
    taxon_name TEXT,
    matched_term TEXT,
    watermark INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS observations (
    species TEXT NOT NULL,
    id INTEGER NOT NULL,
    row TEXT NOT NULL,
    PRIMARY KEY (species, id)
);
CREATE TABLE IF NOT EXISTS photos (
    species TEXT NOT NULL,
    observation_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    photo_id INTEGER NOT NULL,
    url TEXT NOT NULL,
    login TEXT,
    license TEXT,
    attribution TEXT,
    width INTEGER,
    height INTEGER,
    file_name TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    bytes INTEGER,
    sha256 TEXT,
    reason TEXT,
    missing INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (species, observation_id, position)
);
CREATE INDEX IF NOT EXISTS photos_status ON photos (species, status);
CREATE TABLE IF NOT EXISTS outputs (
    species TEXT NOT NULL,
    writer TEXT NOT NULL,
    changes INTEGER NOT NULL,
    PRIMARY KEY (species, writer)
);
"""

PENDING, DONE, FAILED = "pending", "done", "failed"


def species_key(name: str) -> str:
    """Names that differ only in case or spacing are one species."""
    return " ".join(name.split()).casefold()


@dataclass(frozen=True, slots=True)
class PhotoRecord:
    species: str
    observation_id: ObservationId
    position: int
    photo_id: int
    url: str
    login: str | None
    license: str | None
    attribution: str | None
    width: int | None
    height: int | None
    file_name: str | None
    status: str
    bytes: int | None
    sha256: str | None
    reason: str | None
    missing: bool
    attempts: int
    observer_id: int | None = None
    stored_width: int | None = None
    stored_height: int | None = None


@dataclass(frozen=True, slots=True)
class ExportRow:
    """A done photo as an export reads it: the photo, its species and observation row."""

    photo: PhotoRecord
    species: str
    taxon_id: int
    taxon_name: str
    observation: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SpeciesState:
    name: str
    taxon: Taxon | None
    matched_term: str | None
    watermark: int
    observations: int


class ResumeStore:
    """One dataset's state. Open it with :meth:`open`; close it when done."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, out_dir: Path, query: Query | None = None, *, create: bool = True) -> ResumeStore:
        """Open (or create) the store of ``out_dir``, refusing a dataset of other settings."""
        path = out_dir / STATE_DIR / STATE_FILE
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            elif not path.exists():
                raise StorageError(f"no inat-async dataset in {out_dir}")
            db = _connect(path)
            db.executescript(_SCHEMA)
            _migrate(db)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the resume store {path}: {exc}") from exc
        except OSError as exc:
            raise StorageError(f"cannot create {path.parent}: {exc.strerror}") from exc
        store = cls(db, path)
        if query is not None:
            try:
                store._check_query(query, out_dir)
            except BaseException:
                store.close()
                raise
        return store

    @classmethod
    def open_path(cls, path: Path) -> ResumeStore:
        """Another connection to an open store's file, for work in a thread (writing CSVs,
        reconciling with the disk): its own connection, its SQLite waits in its thread."""
        try:
            return cls(_connect(path), path)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the resume store {path}: {exc}") from exc

    @classmethod
    def open_readonly(cls, out_dir: Path) -> ResumeStore:
        """Open the store of ``out_dir`` to read it only (``status``): nothing is
        created, migrated or changed; writing through it fails."""
        path = out_dir / STATE_DIR / STATE_FILE
        try:
            return cls(connect_readonly(path, timeout=30.0), path)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the resume store {path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResumeStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- dataset identity -------------------------------------------------------------------

    def _check_query(self, query: Query, out_dir: Path) -> None:
        wanted = query.describe()
        with self._write():
            row = self._db.execute("SELECT value FROM meta WHERE key = 'query'").fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('query', ?), ('schema', ?)",
                    (json.dumps(wanted, sort_keys=True), str(SCHEMA_VERSION)),
                )
                return
        stored: dict[str, str] = json.loads(row[0])
        # Both ways: a filter set before and dropped now changes the dataset too.
        differences = [
            f"{key} {_shown(stored.get(key))} before, {_shown(wanted.get(key))} now"
            for key in sorted(set(stored) | set(wanted), key=_identity_order)
            if stored.get(key) != wanted.get(key)
        ]
        if differences:
            raise OutputConflictError(
                f"{out_dir} holds a dataset downloaded with other settings "
                f"({'; '.join(differences)}): rerun with the same settings to resume it, "
                "or choose another out_dir folder for the new ones",
                options=("out_dir",),
            )

    def query(self) -> dict[str, str] | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'query'").fetchone()
        return json.loads(row[0]) if row else None

    def dataset_id(self) -> str:
        """A random id naming this dataset, made on first use: exports record it."""
        with self._write():
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('dataset_id', ?)",
                (str(uuid.uuid4()),),
            )
        return str(
            self._db.execute("SELECT value FROM meta WHERE key = 'dataset_id'").fetchone()[0]
        )

    def note_api_url(self, api_url: str) -> None:
        """Remember the API base the dataset came from (the last one used)."""
        with self._write():
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('api_url', ?)", (api_url,)
            )

    def api_url(self) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'api_url'").fetchone()
        return str(row[0]) if row else None

    def spread_range(self, name: str) -> tuple[int, int] | None:
        """The id range a spread sample of ``name`` was drawn over, once it was fixed."""
        row = self._db.execute(
            "SELECT value FROM meta WHERE key = ?", (f"spread_range:{species_key(name)}",)
        ).fetchone()
        if row is None:
            return None
        low, high = json.loads(row[0])
        return int(low), int(high)

    def set_spread_range(self, name: str, low: int, high: int) -> None:
        """Fix the range once: a rerun or a larger -o draws over the same one."""
        with self._write():
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                (f"spread_range:{species_key(name)}", json.dumps([low, high])),
            )

    # -- species ------------------------------------------------------------------------------

    def species(self, name: str) -> SpeciesState:
        key = species_key(name)
        row = self._db.execute(
            "SELECT name, taxon_id, taxon_name, matched_term, watermark FROM species WHERE key = ?",
            (key,),
        ).fetchone()
        count = self._db.execute(
            "SELECT COUNT(*) FROM observations WHERE species = ?", (key,)
        ).fetchone()[0]
        if row is None:
            return SpeciesState(name, None, None, 0, count)
        taxon = Taxon(id=row[1], name=row[2]) if row[1] is not None and row[2] else None
        return SpeciesState(row[0], taxon, row[3], row[4], count)

    def all_species(self) -> list[SpeciesState]:
        names = [r[0] for r in self._db.execute("SELECT name FROM species ORDER BY name")]
        return [self.species(name) for name in names]

    def set_taxon(self, name: str, taxon: Taxon, matched_term: str | None) -> None:
        with self._write():
            self._db.execute(
                """INSERT INTO species (key, name, taxon_id, taxon_name, matched_term)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (key) DO UPDATE SET taxon_id = excluded.taxon_id,
                       taxon_name = excluded.taxon_name, matched_term = excluded.matched_term""",
                (species_key(name), name, taxon.id, taxon.name, matched_term),
            )

    # -- pages --------------------------------------------------------------------------------

    def record_page(
        self,
        name: str,
        observations: Sequence[tuple[Observation, dict[str, Any], Sequence[Photo]]],
        watermark: int,
        *,
        skipped: Sequence[Mapping[str, int]] = (),
        dropped: Mapping[str, int] | None = None,
    ) -> list[PhotoRecord]:
        """Store a page's observations and photos and move the watermark, all or nothing.

        ``skipped`` holds, beside each observation, what was left out of it and why
        (reason -> count); ``dropped`` what the page itself left out. Both are added to
        the species' totals, an observation's only when it is new, so a page fetched
        again never counts twice. Returns the photos that need downloading (new ones, in
        page order).
        """
        key = species_key(name)
        new: list[PhotoRecord] = []
        page_skips: Counter[str] = Counter(dropped or {})
        with self._write():
            for index, (observation, row, photos) in enumerate(observations):
                inserted = self._db.execute(
                    "INSERT OR IGNORE INTO observations (species, id, row) VALUES (?, ?, ?)",
                    (key, observation.id, json.dumps(row, ensure_ascii=False)),
                ).rowcount
                if not inserted:
                    continue
                if index < len(skipped):
                    page_skips.update(skipped[index])
                for photo in photos:
                    record = PhotoRecord(
                        species=key,
                        observation_id=observation.id,
                        position=photo.position,
                        photo_id=photo.id,
                        url=photo.url,
                        login=observation.user_login,
                        license=photo.license_code,
                        attribution=photo.attribution,
                        width=photo.width,
                        height=photo.height,
                        file_name=None,
                        status=PENDING,
                        bytes=None,
                        sha256=None,
                        reason=None,
                        missing=False,
                        attempts=0,
                        observer_id=observation.user_id,
                    )
                    self._db.execute(
                        """INSERT OR IGNORE INTO photos (species, observation_id, position,
                               photo_id, url, login, license, attribution, width, height,
                               observer_id)
                           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                        (
                            key,
                            record.observation_id,
                            record.position,
                            record.photo_id,
                            record.url,
                            record.login,
                            record.license,
                            record.attribution,
                            record.width,
                            record.height,
                            record.observer_id,
                        ),
                    )
                    new.append(record)
            _fill_observer_ids(self._db, observations)
            self._db.execute(
                """UPDATE species SET watermark = MAX(watermark, ?), changes = changes + 1
                   WHERE key = ?""",
                (watermark, key),
            )
            if +page_skips:
                self._add_skipped(key, page_skips)
        return new

    def _add_skipped(self, key: str, more: Counter[str]) -> None:
        row = self._db.execute("SELECT skipped FROM species WHERE key = ?", (key,)).fetchone()
        totals: Counter[str] = Counter(json.loads(row[0]) if row and row[0] else {})
        totals.update(more)
        self._db.execute(
            "UPDATE species SET skipped = ? WHERE key = ?",
            (json.dumps(dict(sorted(totals.items()))), key),
        )

    def skipped(self, name: str) -> dict[str, int]:
        """What every walk of ``name`` so far left out, by reason (see :meth:`record_page`)."""
        row = self._db.execute(
            "SELECT skipped FROM species WHERE key = ?", (species_key(name),)
        ).fetchone()
        return {str(k): int(v) for k, v in json.loads(row[0]).items()} if row and row[0] else {}

    # -- photos -------------------------------------------------------------------------------

    def photos(self, name: str, *statuses: str) -> list[PhotoRecord]:
        return list(self.iter_photos(name, *statuses))

    def iter_photos(self, name: str, *statuses: str) -> Iterator[PhotoRecord]:
        """Photos in file order, read lazily: a species may have hundreds of thousands.

        Consume it before writing to this store again (it holds a read cursor).
        """
        sql = f"SELECT {', '.join(_PHOTO_COLUMNS)} FROM photos"
        args: list[object] = [species_key(name)]
        if statuses:
            # Else SQLite walks the primary key to save a sort: every photo of the species
            # (30 ms for 150,000) to find the few failed or pending ones.
            sql += " INDEXED BY photos_status WHERE species = ?"
            sql += f" AND status IN ({', '.join('?' for _ in statuses)})"
            args.extend(statuses)
        else:
            sql += " WHERE species = ?"
        sql += " ORDER BY observation_id, position"
        return map(_photo, self._db.execute(sql, args))

    def photos_at(self, name: str, keys: Sequence[tuple[int, int]]) -> Iterator[PhotoRecord]:
        """The photos of ``name`` at these (observation id, position) keys."""
        sql = (
            f"SELECT {', '.join(_PHOTO_COLUMNS)} FROM photos "
            "WHERE species = ? AND observation_id = ? AND position = ?"
        )
        key = species_key(name)
        for observation_id, position in keys:
            row = self._db.execute(sql, (key, observation_id, position)).fetchone()
            if row is not None:
                yield _photo(row)

    def mark_done(
        self,
        record: PhotoRecord,
        file_name: str,
        nbytes: int,
        sha256: str,
        dimensions: tuple[int, int] | None = None,
    ) -> None:
        """``dimensions``: the stored file's own (width, height), None when unreadable."""
        with self._write():
            self._apply_statuses([done_change(record, file_name, nbytes, sha256, dimensions)])

    def mark_failed(self, record: PhotoRecord, reason: str, *, missing: bool) -> None:
        with self._write():
            self._apply_statuses([failed_change(record, reason, missing=missing)])

    def mark_pending(self, record: PhotoRecord) -> None:
        with self._write():
            self._apply_statuses([pending_change(record)])

    def _apply_statuses(self, changes: Sequence[StatusChange]) -> None:
        """Apply status changes inside the caller's transaction; count them per species."""
        for sql, group in itertools.groupby(changes, key=lambda change: change[0]):
            self._db.executemany(sql, [change[1] for change in group])
        touched = sorted({change[2] for change in changes})
        self._db.executemany(
            "UPDATE species SET changes = changes + 1 WHERE key = ?", [(k,) for k in touched]
        )

    def commit_statuses(self, changes: Sequence[StatusChange]) -> None:
        """Commit a batch of status changes in one transaction, or raise :class:`StoreBusy`
        at once when another connection holds the write lock (never sleeping: the caller
        waits on the event loop's timer and tries again)."""
        self._db.execute("PRAGMA busy_timeout=0")
        try:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    raise StoreBusy(str(exc)) from exc
                raise StorageError(f"cannot write the resume store {self.path}: {exc}") from exc
            try:
                self._apply_statuses(changes)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StorageError(f"cannot write the resume store {self.path}: {exc}") from exc
        finally:
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def has_photos(self, name: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM photos WHERE species = ? LIMIT 1", (species_key(name),)
        ).fetchone()
        return row is not None

    # -- outputs ------------------------------------------------------------------------------

    def changes(self, name: str) -> int:
        """How many writes touched the species so far (an output's freshness mark)."""
        row = self._db.execute(
            "SELECT changes FROM species WHERE key = ?", (species_key(name),)
        ).fetchone()
        return int(row[0]) if row else 0

    def output_written_at(self, name: str, writer: str) -> int | None:
        row = self._db.execute(
            "SELECT changes FROM outputs WHERE species = ? AND writer = ?",
            (species_key(name), writer),
        ).fetchone()
        return int(row[0]) if row else None

    def note_output(self, name: str, writer: str, changes: int) -> None:
        with self._write():
            self._db.execute(
                "INSERT OR REPLACE INTO outputs (species, writer, changes) VALUES (?, ?, ?)",
                (species_key(name), writer, changes),
            )

    def read_snapshot(self) -> contextlib.AbstractContextManager[None]:
        """Reads inside see one consistent state of the store (a deferred transaction)."""
        return _Snapshot(self._db)

    def iter_export_rows(self) -> Iterator[ExportRow]:
        """Every done photo of every resolved species, with its observation's row, by photo
        id. An observer id left unknown is taken from another photo of the same login."""
        columns = ", ".join(f"p.{c}" for c in _PHOTO_COLUMNS)
        cursor = self._db.execute(
            f"""SELECT {columns}, s.name, s.taxon_id, s.taxon_name, o.row, k.observer_id
                FROM photos p JOIN species s ON s.key = p.species
                LEFT JOIN observations o ON o.species = p.species AND o.id = p.observation_id
                LEFT JOIN (SELECT login, MAX(observer_id) AS observer_id FROM photos
                           WHERE observer_id IS NOT NULL GROUP BY login) k
                       ON p.observer_id IS NULL AND k.login = p.login
                WHERE p.status = 'done' AND s.taxon_id IS NOT NULL AND s.taxon_name IS NOT NULL
                ORDER BY p.photo_id, s.taxon_id, p.species"""
        )
        width = len(_PHOTO_COLUMNS)
        for row in cursor:
            record = _photo(row[:width])
            name, taxon_id, taxon_name, observation, observer_id = row[width:]
            if record.observer_id is None and observer_id is not None:
                record = replace(record, observer_id=observer_id)
            yield ExportRow(
                record, name, taxon_id, taxon_name, json.loads(observation) if observation else {}
            )

    def observation_rows(self, name: str) -> Iterator[dict[str, Any]]:
        for (row,) in self._db.execute(
            "SELECT row FROM observations WHERE species = ? ORDER BY id", (species_key(name),)
        ):
            yield json.loads(row)

    def observation_ids(self, name: str) -> set[int]:
        return {
            row[0]
            for row in self._db.execute(
                "SELECT id FROM observations WHERE species = ?", (species_key(name),)
            )
        }

    def observer_counts(self, name: str) -> dict[str, int]:
        """Stored observations per observer (``id:<user id>``, else ``login:<login>``)."""
        counts: dict[str, int] = {}
        for user_id, login, number in self._db.execute(
            """SELECT json_extract(row, '$.observer_id'), json_extract(row, '$.observer_login'),
                   COUNT(*) FROM observations WHERE species = ? GROUP BY 1, 2""",
            (species_key(name),),
        ):
            key = f"id:{user_id}" if isinstance(user_id, int) else f"login:{login or ''}"
            counts[key] = counts.get(key, 0) + number
        return counts

    def counts(self, name: str) -> dict[str, int]:
        """Photos by status, with failed split into missing and failed."""
        counts = {PENDING: 0, DONE: 0, FAILED: 0, "missing": 0, "bytes": 0}
        for status, missing, number, nbytes in self._db.execute(
            """SELECT status, missing, COUNT(*), COALESCE(SUM(bytes), 0) FROM photos
               WHERE species = ? GROUP BY status, missing""",
            (species_key(name),),
        ):
            key = "missing" if status == FAILED and missing else status
            counts[key] += number
            if status == DONE:
                counts["bytes"] += nbytes
        return counts

    # -- plumbing -----------------------------------------------------------------------------

    def _write(self) -> _Transaction:
        return _Transaction(self._db, self.path)


@dataclass(slots=True)
class Reconciled:
    """What a rerun of a species still has to do, after comparing the store with the disk."""

    #: Done photos whose files are where the store says.
    already_done: int
    #: Pending, failed for a transient reason, or done but deleted by the user.
    todo: list[PhotoRecord]


async def reconcile(
    store: ResumeStore,
    name: str,
    images: Path,
    saved_paths: Callable[[PhotoRecord], Sequence[Path]],
) -> Reconciled:
    """Compare the stored photos of ``name`` with the files in ``images``, in a thread
    with its own connection (see :func:`reconcile_now`): the loop stays free whatever the
    size of the species."""
    if not store.has_photos(name):
        return Reconciled(0, [])  # a new species: nothing to compare (one indexed lookup)
    return await asyncio.to_thread(reconcile_now, store.path, name, images, saved_paths)


def reconcile_now(
    store_path: Path,
    name: str,
    images: Path,
    saved_paths: Callable[[PhotoRecord], Sequence[Path]],
) -> Reconciled:
    """Photos an earlier run left to do: pending, failed for a transient reason, or deleted.

    The photos are streamed from the store; done ones, most of a resumed species, are only
    counted, never held, so memory grows with what is left to do, not with what is done
    (plus the folder's file names). A pending photo whose file is under its final name was
    renamed into place before the store heard of it (a kill between the two, or a status
    batch not yet committed): it is adopted if it is a whole image of its type, else fetched
    again (the download replaces it). ``saved_paths`` gives the names a photo may be saved
    under.
    """
    remove_stale_parts(images)  # a dead run's temporary files
    with ResumeStore.open_path(store_path) as store:
        on_disk = _file_names(images)
        already_done = 0
        todo: list[PhotoRecord] = []
        changes: list[StatusChange] = []
        with store.read_snapshot():
            # Done photos, most of a rerun, cost a name lookup each: no record is built.
            deleted: list[tuple[int, int]] = []
            for observation_id, position, file_name in store._db.execute(
                """SELECT observation_id, position, file_name FROM photos
                   WHERE species = ? AND status = 'done'""",
                (species_key(name),),
            ):
                if file_name in on_disk:
                    already_done += 1
                else:
                    deleted.append((observation_id, position))
            for record in store.iter_photos(name, PENDING, FAILED):
                if record.status == PENDING:
                    adopted = _adopt(record, saved_paths(record), on_disk)
                    if adopted is not None:
                        changes.append(adopted)
                        already_done += 1
                    else:
                        todo.append(record)
                elif not record.missing:
                    todo.append(record)
            # The user deleted them: fetch them again.
            for record in store.photos_at(name, deleted):
                changes.append(pending_change(record))
                todo.append(record)
        todo.sort(key=lambda record: (record.observation_id, record.position))
        if changes:
            with store._write():
                store._apply_statuses(changes)
    return Reconciled(already_done, todo)


def _file_names(folder: Path) -> set[str]:
    try:
        with os.scandir(folder) as entries:
            return {entry.name for entry in entries if entry.is_file(follow_symlinks=False)}
    except FileNotFoundError:
        return set()
    except OSError as exc:
        raise StorageError(f"cannot read {folder}: {exc.strerror}") from exc


def _adopt(
    record: PhotoRecord, candidates: Sequence[Path], on_disk: set[str]
) -> StatusChange | None:
    for path in candidates:
        if path.name not in on_disk:
            continue
        check = check_file(path, content_type_for(path.suffix))
        if check.problem is not None:
            return None  # not what the server sends: download it over this file
        nbytes, sha256 = hash_file(path)
        return done_change(record, path.name, nbytes, sha256, check.size)
    return None


def hash_file(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file, read in 1 MiB pieces (also what exports and verify use)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()


class StatusBatch:
    """Per-photo status changes committed together: one transaction per batch, not per photo.

    A photo is renamed into place before its change is queued, so a crash before the batch
    commits loses nothing: the next run finds the file under its final name and adopts it
    (:func:`reconcile_now`); a lost failure is simply tried again. A batch commits when
    :attr:`size` changes wait or the oldest waited :attr:`age` seconds (checked as photos
    finish: see :attr:`due`), and whenever the run needs the store current (a species'
    end). A store locked by another connection is waited for on the event loop's timer,
    never inside SQLite, which would sleep on the loop's thread.
    """

    def __init__(
        self,
        store: ResumeStore,
        *,
        size: int = 256,
        age: float = 1.0,
        patience: float = BUSY_TIMEOUT_MS / 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self.size = size
        self.age = age
        self._patience = patience
        self._clock = clock
        self._pending: list[StatusChange] = []
        self._since = 0.0
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, change: StatusChange) -> None:
        if not self._pending:
            self._since = self._clock()
        self._pending.append(change)

    @property
    def due(self) -> bool:
        return len(self._pending) >= self.size or (
            bool(self._pending) and self._clock() - self._since >= self.age
        )

    async def flush(self) -> None:
        """Commit every change queued so far (and any queued while waiting for the lock)."""
        async with self._lock:
            waited, delay = 0.0, 0.002
            while self._pending:
                changes, self._pending = self._pending, []
                try:
                    self._store.commit_statuses(changes)
                except StoreBusy:
                    self._pending = changes + self._pending
                    if waited >= self._patience:
                        raise StorageError(
                            f"the resume store {self._store.path} stayed locked by another "
                            f"connection for {waited:.0f} s"
                        ) from None
                    await asyncio.sleep(delay)
                    waited += delay
                    delay = min(delay * 2, 0.1)
                except BaseException:
                    self._pending = changes + self._pending
                    raise


class StoreBusy(Exception):
    """Another connection holds the store's write lock: wait a moment and try again."""


class _Snapshot:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, *exc_info: object) -> None:
        self._db.execute("COMMIT")


def _is_busy(exc: sqlite3.Error) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


#: A status change: (statement, its arguments, the species key it touches).
StatusChange = tuple[str, tuple[object, ...], str]

_DONE_SQL = """UPDATE photos SET status = 'done', file_name = ?, bytes = ?, sha256 = ?,
    stored_width = ?, stored_height = ?, reason = NULL, missing = 0, attempts = attempts + 1
    WHERE species = ? AND observation_id = ? AND position = ?"""
_FAILED_SQL = """UPDATE photos SET status = 'failed', reason = ?, missing = ?,
    attempts = attempts + 1 WHERE species = ? AND observation_id = ? AND position = ?"""
_PENDING_SQL = """UPDATE photos SET status = 'pending', file_name = NULL, bytes = NULL,
    sha256 = NULL WHERE species = ? AND observation_id = ? AND position = ?"""


def done_change(
    record: PhotoRecord,
    file_name: str,
    nbytes: int,
    sha256: str,
    dimensions: tuple[int, int] | None = None,
) -> StatusChange:
    width, height = dimensions or (None, None)
    args = (file_name, nbytes, sha256, width, height, *_pk(record))
    return _DONE_SQL, args, record.species


def failed_change(record: PhotoRecord, reason: str, *, missing: bool) -> StatusChange:
    return _FAILED_SQL, (reason, int(missing), *_pk(record)), record.species


def pending_change(record: PhotoRecord) -> StatusChange:
    return _PENDING_SQL, _pk(record), record.species


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, translating SQLite failures (full disk) to StorageError.
    Inside a transaction already open, it joins it (the outer one commits)."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db, self._path = db, path
        self._joined = False

    def __enter__(self) -> None:
        if self._db.in_transaction:
            self._joined = True
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write the resume store {self._path}: {exc}") from exc

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._joined:
            return
        try:
            self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        except sqlite3.Error as error:
            if exc_type is None:
                self._db.execute("ROLLBACK")
                raise StorageError(
                    f"cannot write the resume store {self._path}: {error}"
                ) from error


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    enable_wal(db, timeout=BUSY_TIMEOUT_MS / 1000)
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return db


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a store of an older schema up to date: new columns start NULL (unknown)."""
    # One write transaction from the look at the columns to the last change: two
    # processes opening an old store together would otherwise both add a column.
    db.execute("BEGIN IMMEDIATE")
    try:
        _migrate_in_transaction(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _migrate_in_transaction(db: sqlite3.Connection) -> None:
    for table, added in (("photos", _ADDED_PHOTO_COLUMNS), ("species", _ADDED_SPECIES_COLUMNS)):
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for name, kind in added:
            if name not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    # Only rows still missing their observer id are indexed: the index stays empty in a
    # dataset created with it, and makes filling old rows by login cheap.
    db.execute(
        "CREATE INDEX IF NOT EXISTS photos_unknown_observer ON photos (login) "
        "WHERE observer_id IS NULL"
    )


def _fill_observer_ids(
    db: sqlite3.Connection,
    observations: Sequence[tuple[Observation, dict[str, Any], Sequence[Photo]]],
) -> None:
    """Give rows stored without an observer id the id of an observer seen again by login."""
    seen = {
        (o.user_login, o.user_id)
        for o, _, _ in observations
        if o.user_login is not None and o.user_id is not None
    }
    for login, user_id in seen:
        db.execute(
            """UPDATE species SET changes = changes + 1 WHERE key IN (SELECT DISTINCT species
               FROM photos WHERE observer_id IS NULL AND login = ?)""",
            (login,),
        )
        db.execute(
            "UPDATE photos SET observer_id = ? WHERE observer_id IS NULL AND login = ?",
            (user_id, login),
        )


def _shown(value: str | None) -> str:
    return "not set" if value is None else repr(value)


def _identity_order(key: str) -> tuple[int, str]:
    # The original three settings first, then the filters by name.
    first = ("quality", "license", "size")
    return (first.index(key), "") if key in first else (len(first), key)


def _pk(record: PhotoRecord) -> tuple[str, ObservationId, int]:
    return record.species, record.observation_id, record.position


def _photo(row: tuple[Any, ...]) -> PhotoRecord:
    # Positional, in the columns' order (a dict of keywords costs twice as much per row,
    # and a species may have 150,000 photos); SQLite stores the flag as 0 or 1.
    values = list(row)
    values[_MISSING] = bool(values[_MISSING])
    return PhotoRecord(*values)


_PHOTO_COLUMNS = tuple(field.name for field in fields(PhotoRecord))
_MISSING = _PHOTO_COLUMNS.index("missing")
