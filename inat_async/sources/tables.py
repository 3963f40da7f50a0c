"""The Open Data metadata tables, found on disk, checked, and queried in place with DuckDB.

iNaturalist publishes four gzipped, tab-separated tables with a header line and no
quoting at all (``observations``, ``observers``, ``photos``, ``taxa``; see the
``inaturalist/inaturalist-open-data`` repository). The photos table alone is tens of GB
once uncompressed, so nothing here loads a table into Python: DuckDB reads the files
straight from their gzip streams (``read_csv`` with explicit column types, ``quote=''``),
and one selection for a whole run scans each table once, keeping only the chosen rows
in DuckDB's own temporary tables (which spill to disk under a memory limit).

:class:`TableFiles` finds the tables (a folder of ``<table>.csv.gz`` or ``.csv`` files,
an extracted bundle, or the ``inaturalist-open-data-*.tar.gz`` bundle itself, extracted
once next to it) and checks their header lines: bad input is an
:class:`~inat_async.errors.OpenDataError` naming the file, found before anything is
created. :class:`Tables` answers the queries: names to taxa, subtrees, and the first
observations of each taxon by their smallest photo id.

DuckDB is an optional extra (``pip install 'inat-async[opendata]'``), imported lazily.
"""

from __future__ import annotations

import contextlib
import difflib
import gzip
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OpenDataError, UsageError

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

TABLES: tuple[str, ...] = ("observations", "observers", "photos", "taxa")
#: Every column the tool reads, with its DuckDB type (structure.sql's, widened where
#: a stricter type would make one odd value fail a whole scan).
COLUMN_TYPES: dict[str, dict[str, str]] = {
    "observations": {
        "observation_uuid": "VARCHAR",
        "observer_id": "BIGINT",
        "latitude": "DOUBLE",
        "longitude": "DOUBLE",
        "positional_accuracy": "BIGINT",
        "taxon_id": "BIGINT",
        "quality_grade": "VARCHAR",
        "observed_on": "VARCHAR",
    },
    "photos": {
        "photo_id": "BIGINT",
        "observation_uuid": "VARCHAR",
        "observer_id": "BIGINT",
        "extension": "VARCHAR",
        "license": "VARCHAR",
        "width": "BIGINT",
        "height": "BIGINT",
        "position": "BIGINT",
    },
    "observers": {"observer_id": "BIGINT", "login": "VARCHAR", "name": "VARCHAR"},
    "taxa": {
        "taxon_id": "BIGINT",
        "ancestry": "VARCHAR",
        "rank_level": "DOUBLE",
        "rank": "VARCHAR",
        "name": "VARCHAR",
        "active": "VARCHAR",
    },
}
BUNDLE_PATTERN = "inaturalist-open-data-*.tar.gz"
_SNAPSHOT_DATE = re.compile(r"inaturalist-open-data-(\d{8})")
#: DuckDB's working memory; beyond it, its temporary tables spill to disk.
MEMORY_LIMIT = "512MB"


def import_duckdb() -> Any:
    """DuckDB, or a one-line :class:`UsageError` naming the extra that installs it."""
    try:
        import duckdb
    except ImportError:
        raise UsageError(
            "the Open Data tables are read with DuckDB: pip install 'inat-async[opendata]'"
        ) from None
    return duckdb


@dataclass(frozen=True, slots=True)
class TableFiles:
    """Where the four tables of one snapshot are, their header lines, and its identity."""

    paths: dict[str, Path]
    headers: dict[str, tuple[str, ...]]
    #: ``2024-11-27`` when the bundle's name says so, else None.
    date: str | None
    #: A short hash of the files' sizes, heads and tails: another snapshot, another value.
    fingerprint: str

    @property
    def snapshot(self) -> str:
        """The snapshot's name in the dataset's identity, e.g. ``2024-11-27/3f2a9c0d1e4b``."""
        return f"{self.date or 'undated'}/{self.fingerprint}"

    @classmethod
    def locate(cls, path: str | os.PathLike[str]) -> TableFiles:
        """The tables under ``path``: a folder of them, or the bundle (extracted once).

        Raises :class:`OpenDataError` (one line naming the file) when a table is missing,
        is not gzip, or lacks a column the tool reads.
        """
        root = Path(path).expanduser()
        if not root.exists():
            raise OpenDataError(f"{root}: no such file or folder")
        date: str | None = None
        if root.is_file():
            if not root.name.endswith((".tar.gz", ".tgz")):
                raise OpenDataError(
                    f"{root}: not an Open Data bundle (inaturalist-open-data-*.tar.gz) "
                    "nor a folder of the four tables"
                )
            root, date = extract_bundle(root)
        else:
            found = _tables_in(root)
            if not found:
                root, date = _snapshot_in(root)
            else:
                date = _date_of(root.name)
        paths = _tables_in(root)
        missing = [name for name in TABLES if name not in paths]
        if missing:
            wanted = ", ".join(f"{name}.csv.gz" for name in missing)
            raise OpenDataError(
                f"{root}: missing {wanted} (a folder needs observations, observers, photos "
                "and taxa .csv.gz, or an inaturalist-open-data-*.tar.gz bundle; "
                "'inat-async open-data fetch' downloads it)"
            )
        headers = {name: _header(paths[name]) for name in TABLES}
        for name in TABLES:
            absent = [c for c in COLUMN_TYPES[name] if c not in headers[name]]
            if absent:
                raise OpenDataError(
                    f"{paths[name]}: not the Open Data {name} table: "
                    f"missing column{'s' if len(absent) > 1 else ''} {', '.join(absent)}"
                )
        return cls(paths, headers, date, _fingerprint(paths))


def _tables_in(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for name in TABLES:
        for candidate in (folder / f"{name}.csv.gz", folder / f"{name}.csv"):
            if candidate.is_file():
                found[name] = candidate
                break
    return found


def _date_of(name: str) -> str | None:
    match = _SNAPSHOT_DATE.search(name)
    if match is None:
        return None
    raw = match.group(1)
    return f"{raw[:4]}-{raw[4:6]}-{raw[6:]}"


def _snapshot_in(folder: Path) -> tuple[Path, str | None]:
    """A folder without tables: its newest extracted snapshot, else its newest bundle."""
    extracted = sorted(
        (p for p in folder.glob("inaturalist-open-data-*") if p.is_dir() and _tables_in(p)),
        key=lambda p: p.name,
    )
    if extracted:
        return extracted[-1], _date_of(extracted[-1].name)
    bundles = sorted(folder.glob(BUNDLE_PATTERN), key=lambda p: p.stat().st_mtime)
    if bundles:
        return extract_bundle(bundles[-1])
    return folder, None


def extract_bundle(bundle: Path) -> tuple[Path, str | None]:
    """Extract the tables of ``bundle`` beside it, once: ``<parent>/<its folder>/``.

    The bundle holds one folder ``inaturalist-open-data-<date>/`` with the four tables.
    Each table is written to a temporary name and renamed when complete; a folder that
    already has them all is reused. A bundle that is not a readable tar.gz, or holds no
    tables, raises :class:`OpenDataError` and leaves nothing behind.
    """
    try:
        with tarfile.open(bundle, "r:gz") as tar:
            members = [m for m in tar if m.isfile() and _table_of(m.name) is not None]
            if not members:
                raise OpenDataError(f"{bundle}: holds none of the Open Data tables")
            folder_name = Path(members[0].name).parent.name or bundle.name.split(".")[0]
            date = _date_of(folder_name) or _date_of(bundle.name)
            target = bundle.parent / _safe_folder(folder_name)
            if _complete(target, members):
                return target, date
            created = not target.exists()
            try:
                target.mkdir(exist_ok=True)
                for member in members:
                    _extract_one(tar, member, target)
            except BaseException:
                if created:
                    shutil.rmtree(target, ignore_errors=True)
                raise
            return target, date
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise OpenDataError(f"{bundle}: not a complete tar.gz bundle ({exc})") from exc
    except OSError as exc:
        raise OpenDataError(f"{bundle}: cannot extract it ({exc.strerror or exc})") from exc


def _table_of(member_name: str) -> str | None:
    base = Path(member_name).name
    for name in TABLES:
        if base in (f"{name}.csv", f"{name}.csv.gz"):
            return name
    return None


def _safe_folder(name: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9._-]", "-", name).lstrip(".-")
    return clean or "inaturalist-open-data"


def _complete(target: Path, members: Sequence[tarfile.TarInfo]) -> bool:
    for member in members:
        path = target / Path(member.name).name
        if not path.is_file() or path.stat().st_size != member.size:
            return False
    return True


def _extract_one(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    path = target / Path(member.name).name
    if path.is_file() and path.stat().st_size == member.size:
        return
    source = tar.extractfile(member)
    if source is None:
        raise OpenDataError(f"cannot read {member.name} in the bundle")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=target)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise


def _header(path: Path) -> tuple[str, ...]:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
                line = handle.readline()
        else:
            with path.open(encoding="utf-8", newline="") as handle:
                line = handle.readline()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise OpenDataError(f"{path}: not a readable gzip file ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise OpenDataError(f"{path}: not UTF-8 text") from exc
    except OSError as exc:
        raise OpenDataError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    if not line.strip():
        raise OpenDataError(f"{path}: empty, no header line")
    return tuple(column.strip() for column in line.rstrip("\r\n").split("\t"))


def _fingerprint(paths: dict[str, Path]) -> str:
    """Sizes plus the first and last 64 KiB of each file: cheap, and a new monthly
    snapshot (new rows at the end, new sizes) always changes it."""
    digest = hashlib.sha256()
    for name in TABLES:
        path = paths[name]
        size = path.stat().st_size
        digest.update(f"{name}:{size}:".encode())
        with path.open("rb") as handle:
            digest.update(handle.read(1 << 16))
            if size > 1 << 16:
                handle.seek(max(1 << 16, size - (1 << 16)))
                digest.update(handle.read())
    return digest.hexdigest()[:12]


# -- queries ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaxonRow:
    id: int
    name: str
    rank: str | None
    active: bool
    ancestry: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TableFilters:
    """What the tables can filter on (they have no places, months or annotations)."""

    #: Lower-case quality grades, or None for any.
    quality: tuple[str, ...] | None = ("research",)
    #: Lower-case photo licenses (``cc-by``, ``cc0`` ...), or None for any.
    licenses: tuple[str, ...] | None = None
    d1: str | None = None
    d2: str | None = None
    #: (swlat, swlng, nelat, nelng)
    bbox: tuple[float, float, float, float] | None = None


@dataclass(frozen=True, slots=True)
class Wanted:
    """One taxon (and its subtree) to select for: at most ``limit`` observations whose
    smallest photo id is above ``start``."""

    taxon_id: int
    start: int = 0


@dataclass(frozen=True, slots=True)
class SelectedPhoto:
    photo_id: int
    extension: str
    license: str | None
    width: int | None
    height: int | None
    #: 0, 1, ...: the table's position order (ties and nulls broken by photo id).
    rank: int


@dataclass(frozen=True, slots=True)
class SelectedObservation:
    uuid: str
    #: The smallest photo id of the observation: the walk's order and watermark.
    first_photo: int
    observer_id: int | None
    login: str | None
    name: str | None
    latitude: float | None
    longitude: float | None
    positional_accuracy: int | None
    taxon_id: int | None
    taxon_name: str | None
    taxon_rank: str | None
    quality_grade: str | None
    observed_on: str | None
    photos: tuple[SelectedPhoto, ...]


def table_license(code: str) -> str:
    """``cc-by-nc`` -> ``CC-BY-NC``, as the photos table writes licenses."""
    return code.upper()


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Tables:
    """One DuckDB connection over the four tables of a snapshot.

    Methods block (DuckDB works in its own threads); callers on an event loop run them
    with ``asyncio.to_thread``. A lock makes calls from several threads take turns.
    """

    def __init__(self, files: TableFiles, *, memory_limit: str = MEMORY_LIMIT) -> None:
        duckdb = import_duckdb()
        self.files = files
        self._lock = threading.Lock()
        self._db: DuckDBPyConnection = duckdb.connect()
        self._db.execute("SET enable_progress_bar = false")
        self._db.execute(f"SET memory_limit = {_sql_string(memory_limit)}")
        self._db.execute(f"SET temp_directory = {_sql_string(tempfile.gettempdir())}")
        for name in TABLES:
            self._db.execute(f"CREATE VIEW {name} AS SELECT * FROM {self._reader(name)}")
        self._selected = False

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _reader(self, name: str) -> str:
        """``read_csv(...)`` of a table: its real header, our types, no quoting at all."""
        header = self.files.headers[name]
        types = COLUMN_TYPES[name]
        columns = ", ".join(
            f"{_sql_string(column)}: {_sql_string(types.get(column, 'VARCHAR'))}"
            for column in header
        )
        return (
            f"read_csv({_sql_string(str(self.files.paths[name]))}, delim='\\t', quote='', "
            f"escape='', header=true, auto_detect=false, columns={{{columns}}}, "
            "null_padding=true, strict_mode=false)"
        )

    @contextlib.contextmanager
    def _query(self) -> Iterator[DuckDBPyConnection]:
        duckdb = import_duckdb()
        with self._lock:
            try:
                yield self._db
            except duckdb.Error as exc:
                raise self._explain(exc) from exc

    def _explain(self, exc: Exception) -> OpenDataError:
        """DuckDB's error as one line naming the table file at fault."""
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        for path in self.files.paths.values():
            if str(path) in str(exc):
                message = message.replace(f": {path}", "").replace(str(path), "").strip()
                return OpenDataError(f"{path}: cannot read it ({message})")
        return OpenDataError(f"cannot query the Open Data tables: {message}")

    # -- taxa -------------------------------------------------------------------------

    def taxa_named(self, names: Sequence[str]) -> dict[str, list[TaxonRow]]:
        """Every taxon whose name equals one of ``names`` (any case), by lower-case name."""
        if not names:
            return {}
        with self._query() as db:
            rows = db.execute(
                """SELECT taxon_id, name, rank, active, ancestry FROM taxa
                   WHERE lower(name) IN (SELECT lower(unnest($names)))""",
                {"names": list(names)},
            ).fetchall()
        found: dict[str, list[TaxonRow]] = {}
        for row in rows:
            taxon = _taxon_row(row)
            found.setdefault(taxon.name.lower(), []).append(taxon)
        return found

    def taxa_by_id(self, ids: Sequence[int]) -> dict[int, TaxonRow]:
        if not ids:
            return {}
        with self._query() as db:
            rows = db.execute(
                """SELECT taxon_id, name, rank, active, ancestry FROM taxa
                   WHERE taxon_id IN (SELECT unnest($ids))""",
                {"ids": list(ids)},
            ).fetchall()
        return {taxon.id: taxon for taxon in map(_taxon_row, rows)}

    def close_names(self, name: str, limit: int = 3) -> list[str]:
        """Active names that look like ``name`` (a typo), most alike first."""
        with self._query() as db:
            rows = db.execute(
                """SELECT name FROM taxa
                   WHERE lower(active) IN ('true', 't', '1') AND name IS NOT NULL
                     AND jaro_winkler_similarity(lower(name), lower($name)) >= 0.85
                   ORDER BY jaro_winkler_similarity(lower(name), lower($name)) DESC, name
                   LIMIT 50""",
                {"name": name},
            ).fetchall()
        candidates = [row[0] for row in rows]
        close = difflib.get_close_matches(name, candidates, n=limit, cutoff=0.75)
        return close or candidates[:limit]

    # -- selection --------------------------------------------------------------------

    def select(self, wanted: Sequence[Wanted], filters: TableFilters, *, limit: int) -> None:
        """Choose, for each wanted taxon, the first ``limit`` observations (by smallest
        photo id, above its ``start``) of the taxon or any taxon below it that pass
        ``filters`` and have at least one photo under a wanted license.

        One scan of each table for all taxa together; the result stays in DuckDB
        (:meth:`page` reads it). Calling it again replaces the previous selection.
        """
        roots = sorted({(w.taxon_id, w.start) for w in wanted})
        obs_where = ["TRUE"]
        if filters.quality is not None:
            grades = ", ".join(_sql_string(q) for q in filters.quality)
            # The README words them "Research Grade", "Needs ID": accept both spellings.
            obs_where.append(
                f"replace(replace(lower(o.quality_grade), ' grade', ''), ' ', '_') IN ({grades})"
            )
        if filters.d1:
            obs_where.append(f"o.observed_on >= {_sql_string(filters.d1)}")
        if filters.d2:
            obs_where.append(f"o.observed_on <= {_sql_string(filters.d2)}")
        if filters.bbox is not None:
            swlat, swlng, nelat, nelng = (float(v) for v in filters.bbox)
            obs_where.append(f"o.latitude BETWEEN {swlat!r} AND {nelat!r}")
            if swlng <= nelng:
                obs_where.append(f"o.longitude BETWEEN {swlng!r} AND {nelng!r}")
            else:  # a box across the antimeridian
                obs_where.append(f"(o.longitude >= {swlng!r} OR o.longitude <= {nelng!r})")
        license_ok = "TRUE"
        if filters.licenses is not None:
            wanted_licenses = ", ".join(_sql_string(code) for code in filters.licenses)
            license_ok = f"lower(p.license) IN ({wanted_licenses})"
        values = ", ".join(f"({taxon_id}, {start})" for taxon_id, start in roots) or "(NULL, 0)"
        with self._query() as db:
            db.execute(f"CREATE OR REPLACE TEMP TABLE roots(root, start) AS VALUES {values}")
            # The subtree of each root: taxa whose ancestry holds it ('/' or '\' between
            # ids), and the root itself (in case a table lists a taxon in its own ancestry).
            db.execute(
                """CREATE OR REPLACE TEMP TABLE wanted AS
                   SELECT DISTINCT t.taxon_id, t.name, t.rank, r.root, r.start
                   FROM (SELECT taxon_id, name, rank,
                                unnest(string_split(
                                    replace(coalesce(ancestry, ''), '\\', '/'), '/')) AS up
                         FROM taxa) t
                   JOIN roots r ON t.up = CAST(r.root AS VARCHAR)
                   UNION
                   SELECT t.taxon_id, t.name, t.rank, r.root, r.start
                   FROM taxa t JOIN roots r ON t.taxon_id = r.root"""
            )
            db.execute(
                f"""CREATE OR REPLACE TEMP TABLE obs_sel AS
                    SELECT o.observation_uuid, o.observer_id, o.latitude, o.longitude,
                           o.positional_accuracy, o.taxon_id, o.quality_grade,
                           o.observed_on, w.name AS taxon_name, w.rank AS taxon_rank,
                           w.root, w.start
                    FROM observations o JOIN wanted w ON o.taxon_id = w.taxon_id
                    WHERE {" AND ".join(obs_where)}"""
            )
            db.execute(
                f"""CREATE OR REPLACE TEMP TABLE ph_sel AS
                    SELECT p.observation_uuid, p.photo_id, coalesce(p.extension, '') AS extension,
                           p.license, p.width, p.height, p.position, ({license_ok}) AS license_ok
                    FROM photos p
                    WHERE p.observation_uuid IN (SELECT observation_uuid FROM obs_sel)
                      AND p.photo_id IS NOT NULL"""
            )
            db.execute(
                f"""CREATE OR REPLACE TEMP TABLE chosen AS
                    SELECT * FROM (
                        SELECT o.*, f.first_photo,
                               row_number() OVER (PARTITION BY o.root
                                                  ORDER BY f.first_photo) AS n
                        FROM obs_sel o JOIN (
                            SELECT observation_uuid, min(photo_id) AS first_photo,
                                   bool_or(license_ok) AS any_ok
                            FROM ph_sel GROUP BY observation_uuid
                        ) f ON f.observation_uuid = o.observation_uuid
                        WHERE f.any_ok AND f.first_photo > o.start
                    ) WHERE n <= {int(limit)}"""
            )
            db.execute(
                """CREATE OR REPLACE TEMP TABLE chosen_people AS
                   SELECT c.*, u.login, u.name AS observer_name
                   FROM chosen c LEFT JOIN observers u ON u.observer_id = c.observer_id"""
            )
            db.execute(
                """CREATE OR REPLACE TEMP TABLE chosen_photos AS
                   SELECT c.root, c.first_photo, p.photo_id, p.extension, p.license,
                          p.width, p.height,
                          row_number() OVER (PARTITION BY c.root, c.observation_uuid
                                             ORDER BY p.position NULLS LAST, p.photo_id) - 1
                              AS rank
                   FROM chosen c JOIN ph_sel p ON p.observation_uuid = c.observation_uuid"""
            )
            for table in ("obs_sel", "ph_sel", "chosen"):
                db.execute(f"DROP TABLE {table}")
        self._selected = True

    @property
    def selected(self) -> bool:
        return self._selected

    def count(self, root: int, after: int = 0) -> int:
        """How many chosen observations of ``root`` have a smallest photo id above ``after``."""
        with self._query() as db:
            row = db.execute(
                "SELECT count(*) FROM chosen_people WHERE root = ? AND first_photo > ?",
                [root, after],
            ).fetchone()
        return int(row[0]) if row else 0

    def page(self, root: int, after: int, size: int = 200) -> list[SelectedObservation]:
        """The next ``size`` chosen observations of ``root`` above ``after``, in order."""
        with self._query() as db:
            observations = db.execute(
                """SELECT observation_uuid, first_photo, observer_id, login, observer_name,
                          latitude, longitude, positional_accuracy, taxon_id, taxon_name,
                          taxon_rank, quality_grade, observed_on
                   FROM chosen_people WHERE root = ? AND first_photo > ?
                   ORDER BY first_photo LIMIT ?""",
                [root, after, size],
            ).fetchall()
            if not observations:
                return []
            photos = db.execute(
                """SELECT first_photo, photo_id, extension, license, width, height, rank
                   FROM chosen_photos WHERE root = ? AND first_photo BETWEEN ? AND ?
                   ORDER BY first_photo, rank""",
                [root, observations[0][1], observations[-1][1]],
            ).fetchall()
        by_first: dict[int, list[SelectedPhoto]] = {}
        for first, photo_id, ext, license_, width, height, rank in photos:
            by_first.setdefault(first, []).append(
                SelectedPhoto(photo_id, ext or "", license_, width, height, rank)
            )
        return [
            SelectedObservation(
                uuid=row[0],
                first_photo=row[1],
                observer_id=row[2],
                login=row[3],
                name=row[4],
                latitude=row[5],
                longitude=row[6],
                positional_accuracy=row[7],
                taxon_id=row[8],
                taxon_name=row[9],
                taxon_rank=row[10],
                quality_grade=row[11],
                observed_on=row[12],
                photos=tuple(by_first.get(row[1], ())),
            )
            for row in observations
        ]


def _taxon_row(row: tuple[Any, ...]) -> TaxonRow:
    taxon_id, name, rank, active, ancestry = row
    ids = tuple(int(part) for part in re.split(r"[/\\]", ancestry or "") if part.strip().isdigit())
    return TaxonRow(
        id=int(taxon_id),
        name=name or "",
        rank=rank,
        active=str(active).strip().lower() in ("true", "t", "1"),
        ancestry=ids,
    )
