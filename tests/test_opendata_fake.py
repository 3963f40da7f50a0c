"""The fake Open Data: tables in the real files' exact shape, and the bucket over HTTP."""

from __future__ import annotations

import csv
import gzip
import io
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from inat_async.testing import DatasetOptions, FakeDataset, FakeInatServer, build_dataset
from inat_async.testing.opendata import (
    BUNDLE_LATEST,
    COLUMNS,
    QUOTED_TAXA,
    TABLES,
    in_bucket,
    listed,
    open_data_files,
    write_open_data,
)


@pytest.fixture(scope="module")
def dataset() -> FakeDataset:
    return build_dataset(
        {"Apis mellifera": 40, "Mantis religiosa": 20},
        seed=5,
        options=DatasetOptions(hostile_users=True),
    )


def read_table(body: bytes) -> list[list[str]]:
    """As the format must be read: tabs, no quoting at all."""
    text = gzip.decompress(body).decode("utf-8")
    return list(csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))


def test_tables_have_the_real_columns_and_no_quoting(dataset: FakeDataset) -> None:
    files = open_data_files(dataset)
    tables = {name: read_table(files.tables[name]) for name in TABLES}
    for name, rows in tables.items():
        assert tuple(rows[0]) == COLUMNS[name], name
        assert all(len(row) == len(COLUMNS[name]) for row in rows[1:]), name
    taxa_names = {row[4] for row in tables["taxa"][1:]}
    assert {name for name, _ in QUOTED_TAXA} <= taxa_names
    assert any('"' in name for name in taxa_names) and any("'" in n for n in taxa_names)
    # Hostile names lose their tabs and line breaks (the format cannot hold them), not quotes.
    names = {row[2] for row in tables["observers"][1:]}
    assert any('"' in name for name in names)
    assert not any("\n" in name or "\t" in name for name in names)


def test_only_openly_licensed_visible_photos_are_listed(dataset: FakeDataset) -> None:
    rows = read_table(open_data_files(dataset).tables["photos"])[1:]
    expected = [p for o in dataset.observations for p in o.photos if listed(p)]
    assert [int(row[1]) for row in rows] == [p.id for p in expected]
    assert {row[5] for row in rows} <= {
        "CC-BY",
        "CC-BY-NC",
        "CC-BY-ND",
        "CC-BY-SA",
        "CC-BY-NC-ND",
        "CC-BY-NC-SA",
        "CC0",
        "PD",
    }
    assert any(not in_bucket(p) for p in expected), "some rows must point outside the bucket"
    observations = read_table(open_data_files(dataset).tables["observations"])[1:]
    assert {row[0] for row in observations} == {row[2] for row in rows}


def test_ancestry_lists_the_ancestors_from_the_root(dataset: FakeDataset) -> None:
    rows = read_table(open_data_files(dataset, separator="\\").tables["taxa"])[1:]
    by_id = {int(row[0]): row for row in rows}
    apis = dataset.species("Apis mellifera")
    assert by_id[apis.id][1] == "\\".join(str(i) for i in apis.ancestor_ids[:-1])
    assert by_id[apis.id][5] == "true"
    assert by_id[48460][1] == ""  # the root has no ancestors


def test_bundle_holds_the_four_tables(dataset: FakeDataset, tmp_path: Path) -> None:
    path = write_open_data(dataset, tmp_path, bundle=True)
    assert path.name == BUNDLE_LATEST
    folder = write_open_data(dataset, tmp_path / "tables")
    with tarfile.open(path) as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        assert sorted(members) == [f"inaturalist-open-data-20241127/{t}.csv" for t in TABLES]
        for table in TABLES:
            extracted = tar.extractfile(members[f"inaturalist-open-data-20241127/{table}.csv"])
            assert extracted is not None
            plain = gzip.decompress((folder / f"{table}.csv.gz").read_bytes())
            assert extracted.read() == plain
    assert write_open_data(dataset, tmp_path, bundle=True).read_bytes() == path.read_bytes()


@pytest.fixture
async def server(dataset: FakeDataset) -> AsyncIterator[FakeInatServer]:
    async with FakeInatServer(dataset) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_bucket_serves_its_photos_and_s3_errors_for_the_rest(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    photos = [p for o in dataset.observations for p in o.photos if p.extension]
    held = next(p for p in photos if in_bucket(p))
    async with http.get(f"{server.base_url}/s3/photos/{held.id}/medium.{held.extension}") as r:
        assert r.status == 200
        assert await r.read() == server.images.render(held, "medium")
    stale = next(p for p in photos if listed(p) and not in_bucket(p))
    closed = next(p for p in photos if p.license_code is None and p.placeholder is None)
    for photo in (stale, closed):
        async with http.get(
            f"{server.base_url}/s3/photos/{photo.id}/medium.{photo.extension}"
        ) as r:
            assert r.status == 404
            assert r.content_type == "application/xml"
            assert b"<Code>NoSuchKey</Code>" in await r.read()
    server.settings.bucket_listable = False
    async with http.get(f"{server.base_url}/s3/photos/{stale.id}/medium.{stale.extension}") as r:
        assert r.status == 403
        assert b"<Code>AccessDenied</Code>" in await r.read()


async def test_bucket_serves_the_metadata_with_ranges(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    files = open_data_files(dataset)
    url = f"{server.base_url}/s3/metadata/{BUNDLE_LATEST}"
    async with http.get(url) as response:
        assert response.status == 200
        assert response.headers["Accept-Ranges"] == "bytes"
        assert await response.read() == files.bundle
    size = len(files.bundle)
    async with http.get(url, headers={"Range": "bytes=100-"}) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 100-{size - 1}/{size}"
        assert await response.read() == files.bundle[100:]
    async with http.get(url, headers={"Range": f"bytes={size}-"}) as response:
        assert response.status == 416
    async with http.get(f"{server.base_url}/s3/taxa.csv.gz") as response:
        assert await response.read() == files.tables["taxa"]
    async with http.get(f"{server.base_url}/s3/metadata/nothing.tar.gz") as response:
        assert response.status == 404
        assert b"NoSuchKey" in await response.read()
