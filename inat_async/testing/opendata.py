"""The fake dataset as iNaturalist Open Data: the four metadata tables and their bundle.

The files have the exact shape of the real ones (``inaturalist/inaturalist-open-data``,
Metadata/README.md and structure.sql): gzipped, tab-separated, a header line, no quoting
at all (names keep their ``'`` and ``"``), empty fields for nulls, licenses written like
``CC-BY-NC``, taxa ancestry as the ancestor ids from the root joined by ``/`` (the taxon
itself not included). Only openly licensed photos are listed, as in the real tables::

    from inat_async.testing import build_dataset
    from inat_async.testing.opendata import write_open_data

    folder = write_open_data(build_dataset({"Apis mellifera": 40}), tmp_path / "open-data")

The bucket itself is served by :class:`~inat_async.testing.FakeInatServer` under ``/s3``:
``BASE/s3/photos/<id>/<size>.<ext>`` for the photos it holds (openly licensed photos on
the S3 host, see :func:`in_bucket`), ``BASE/s3/metadata/inaturalist-open-data-latest.tar.gz``
and the four ``BASE/s3/<table>.csv.gz`` files, with Range support.

:func:`write_synthetic_open_data` writes tables of millions of rows with DuckDB, for
measuring selections at the scale of the real snapshot.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .data import FakeDataset, FakeObservation, FakePhoto, FakeTaxon

#: How the tables write each license the tool knows (``pd`` is on some real photos).
TABLE_LICENSES: dict[str, str] = {
    "cc-by": "CC-BY",
    "cc-by-nc": "CC-BY-NC",
    "cc-by-nd": "CC-BY-ND",
    "cc-by-sa": "CC-BY-SA",
    "cc-by-nc-nd": "CC-BY-NC-ND",
    "cc-by-nc-sa": "CC-BY-NC-SA",
    "cc0": "CC0",
    "pd": "PD",
}
TABLES: tuple[str, ...] = ("observations", "observers", "photos", "taxa")
COLUMNS: dict[str, tuple[str, ...]] = {
    "observations": (
        "observation_uuid",
        "observer_id",
        "latitude",
        "longitude",
        "positional_accuracy",
        "taxon_id",
        "quality_grade",
        "observed_on",
        "anomaly_score",
    ),
    "photos": (
        "photo_uuid",
        "photo_id",
        "observation_uuid",
        "observer_id",
        "extension",
        "license",
        "width",
        "height",
        "position",
    ),
    "observers": ("observer_id", "login", "name"),
    "taxa": ("taxon_id", "ancestry", "rank_level", "rank", "name", "active"),
}
#: The snapshot date the fake bundle carries unless told otherwise.
DEFAULT_SNAPSHOT = "20241127"
BUNDLE_LATEST = "inaturalist-open-data-latest.tar.gz"

#: Taxa with quotes in their names, as the real table has (no observations point to them).
QUOTED_TAXA: tuple[tuple[str, str], ...] = (
    ("Pterostylis sp. 'Bonang'", "species"),
    ('Eucalyptus "Blue Gum" hybrid', "hybrid"),
    ("Carex sp. 'O\"Neil'", "species"),
)
_QUOTED_BASE_ID = 9_900_000


def in_bucket(photo: FakePhoto) -> bool:
    """Whether the fake bucket holds ``photo``: openly licensed, on the S3 host, not hidden."""
    return (
        photo.placeholder is None
        and photo.host == "s3"
        and photo.license_code is not None
        and photo.license_code in TABLE_LICENSES
    )


def listed(photo: FakePhoto) -> bool:
    """Whether the photos table lists ``photo``: every openly licensed, visible photo.

    A few of them are on iNaturalist's own host in the fake dataset and so missing from
    the bucket: the snapshot's "rows pointing to images no longer in the bucket".
    """
    return (
        photo.placeholder is None
        and photo.license_code is not None
        and photo.license_code in TABLE_LICENSES
    )


def listed_photos(observation: FakeObservation) -> list[FakePhoto]:
    return [photo for photo in observation.photos if listed(photo)]


@dataclass(frozen=True, slots=True)
class OpenDataFiles:
    """The four gzipped tables and the bundle, as bytes (what the bucket serves)."""

    snapshot: str
    tables: dict[str, bytes]
    bundle: bytes

    def bucket_objects(self) -> dict[str, bytes]:
        """Key -> body, as the bucket lays them out."""
        objects = {f"{name}.csv.gz": body for name, body in self.tables.items()}
        objects[f"metadata/{BUNDLE_LATEST}"] = self.bundle
        objects[f"metadata/inaturalist-open-data-{self.snapshot}.tar.gz"] = self.bundle
        return objects


def _text(value: object) -> str:
    """One unquoted field: None is empty; tabs and line breaks cannot occur in the format."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _tsv(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    out = io.StringIO()
    out.write("\t".join(columns) + "\n")
    for row in rows:
        out.write("\t".join(_text(value) for value in row) + "\n")
    return out.getvalue().encode("utf-8")


def _anomaly(observation: FakeObservation) -> float:
    raw = hashlib.blake2b(observation.uuid.encode(), digest_size=4).digest()
    return round(int.from_bytes(raw, "big") / 2**32 * 3, 6)


def observation_rows(dataset: FakeDataset) -> Iterator[tuple[object, ...]]:
    for obs in dataset.observations:
        if not listed_photos(obs):
            continue
        yield (
            obs.uuid,
            obs.user.id,
            obs.latitude,
            obs.longitude,
            obs.positional_accuracy,
            obs.taxon_id,
            obs.quality_grade,
            obs.observed_on,
            _anomaly(obs),
        )


def photo_rows(dataset: FakeDataset) -> Iterator[tuple[object, ...]]:
    for obs in dataset.observations:
        for position, photo in enumerate(obs.photos):
            if not listed(photo):
                continue
            yield (
                photo.uuid,
                photo.id,
                obs.uuid,
                obs.user.id,
                photo.extension,
                TABLE_LICENSES[photo.license_code or ""],
                photo.width,
                photo.height,
                position,
            )


def observer_rows(dataset: FakeDataset) -> Iterator[tuple[object, ...]]:
    users = {obs.user.id: obs.user for obs in dataset.observations if listed_photos(obs)}
    for user_id in sorted(users):
        yield (user_id, users[user_id].login, users[user_id].name)


def taxon_rows(dataset: FakeDataset, separator: str = "/") -> Iterator[tuple[object, ...]]:
    for taxon in sorted(dataset.taxa.values(), key=lambda t: t.id):
        yield _taxon_row(taxon, separator)
    # A few taxa whose names carry quotes, under the first genus of the tree.
    genus = next((t for t in dataset.taxa.values() if t.rank == "genus"), None)
    if genus is None:
        return
    for offset, (name, rank) in enumerate(QUOTED_TAXA):
        quoted = FakeTaxon(
            _QUOTED_BASE_ID + offset,
            name,
            rank,
            genus.id,
            (*genus.ancestor_ids, _QUOTED_BASE_ID + offset),
        )
        yield _taxon_row(quoted, separator)


def _taxon_row(taxon: FakeTaxon, separator: str) -> tuple[object, ...]:
    # The table's ancestry is the ancestors only, root first: the taxon itself is left out.
    ancestry = separator.join(str(i) for i in taxon.ancestor_ids[:-1]) or None
    return (
        taxon.id,
        ancestry,
        float(taxon.rank_level),
        taxon.rank,
        taxon.name,
        taxon.is_active,
    )


def open_data_files(
    dataset: FakeDataset, *, snapshot: str = DEFAULT_SNAPSHOT, separator: str = "/"
) -> OpenDataFiles:
    """The tables and bundle of ``dataset``, deterministic to the byte (no timestamps)."""
    plain = {
        "observations": _tsv(COLUMNS["observations"], observation_rows(dataset)),
        "observers": _tsv(COLUMNS["observers"], observer_rows(dataset)),
        "photos": _tsv(COLUMNS["photos"], photo_rows(dataset)),
        "taxa": _tsv(COLUMNS["taxa"], taxon_rows(dataset, separator)),
    }
    tables = {name: gzip.compress(body, mtime=0) for name, body in plain.items()}
    return OpenDataFiles(snapshot, tables, _bundle(plain, snapshot))


def _bundle(plain: dict[str, bytes], snapshot: str) -> bytes:
    """``inaturalist-open-data-<date>/<table>.csv`` files in one gzipped tar."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folder = tarfile.TarInfo(f"inaturalist-open-data-{snapshot}")
        folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, 1_732_665_600
        tar.addfile(folder)
        for name in TABLES:
            info = tarfile.TarInfo(f"inaturalist-open-data-{snapshot}/{name}.csv")
            info.size, info.mode, info.mtime = len(plain[name]), 0o644, 1_732_665_600
            tar.addfile(info, io.BytesIO(plain[name]))
    return gzip.compress(raw.getvalue(), mtime=0)


def write_open_data(
    dataset: FakeDataset,
    folder: Path,
    *,
    bundle: bool = False,
    snapshot: str = DEFAULT_SNAPSHOT,
    separator: str = "/",
) -> Path:
    """Write the four ``<table>.csv.gz`` files into ``folder`` (and return it), or with
    ``bundle=True`` the bundle ``folder/inaturalist-open-data-latest.tar.gz`` (returned)."""
    files = open_data_files(dataset, snapshot=snapshot, separator=separator)
    folder.mkdir(parents=True, exist_ok=True)
    if bundle:
        path = folder / BUNDLE_LATEST
        path.write_bytes(files.bundle)
        return path
    for name, body in files.tables.items():
        (folder / f"{name}.csv.gz").write_bytes(body)
    return folder


def write_synthetic_open_data(
    folder: Path,
    *,
    observations: int,
    species: int = 2_000,
    photos_per_observation: float = 1.7,
    observers: int = 50_000,
    seed: int = 0,
) -> Path:
    """Tables of ``observations`` rows (and about 1.7 photos each), written by DuckDB.

    For measuring selections at the real snapshot's scale without holding anything in
    Python: species ``Species 0`` ... ``Species N-1`` under one genus each, observations
    spread evenly over them. Photo ids ascend with the observation number, as real ones
    grow with time. Needs DuckDB (the ``opendata`` extra).
    """
    import duckdb

    folder.mkdir(parents=True, exist_ok=True)
    max_photos = max(1, round(2 * photos_per_observation - 1))
    # Percent chance of each photo after the first, so the mean is photos_per_observation.
    extra = round((photos_per_observation - 1) * 100 / max(1, max_photos - 1))
    db = duckdb.connect()
    try:
        db.execute("SET preserve_insertion_order = true")
        db.execute("SET enable_progress_bar = false")
        db.execute(f"SELECT setseed({(seed % 1000) / 1000})")

        def copy(query: str, table: str) -> None:
            target = str(folder / f"{table}.csv.gz").replace("'", "''")
            db.execute(
                f"COPY ({query}) TO '{target}' "
                "(FORMAT csv, DELIMITER '\t', HEADER, QUOTE '', ESCAPE '', "
                "COMPRESSION gzip, NULLSTR '')"
            )

        copy(
            f"""SELECT 48460 AS taxon_id, NULL AS ancestry, 100.0 AS rank_level,
                       'stateofmatter' AS rank, 'Life' AS name, 'true' AS active
                UNION ALL
                SELECT 1000000 + i, '48460', 20.0, 'genus', 'Genus' || i, 'true'
                FROM range({species}) t(i)
                UNION ALL
                SELECT 2000000 + i, '48460/' || (1000000 + i), 10.0, 'species',
                       'Species ' || i, 'true'
                FROM range({species}) t(i)""",
            "taxa",
        )
        copy(
            f"""SELECT 10 + i AS observer_id, 'user_' || i AS login,
                       CASE WHEN i % 3 = 0 THEN NULL ELSE 'Name O''Brien ' || i END AS name
                FROM range({observers}) t(i)""",
            "observers",
        )
        # One uuid per observation, derived from its number so both tables agree.
        uuid_of = "md5('obs' || CAST(i AS VARCHAR))::UUID"
        copy(
            f"""SELECT {uuid_of} AS observation_uuid,
                       10 + (i * 7919) % {observers} AS observer_id,
                       round(-60 + (i * 37 % 12000) / 100.0, 6) AS latitude,
                       round(-170 + (i * 53 % 34000) / 100.0, 6) AS longitude,
                       CASE WHEN i % 4 = 0 THEN NULL ELSE i % 100 END AS positional_accuracy,
                       2000000 + i % {species} AS taxon_id,
                       CASE (i // {species}) % 10 WHEN 0 THEN 'casual' WHEN 1 THEN 'needs_id'
                            WHEN 2 THEN 'needs_id' ELSE 'research' END AS quality_grade,
                       DATE '2015-01-01' + CAST(i % 3650 AS INTEGER) AS observed_on,
                       round((i % 997) / 300.0, 4) AS anomaly_score
                FROM range({observations}) t(i)""",
            "observations",
        )
        licenses = "['CC-BY-NC', 'CC-BY', 'CC0', 'CC-BY-SA', 'CC-BY-NC-SA', 'CC-BY-NC-ND']"
        copy(
            f"""SELECT md5('photo' || CAST(i AS VARCHAR) || '/' || CAST(k AS VARCHAR))::UUID
                           AS photo_uuid,
                       CAST(100000 + i * {max_photos} + k AS BIGINT) AS photo_id,
                       {uuid_of} AS observation_uuid,
                       10 + (i * 7919) % {observers} AS observer_id,
                       CASE WHEN i % 9 = 0 THEN 'png' ELSE 'jpg' END AS extension,
                       {licenses}[1 + (i + k) % 6] AS license,
                       2048 AS width, 1536 AS height, k AS position
                FROM range({observations}) t(i), range({max_photos}) p(k)
                WHERE k = 0 OR (hash(i, k) % 100) < {extra}
                ORDER BY i, k""",
            "photos",
        )
    finally:
        db.close()
    return folder
