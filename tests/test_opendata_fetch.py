"""``open-data fetch``: the bundle over real HTTP from the fake bucket, resumed with Range."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import start_cli

from inat_async.limits import LimitSettings
from inat_async.sources.bundle import (
    BUNDLE_KEY,
    BundleFetchError,
    BundleProgress,
    fetch_bundle,
)
from inat_async.status import dataset_status
from inat_async.testing import FakeDataset, FakeInatServer, build_dataset
from inat_async.testing.faults import FaultKind
from inat_async.testing.log import RequestRecord
from inat_async.testing.opendata import open_data_files

NAME = BUNDLE_KEY.rsplit("/", 1)[1]


@pytest.fixture(scope="module")
def dataset() -> FakeDataset:
    return build_dataset({"Apis mellifera": 12, "Mantis religiosa": 6}, seed=5)


@pytest.fixture(scope="module")
def bundle(dataset: FakeDataset) -> bytes:
    return open_data_files(dataset).bucket_objects()[BUNDLE_KEY]


@pytest.fixture
async def server(dataset: FakeDataset) -> AsyncIterator[FakeInatServer]:
    async with FakeInatServer(dataset) as fake:
        yield fake


def bundle_requests(server: FakeInatServer) -> list[RequestRecord]:
    return [r for r in server.log.records() if r.path == f"/s3/{BUNDLE_KEY}"]


async def test_a_full_fetch_puts_the_whole_bundle_in_place(
    server: FakeInatServer, bundle: bytes, tmp_path: Path
) -> None:
    seen: list[BundleProgress] = []
    path = await fetch_bundle(tmp_path / "od", url=f"{server.base_url}/s3", on_progress=seen.append)
    assert path == tmp_path / "od" / NAME
    assert path.read_bytes() == bundle
    assert not (tmp_path / "od" / f"{NAME}.part").exists()
    assert seen[-1].finished and seen[-1].done == seen[-1].total == len(bundle)
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    # A second call finds the complete file and downloads nothing.
    server.log.clear()
    seen.clear()
    assert await fetch_bundle(tmp_path / "od", url=f"{server.base_url}/s3", on_progress=seen.append)
    assert [r.method for r in bundle_requests(server)] == ["HEAD"]
    assert seen == [BundleProgress(path, len(bundle), len(bundle), len(bundle), True, True)]
    assert sorted(p.name for p in (tmp_path / "od").iterdir()) == [NAME]


async def test_a_partial_download_is_continued_from_its_size(
    server: FakeInatServer, bundle: bytes, tmp_path: Path
) -> None:
    part = tmp_path / f"{NAME}.part"
    part.write_bytes(bundle[: len(bundle) // 3])
    seen: list[BundleProgress] = []
    path = await fetch_bundle(tmp_path, url=f"{server.base_url}/s3", on_progress=seen.append)
    assert path.read_bytes() == bundle
    assert not part.exists()
    head, get = bundle_requests(server)
    assert (head.method, get.method, get.status) == ("HEAD", "GET", 206)
    assert get.bytes_sent == len(bundle) - len(bundle) // 3
    assert seen[0].resumed == len(bundle) // 3


async def test_a_part_of_another_version_of_the_bundle_starts_over(
    server: FakeInatServer, bundle: bytes, tmp_path: Path
) -> None:
    (tmp_path / f"{NAME}.part").write_bytes(bundle[:100])
    (tmp_path / f"{NAME}.part.etag").write_text('"last-month"')
    path = await fetch_bundle(tmp_path, url=f"{server.base_url}/s3")
    assert path.read_bytes() == bundle
    assert [r.status for r in bundle_requests(server)] == [200, 200]
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]


async def test_a_part_holding_every_byte_is_renamed_without_a_download(
    server: FakeInatServer, bundle: bytes, tmp_path: Path
) -> None:
    (tmp_path / f"{NAME}.part").write_bytes(bundle)
    path = await fetch_bundle(tmp_path, url=f"{server.base_url}/s3")
    assert path.read_bytes() == bundle
    assert [r.method for r in bundle_requests(server)] == ["HEAD"]


async def test_a_part_longer_than_the_bundle_starts_over(
    server: FakeInatServer, bundle: bytes, tmp_path: Path
) -> None:
    (tmp_path / f"{NAME}.part").write_bytes(b"x" * (len(bundle) + 10))
    path = await fetch_bundle(tmp_path, url=f"{server.base_url}/s3")
    assert path.read_bytes() == bundle
    assert [r.status for r in bundle_requests(server)] == [200, 200]


async def test_a_server_ignoring_range_restarts_the_file_cleanly(
    server: FakeInatServer, bundle: bytes, tmp_path: Path
) -> None:
    server.settings.honour_ranges = False
    (tmp_path / f"{NAME}.part").write_bytes(b"stale bytes that must not stay")
    path = await fetch_bundle(tmp_path, url=f"{server.base_url}/s3")
    assert path.read_bytes() == bundle
    assert bundle_requests(server)[-1].status == 200


async def test_a_size_mismatch_is_an_error_and_nothing_is_put_in_place(
    server: FakeInatServer, tmp_path: Path
) -> None:
    # The HEAD tells the true size; the GET then announces and sends less.
    server.faults.fail_path(f"/s3/{BUNDLE_KEY}", FaultKind.SHORT_LENGTH, skip=1, cut_at=0.5)
    with pytest.raises(BundleFetchError, match="size does not match"):
        await fetch_bundle(tmp_path, url=f"{server.base_url}/s3")
    assert not (tmp_path / NAME).exists()
    assert not (tmp_path / f"{NAME}.part").exists()


async def test_a_cut_download_keeps_its_part_and_the_next_call_finishes_it(
    server: FakeInatServer, bundle: bytes, tmp_path: Path
) -> None:
    server.faults.fail_path(f"/s3/{BUNDLE_KEY}", FaultKind.TRUNCATED, skip=1, cut_at=0.4)
    with pytest.raises(BundleFetchError, match="interrupted"):
        await fetch_bundle(tmp_path, url=f"{server.base_url}/s3")
    assert not (tmp_path / NAME).exists()
    # aiohttp may drop the bytes buffered when the connection broke: whatever reached the
    # disk is kept, and only the rest is asked for next time.
    kept = (tmp_path / f"{NAME}.part").stat().st_size
    assert kept < len(bundle)
    server.log.clear()
    path = await fetch_bundle(tmp_path, url=f"{server.base_url}/s3")
    assert path.read_bytes() == bundle
    assert bundle_requests(server)[-1].bytes_sent == len(bundle) - kept


async def test_a_missing_bundle_is_an_error(server: FakeInatServer, tmp_path: Path) -> None:
    with pytest.raises(BundleFetchError, match="HTTP 404"):
        await fetch_bundle(tmp_path, url=f"{server.base_url}/nowhere")
    assert list(tmp_path.iterdir()) == []


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    process = start_cli(*args, cwd=cwd, state=cwd / "state")
    stdout, stderr = process.communicate(timeout=90)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_cli_fetches_the_bundle_and_run_reads_it(dataset: FakeDataset, tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    from inat_async.testing import run_in_thread

    (tmp_path / "species.csv").write_text("name\nMantis religiosa\n")
    with run_in_thread(dataset) as bucket:
        url = f"{bucket.base_url}/s3"
        fetched = cli("open-data", "fetch", "od", "--open-data-url", url, cwd=tmp_path)
        assert fetched.returncode == 0, fetched.stderr
        assert fetched.stdout.strip() == str(Path("od") / NAME)
        again = cli("open-data", "fetch", "od", "--open-data-url", url, cwd=tmp_path)
        assert again.returncode == 0 and "up to date" in again.stderr
        done = cli(
            "run", "-o", "3", "--plain", "--out", "out", "--api-url", "http://127.0.0.1:9/v1",
            "--open-data", "od", "--open-data-url", url,
            cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert bucket.log.api_requests() == []
    assert any((tmp_path / "out" / "Mantis_religiosa_images").iterdir())
    # status shows the bucket's own ledger, and reads it without changing a file.
    state = tmp_path / "state"
    report = dataset_status(tmp_path / "out", LimitSettings(state_dir=state))
    assert report.open_data and report.bucket_state_dir == state / "open-data-bucket"
    assert report.bucket_limits is not None and report.bytes > 0
    assert report.bucket_limits.bytes_day.used == report.bytes
    assert report.limits is None or report.limits.bytes_day.used == 0
    before = every_file(tmp_path / "out", state)
    shown = cli("status", "--out", "out", "--open-data-hourly-limit", "7GB", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    bucket_part = shown.stdout.split("Open Data bucket", 1)[1]
    assert "photos, last hour" in bucket_part and "7 GB" in bucket_part
    assert "requests, last minute" not in bucket_part
    assert every_file(tmp_path / "out", state) == before


def every_file(*folders: Path) -> dict[str, tuple[int, int, str]]:
    return {
        str(path): (
            path.stat().st_mtime_ns,
            path.stat().st_size,
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for folder in folders
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_an_api_dataset_status_shows_no_bucket_ledger(tmp_path: Path) -> None:
    from inat_async.resume import ResumeStore

    with ResumeStore.open(tmp_path / "out"):
        pass
    report = dataset_status(tmp_path / "out", LimitSettings(state_dir=tmp_path / "state"))
    assert not report.open_data and report.bucket_state_dir is None


def test_cli_fetch_failure_is_one_line_exit_1(tmp_path: Path) -> None:
    failed = cli("open-data", "fetch", "od", "--open-data-url", "http://127.0.0.1:9", cwd=tmp_path)
    assert failed.returncode == 1
    assert failed.stderr.startswith("error:") and "Traceback" not in failed.stderr


def test_an_open_data_dataset_exports_to_every_format_with_uuid_ids(
    dataset: FakeDataset, tmp_path: Path
) -> None:
    pytest.importorskip("duckdb")
    pq = pytest.importorskip("pyarrow.parquet")
    import csv
    import json
    import tarfile

    from inat_async.testing import run_in_thread
    from inat_async.testing.opendata import write_open_data

    (tmp_path / "species.csv").write_text("name\nApis mellifera\n")
    tables = write_open_data(dataset, tmp_path / "od")
    with run_in_thread(dataset) as bucket:
        done = cli(
            "run", "-o", "6", "--plain", "--out", "out", "--api-url", "http://127.0.0.1:9/v1",
            "--open-data", str(tables), "--open-data-url", f"{bucket.base_url}/s3",
            cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    exported = cli(
        "export", "ds", "--out", "out", "--format", "parquet,webdataset,imagefolder",
        cwd=tmp_path,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    uuids = {o.uuid for o in dataset.observations_of("Apis mellifera")}
    table = pq.read_table(tmp_path / "ds" / "metadata.parquet")
    assert str(table.schema.field("observation_id").type) == "string"
    ids = set(table.column("observation_id").to_pylist())
    assert ids and ids <= uuids
    in_csvs: set[str] = set()
    for metadata in (tmp_path / "ds").glob("*/metadata.csv"):
        with metadata.open(newline="") as handle:
            in_csvs |= {row["observation_id"] for row in csv.DictReader(handle)}
    assert in_csvs == ids
    with (tmp_path / "ds" / "ATTRIBUTION.csv").open(newline="") as handle:
        urls = {row["observation_url"] for row in csv.DictReader(handle)}
    assert urls == {f"https://www.inaturalist.org/observations/{uuid}" for uuid in ids}
    shards = sorted((tmp_path / "ds").rglob("*.tar"))
    assert shards
    seen: set[str] = set()
    for shard in shards:
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    seen.add(json.load(extracted)["observation_id"])
    assert seen == ids
