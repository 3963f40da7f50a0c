"""Heavy pages: the fake server's observations as big as real ones, the same to a client."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from support import FAST_RETRY, saved_files

from inat_async import download_species
from inat_async.limits import LimitSettings
from inat_async.models import parse_observation_page
from inat_async.testing import FakeInatServer

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "inat-api"


async def search(server: FakeInatServer, taxon_id: int) -> tuple[bytes, object]:
    url = f"{server.api_url}/observations"
    params = {"taxon_id": taxon_id, "order_by": "id", "order": "asc", "per_page": 200}
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as response:
        body = await response.read()
    return body, json.loads(body)


async def test_heavy_pages_weigh_tens_of_kb_an_observation_and_parse_the_same(
    server: FakeInatServer,
) -> None:
    taxon = server.dataset.species("Apis mellifera")
    light_body, light = await search(server, taxon.id)
    server.settings.heavy_pages = True
    heavy_body, heavy = await search(server, taxon.id)
    count = len(heavy["results"])  # type: ignore[index]
    assert count > 20
    assert len(heavy_body) / count > max(20_000, 4 * len(light_body) / count)
    # What a downloader reads is the same.
    assert parse_observation_page(heavy) == parse_observation_page(light)
    for result in heavy["results"]:  # type: ignore[index]
        identifications = result["identifications"]
        assert identifications and identifications[0]["own_observation"]
        assert result["non_owner_ids"] == [i for i in identifications if not i["own_observation"]]
        ancestry = identifications[0]["taxon"]["ancestors"]
        assert [a["id"] for a in ancestry] == identifications[0]["taxon"]["ancestor_ids"][:-1]
        assert all(i["user"]["login"] for i in identifications)
    server.settings.heavy_pages = False
    again, _ = await search(server, taxon.id)
    assert again == light_body


async def test_heavy_pages_have_the_recorded_shape(server: FakeInatServer) -> None:
    recorded_path = FIXTURES / "pyinaturalist__v1_get_observations_page1.json"
    if not recorded_path.is_file():
        pytest.skip(f"recorded API answers not found in {FIXTURES}")
    recorded = json.loads(recorded_path.read_text(encoding="utf-8"))["results"][0]
    server.settings.heavy_pages = True
    _, heavy = await search(server, server.dataset.species("Apis mellifera").id)
    fake = heavy["results"][0]  # type: ignore[index]
    recorded_ident, fake_ident = recorded["identifications"][0], fake["identifications"][0]
    assert set(fake_ident) == set(recorded_ident)
    assert set(fake_ident["user"]) <= set(recorded_ident["user"])
    assert set(recorded_ident["taxon"]) - set(fake_ident["taxon"]) <= {"atlas_id"}
    commented = next(r for r in heavy["results"] if r["comments"])  # type: ignore[index]
    assert set(commented["comments"][0]) == set(recorded["comments"][0])


async def test_a_run_over_heavy_pages_saves_what_a_run_over_light_ones_does(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    options = {"api_url": server.api_url, "limits": fast_limits, "retry": FAST_RETRY}
    light = await download_species(
        "Apis mellifera", observations=30, out_dir=tmp_path / "light", **options
    )
    server.settings.heavy_pages = True
    heavy = await download_species(
        "Apis mellifera", observations=30, out_dir=tmp_path / "heavy", **options
    )
    assert heavy.ok and heavy.photos_downloaded == light.photos_downloaded > 0
    for name in ("Apis_mellifera_metadata.csv", "Apis_mellifera_photos.csv"):
        assert (tmp_path / "heavy" / name).read_bytes() == (tmp_path / "light" / name).read_bytes()
    folder = "Apis_mellifera_images"
    assert saved_files(tmp_path / "heavy" / folder) == saved_files(tmp_path / "light" / folder)
