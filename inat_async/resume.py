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

import json
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ._readonly import connect_readonly
from .errors import OutputConflictError, StorageError
from .models import Observation, Photo, Taxon
from .options import Query

SCHEMA_VERSION = 2
STATE_DIR = ".inat-async"
STATE_FILE = "state.sqlite3"

#: Columns added after schema 1, with their types: :func:`_migrate` adds them to old stores.
#: ``observer_id`` is the observer's numeric id (logins can change; NULL: unknown, in
#: rows stored before it was kept); ``stored_width``/``stored_height`` are the pixel
#: dimensions of the downloaded file (``width``/``height`` are the original's).
_ADDED_PHOTO_COLUMNS = (
    ("observer_id", "INTEGER"),
    ("stored_width", "INTEGER"),
    ("stored_height", "INTEGER"),
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
"""

PENDING, DONE, FAILED = "pending", "done", "failed"


def species_key(name: str) -> str:
    """Names that differ only in case or spacing are one species."""
    return " ".join(name.split()).casefold()


@dataclass(frozen=True, slots=True)
class PhotoRecord:
    species: str
    observation_id: int
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
            db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
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
    ) -> list[PhotoRecord]:
        """Store a page's observations and photos and move the watermark, all or nothing.

        Returns the photos that need downloading (new ones, in page order).
        """
        key = species_key(name)
        new: list[PhotoRecord] = []
        with self._write():
            for observation, row, photos in observations:
                inserted = self._db.execute(
                    "INSERT OR IGNORE INTO observations (species, id, row) VALUES (?, ?, ?)",
                    (key, observation.id, json.dumps(row, ensure_ascii=False)),
                ).rowcount
                if not inserted:
                    continue
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
                "UPDATE species SET watermark = MAX(watermark, ?) WHERE key = ?", (watermark, key)
            )
        return new

    # -- photos -------------------------------------------------------------------------------

    def photos(self, name: str, *statuses: str) -> list[PhotoRecord]:
        return list(self.iter_photos(name, *statuses))

    def iter_photos(self, name: str, *statuses: str) -> Iterator[PhotoRecord]:
        """Photos in file order, read lazily: a species may have hundreds of thousands.

        Consume it before writing to this store again (it holds a read cursor).
        """
        sql = f"SELECT {', '.join(_PHOTO_COLUMNS)} FROM photos WHERE species = ?"
        args: list[object] = [species_key(name)]
        if statuses:
            sql += f" AND status IN ({', '.join('?' for _ in statuses)})"
            args.extend(statuses)
        sql += " ORDER BY observation_id, position"
        return map(_photo, self._db.execute(sql, args))

    def mark_done(
        self,
        record: PhotoRecord,
        file_name: str,
        nbytes: int,
        sha256: str,
        dimensions: tuple[int, int] | None = None,
    ) -> None:
        """``dimensions``: the stored file's own (width, height), None when unreadable."""
        width, height = dimensions or (None, None)
        self._commit_one(
            """UPDATE photos SET status = 'done', file_name = ?, bytes = ?, sha256 = ?,
                   stored_width = ?, stored_height = ?,
                   reason = NULL, missing = 0, attempts = attempts + 1
               WHERE species = ? AND observation_id = ? AND position = ?""",
            (file_name, nbytes, sha256, width, height, *_pk(record)),
        )

    def mark_failed(self, record: PhotoRecord, reason: str, *, missing: bool) -> None:
        self._commit_one(
            """UPDATE photos SET status = 'failed', reason = ?, missing = ?,
                   attempts = attempts + 1
               WHERE species = ? AND observation_id = ? AND position = ?""",
            (reason, int(missing), *_pk(record)),
        )

    def mark_pending(self, record: PhotoRecord) -> None:
        with self._write():
            self._db.execute(
                """UPDATE photos SET status = 'pending', file_name = NULL, bytes = NULL,
                       sha256 = NULL WHERE species = ? AND observation_id = ? AND position = ?""",
                _pk(record),
            )

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

    def _commit_one(self, sql: str, args: Sequence[object]) -> None:
        """One statement, committed on its own: the per-photo path. Outside an explicit
        transaction SQLite commits each statement by itself, as atomically and durably
        as BEGIN IMMEDIATE ... COMMIT around it would, in one call instead of three."""
        try:
            self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write the resume store {self.path}: {exc}") from exc


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, translating SQLite failures (full disk) to StorageError."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db, self._path = db, path

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write the resume store {self._path}: {exc}") from exc

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        except sqlite3.Error as error:
            if exc_type is None:
                self._db.execute("ROLLBACK")
                raise StorageError(
                    f"cannot write the resume store {self._path}: {error}"
                ) from error


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a store of an older schema up to date: new columns start NULL (unknown)."""
    present = {row[1] for row in db.execute("PRAGMA table_info(photos)")}
    for name, kind in _ADDED_PHOTO_COLUMNS:
        if name not in present:
            db.execute(f"ALTER TABLE photos ADD COLUMN {name} {kind}")
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
            "UPDATE photos SET observer_id = ? WHERE observer_id IS NULL AND login = ?",
            (user_id, login),
        )


def _shown(value: str | None) -> str:
    return "not set" if value is None else repr(value)


def _identity_order(key: str) -> tuple[int, str]:
    # The original three settings first, then the filters by name.
    first = ("quality", "license", "size")
    return (first.index(key), "") if key in first else (len(first), key)


def _pk(record: PhotoRecord) -> tuple[str, int, int]:
    return record.species, record.observation_id, record.position


def _photo(row: tuple[Any, ...]) -> PhotoRecord:
    values = dict(zip(_PHOTO_COLUMNS, row, strict=True))
    values["missing"] = bool(values["missing"])
    return PhotoRecord(**values)


_PHOTO_COLUMNS = tuple(field.name for field in fields(PhotoRecord))
