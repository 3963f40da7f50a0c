"""The Open Data source end to end: tables on disk, the fake bucket over HTTP, no API at all."""

from __future__ import annotations

import csv
import gzip
import hashlib
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support import FAST_RETRY, saved_files, start_cli

from inat_async.errors import OpenDataError, OutputConflictError, TaxonNotFoundError
from inat_async.limits import LimitSettings
from inat_async.naming import photo_file_name
from inat_async.options import Query
from inat_async.pipeline import download_all
from inat_async.settings import Settings
from inat_async.sources.opendata import OPEN_DATA_URL, OpenDataSource, attribution
from inat_async.species import SpeciesEntry
from inat_async.status import dataset_status
from inat_async.testing import FakeDataset, FakeInatServer, FakeObservation, build_dataset
from inat_async.testing.opendata import in_bucket, listed_photos, write_open_data

pytest.importorskip("duckdb")

SPECIES = {"Apis mellifera": 50, "Mantis religiosa": 25}
#: Any request to the API would fail here: the Open Data mode must not make one.
NO_API = "http://127.0.0.1:9/v1"


@pytest.fixture(scope="module")
def dataset() -> FakeDataset:
    return build_dataset(SPECIES, seed=11)


@pytest.fixture(scope="module")
def tables(dataset: FakeDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_open_data(dataset, tmp_path_factory.mktemp("open-data"))


@pytest.fixture
async def server(dataset: FakeDataset) -> AsyncIterator[FakeInatServer]:
    async with FakeInatServer(dataset) as fake:
        yield fake


def first_photo(observation: FakeObservation) -> int:
    return min(photo.id for photo in listed_photos(observation))


def expected(dataset: FakeDataset, species: str, query: Query, count: int) -> list[FakeObservation]:
    """The first ``count`` observations of the species' subtree, by smallest photo id."""
    found = [
        o
        for o in dataset.observations_of(species)
        if listed_photos(o)
        and (query.quality is None or o.quality_grade in query.quality)
        and any(query.accepts_photo_license(p.license_code) for p in listed_photos(o))
    ]
    return sorted(found, key=first_photo)[:count]


def expected_files(
    server: FakeInatServer, species: str, query: Query, count: int
) -> tuple[dict[str, str], set[int]]:
    """File name -> sha256 of every photo the bucket holds, and the ids it lacks."""
    files: dict[str, str] = {}
    missing: set[int] = set()
    for observation in expected(server.dataset, species, query, count):
        for rank, photo in enumerate(listed_photos(observation)):
            if not query.accepts_photo_license(photo.license_code):
                continue
            if not in_bucket(photo):
                missing.add(photo.id)
                continue
            name = photo_file_name(
                species,
                observation.user.login,
                photo.license_code,
                observation.uuid,
                rank,
                photo.extension.lower() or "jpg",
            )
            files[name] = hashlib.sha256(server.images.render(photo, query.size)).hexdigest()
    return files, missing


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def ledger_bytes(state: Path) -> int:
    path = state / "limits.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COALESCE(SUM(amount), 0) FROM media").fetchone()[0])


# -- the source alone ----------------------------------------------------------------------


async def test_names_resolve_through_the_taxa_table(tables: Path, dataset: FakeDataset) -> None:
    source = OpenDataSource.open(tables)
    try:
        match = await source.resolve_taxon("apis MELLIFERA")
        assert match.taxon.id == dataset.species("Apis mellifera").id
        quoted = await source.resolve_taxon("Pterostylis sp. 'Bonang'")
        assert quoted.taxon.name == "Pterostylis sp. 'Bonang'"
        with pytest.raises(TaxonNotFoundError) as typo:
            await source.resolve_taxon("Apis melifera")
        assert typo.value.suggestions[0] == "Apis mellifera"
        with pytest.raises(TaxonNotFoundError, match="inactive name") as old:
            await source.resolve_taxon("Apis mellifica")  # a synonym: inactive in the table
        assert "Apis mellifera" in old.value.suggestions
        # Common names are not in the tables.
        with pytest.raises(TaxonNotFoundError):
            await source.resolve_taxon("Western Honey Bee")
    finally:
        source.close()


async def test_pages_walk_the_subtree_by_smallest_photo_id(
    tables: Path, dataset: FakeDataset
) -> None:
    query = Query.parse(quality="research,needs_id", license="cc-by,cc-by-nc,cc0")
    source = OpenDataSource.open(tables, url=f"{OPEN_DATA_URL}/")
    try:
        await source.prepare([SpeciesEntry("Apis mellifera")], query, limit=30)
        taxon = dataset.species("Apis mellifera")
        pages = [page async for page in source.observation_pages(taxon.id, query)]
        walked = [o for page in pages for o in page.observations]
        wanted = expected(dataset, "Apis mellifera", query, 30)
        assert [o.id for o in walked] == [o.uuid for o in wanted]
        assert pages[0].total_results == len(wanted)
        assert any(o.taxon_id != taxon.id for o in walked), "subspecies are part of the walk"
        cursor = pages[0].cursor_after(10)
        assert cursor == first_photo(wanted[9])
        rest = [
            o
            async for page in source.observation_pages(taxon.id, query, id_above=cursor)
            for o in page.observations
        ]
        assert [o.id for o in rest] == [o.uuid for o in wanted[10:]]
        photo = walked[0].photos[0]
        fake = dataset.photo(photo.id)
        assert fake is not None
        assert photo.url == f"{OPEN_DATA_URL}/photos/{fake.id}/square.{fake.extension}".rstrip(".")
        owner = wanted[0].user
        assert photo.attribution == attribution(photo.license_code, owner.name, owner.login)
    finally:
        source.close()


def test_attribution_follows_the_open_data_readme() -> None:
    assert attribution("cc0", "Name", "login") == "Name, no rights reserved (CC0)"
    assert attribution("cc0", None, "login") == "login, no rights reserved (CC0)"
    assert attribution("cc-by-nc", "Zoë O'Brien", "z") == (
        "© Zoë O'Brien, some rights reserved (CC-BY-NC)"
    )


# -- a run ------------------------------------------------------------------------------------


async def test_a_run_downloads_exactly_the_eligible_photos_without_the_api(
    server: FakeInatServer, tables: Path, tmp_path: Path
) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    query = Query.parse(license="any")
    settings = Settings.create(
        observations=20, license="any", out_dir=out, workers=6, api_url=NO_API, retry=FAST_RETRY
    )
    entries = [SpeciesEntry(name) for name in SPECIES]
    limits = LimitSettings(state_dir=state)

    async def run() -> None:
        source = OpenDataSource.open(tables, url=f"{server.base_url}/s3", limits=limits)
        try:
            await source.prepare(entries, settings.query, limit=settings.observations)
            result = await download_all(entries, settings=settings, limits=limits, source=source)
        finally:
            source.close()
        assert all(s.error is None for s in result.species), [s.error for s in result.species]

    await run()
    assert server.log.api_requests() == []
    charged = 0
    for name in SPECIES:
        files, missing = expected_files(server, name, query, 20)
        folder = out / f"{name.replace(' ', '_')}_images"
        assert saved_files(folder) == files
        rows = read_csv(out / f"{name.replace(' ', '_')}_photos.csv")
        assert {int(r["photo_id"]) for r in rows if r["status"] == "missing"} == missing
        for row in rows:
            assert row["attribution"].endswith(("(CC0)", ")")), row
            assert row["url"].startswith(f"{server.base_url}/s3/photos/")
        metadata = read_csv(out / f"{name.replace(' ', '_')}_metadata.csv")
        uuids = [o.uuid for o in expected(server.dataset, name, query, 20)]
        assert sorted(r["observation_uuid"] for r in metadata) == sorted(uuids)
        assert all(r["observation_id"] == r["observation_uuid"] for r in metadata)
        charged += sum(int(r["bytes"]) for r in rows if r["bytes"])
    # Bytes go to the bucket's own ledger; iNaturalist's stays untouched.
    assert ledger_bytes(state / "open-data-bucket") == charged > 0
    assert ledger_bytes(state) == 0

    # A rerun resumes: nothing fetched again, and status reads the dataset.
    fetched = len(server.log.photo_requests())
    await run()
    assert len(server.log.photo_requests()) == fetched
    report = dataset_status(out)
    assert {s.name for s in report.species} == set(SPECIES)

    # The dataset is an Open Data one: an API run in the same folder is refused.
    with pytest.raises(OutputConflictError, match="source"):
        await download_all(entries, settings=settings, limits=limits)


# -- the command line --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bucket(dataset: FakeDataset) -> Iterator[FakeInatServer]:
    from inat_async.testing import run_in_thread

    with run_in_thread(dataset) as fake:
        yield fake


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    process = start_cli(*args, cwd=cwd, state=cwd / "state")
    stdout, stderr = process.communicate(timeout=90)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_cli_runs_from_the_bundle_with_no_api_request(
    bucket: FakeInatServer, dataset: FakeDataset, tmp_path: Path
) -> None:
    (tmp_path / "species.csv").write_text("name\nMantis religiosa\n")
    bundle = write_open_data(dataset, tmp_path / "od", bundle=True)
    bucket.log.clear()
    done = cli(
        "run", "-o", "8", "-l", "cc-by,cc-by-nc", "-w", "16", "--plain", "--out", "out",
        "--api-url", NO_API, "--open-data", str(bundle),
        "--open-data-url", f"{bucket.base_url}/s3",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert bucket.log.api_requests() == []
    files, _ = expected_files(bucket, "Mantis religiosa", Query.parse(license="cc-by,cc-by-nc"), 8)
    assert saved_files(tmp_path / "out" / "Mantis_religiosa_images") == files
    status = cli("status", "--out", "out", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "Mantis religiosa" in status.stdout


@pytest.mark.parametrize("damage", ["no_files", "truncated", "missing_column", "not_gzip"])
def test_bad_tables_are_one_line_exit_2_and_nothing_is_created(
    damage: str, dataset: FakeDataset, tmp_path: Path
) -> None:
    (tmp_path / "species.csv").write_text("name\nMantis religiosa\n")
    folder = tmp_path / "od"
    folder.mkdir()
    named = folder
    if damage != "no_files":
        write_open_data(dataset, folder)
        named = folder / ("observations.csv.gz" if damage != "missing_column" else "taxa.csv.gz")
        body = named.read_bytes()
        if damage == "truncated":
            named.write_bytes(body[: len(body) // 2])
        elif damage == "not_gzip":
            named.write_bytes(b"observation_uuid\tobserver_id\n")
        else:
            text = gzip.decompress(body).decode().replace("\tancestry", "\tancestors")
            named.write_bytes(gzip.compress(text.encode()))
    done = cli("run", "--out", "out", "--api-url", NO_API, "--open-data", str(folder), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(named) in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in folder.iterdir() if not p.name.startswith(".")
    )


def test_missing_duckdb_message_names_the_extra() -> None:
    with pytest.raises(OpenDataError):
        OpenDataSource.open("/nonexistent/open-data")


# -- the img2dataset hand-off --------------------------------------------------------------


def test_img2dataset_downloads_every_photo_of_an_exported_manifest(
    bucket: FakeInatServer, dataset: FakeDataset, tables: Path, tmp_path: Path
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    (tmp_path / "species.csv").write_text("name\nApis mellifera\n")
    bucket_url = f"{bucket.base_url}/s3"
    done = cli(
        "run", "-o", "6", "-l", "cc-by,cc-by-nc,cc0", "--plain", "--out", "out",
        "--api-url", NO_API, "--open-data", str(tables), "--open-data-url", bucket_url,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    exported = cli(
        "export", "hand-off", "--out", "out", "--format", "img2dataset",
        "--open-data-url", bucket_url,
        cwd=tmp_path,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    table = pq.read_table(tmp_path / "hand-off" / "img2dataset.parquet").to_pylist()
    rows = read_csv(tmp_path / "out" / "Apis_mellifera_photos.csv")
    wanted = {int(r["photo_id"]) for r in rows if r["status"] != "missing"}
    assert {row["photo_id"] for row in table} == wanted
    assert all(row["url"].startswith(f"{bucket_url}/photos/") for row in table)
    assert {row["label"] for row in table} == {"Apis mellifera"}
    assert {row["split"] for row in table} <= {"train", "val", "test"}

    # An API dataset's photos on iNaturalist's own host are refused, with the reason.
    api_out = tmp_path / "api-out"
    api = cli(
        "run", "-o", "12", "--plain", "--out", str(api_out), "--api-url", bucket.api_url,
        "--requests-per-minute", "10000",
        cwd=tmp_path,
    )  # fmt: skip
    assert api.returncode == 0, api.stderr
    refused = cli(
        "export", "api-hand-off", "--out", str(api_out), "--format", "img2dataset",
        "--open-data-url", bucket_url,
        cwd=tmp_path,
    )  # fmt: skip
    assert refused.returncode == 0, refused.stderr
    assert "refused" in refused.stderr and "one machine" in refused.stderr

    pytest.importorskip("img2dataset")
    import os

    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled"}
    script = (
        "from img2dataset import download\n"
        f"download(url_list={str(tmp_path / 'hand-off' / 'img2dataset.parquet')!r}, "
        "input_format='parquet', url_col='url', caption_col='label', "
        "save_additional_columns=['photo_id', 'taxon_id', 'license', 'attribution', 'split'], "
        f"output_format='webdataset', output_folder={str(tmp_path / 'wds')!r}, "
        "processes_count=1, thread_count=4, image_size=64, resize_mode='no', "
        "distributor='multiprocessing', enable_wandb=False, timeout=10, retries=1)\n"
    )
    import sys

    ran = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    import json
    import tarfile

    got: set[int] = set()
    for shard in sorted((tmp_path / "wds").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    handle = tar.extractfile(member)
                    assert handle is not None
                    meta = json.load(handle)
                    if meta.get("status") == "success":
                        got.add(int(meta["photo_id"]))
    assert got == wanted
