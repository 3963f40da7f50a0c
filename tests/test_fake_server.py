"""The fake iNaturalist server, over real HTTP on loopback.

These tests pin down the semantics other tests rely on: the API's filters and paging, the
photo hosts, every fault kind, and the counters.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from inat_async.models import parse_observation_page, photo_url_for_size
from inat_async.testing import (
    LICENSE_CODES,
    PLACEHOLDERS,
    QUIRKS,
    DatasetOptions,
    FakeDataset,
    FakeInatServer,
    FaultKind,
    build_dataset,
    demo_dataset,
    run_in_thread,
)

PHOTO_URL = re.compile(
    r"^http://127\.0\.0\.1:\d+/(s3|static)/photos/(\d+)/square(\.[A-Za-z]*)?(\?\d+)?$"
)
MAGIC = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n", "image/gif": b"GIF89a"}


@pytest.fixture(scope="module")
def dataset() -> FakeDataset:
    return demo_dataset(seed=3)


@pytest.fixture
async def server(dataset: FakeDataset) -> AsyncIterator[FakeInatServer]:
    async with FakeInatServer(dataset) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get_json(
    http: aiohttp.ClientSession, url: str, **params: Any
) -> tuple[int, dict[str, Any]]:
    async with http.get(url, params={k: str(v) for k, v in params.items()}) as response:
        return response.status, await response.json()


async def observations(
    http: aiohttp.ClientSession, server: FakeInatServer, **params: Any
) -> dict[str, Any]:
    status, body = await get_json(http, f"{server.api_url}/observations", **params)
    assert status == 200, body
    return body


async def walk(http: aiohttp.ClientSession, server: FakeInatServer, **params: Any) -> list[int]:
    """Every id of a search, by id_above as a client should; checks total_results too."""
    seen: list[int] = []
    while True:
        page = await observations(
            http, server, order_by="id", order="asc", id_above=seen[-1] if seen else 0, **params
        )
        if not page["results"]:
            return seen
        ids = [o["id"] for o in page["results"]]
        assert ids == sorted(ids)
        # total_results counts what is left above id_above.
        assert page["total_results"] >= len(ids)
        seen += ids


# -- dataset ------------------------------------------------------------------------------


def test_dataset_is_deterministic() -> None:
    first = build_dataset({"Apis mellifera": 30, "Turdus merula": 20}, seed=5)
    again = build_dataset({"Apis mellifera": 30, "Turdus merula": 20}, seed=5)
    other = build_dataset({"Apis mellifera": 30, "Turdus merula": 20}, seed=6)
    assert first.observations == again.observations
    assert first.observations != other.observations


def test_dataset_shape(dataset: FakeDataset) -> None:
    ids = [o.id for o in dataset.observations]
    assert ids == sorted(set(ids))
    assert any(b - a > 1 for a, b in itertools.pairwise(ids)), "ids have gaps"
    photo_ids = [p.id for p in dataset.photos()]
    assert len(photo_ids) == len(set(photo_ids))
    assert not set(photo_ids) & set(ids), "photo ids are their own sequence"
    assert dataset.describe()["Apis mellifera"]["observations"] == 120
    bee = dataset.species("apis MELLIFERA")
    assert {dataset.taxa[t].rank for t in dataset.descendants(bee.id)} == {"species", "subspecies"}
    old = [t for t in dataset.taxa.values() if t.name == "Apis mellifica"]
    assert len(old) == 1
    assert not old[0].is_active
    assert old[0].current_synonymous_taxon_ids == (bee.id,)
    # Observations of different species interleave in id order.
    species_order = [o.species_id for o in dataset.observations]
    assert sum(a != b for a, b in itertools.pairwise(species_order)) > 20


def test_every_species_gets_every_quirk(dataset: FakeDataset) -> None:
    bees = dataset.observations_of("Apis mellifera")
    first = bees[: len(QUIRKS)]
    assert not first[1].photos  # no_photos
    assert first[2].photo_licenses == {"cc-by", None, "cc-by-nc"}  # mixed_licenses
    assert first[3].photos[0].placeholder is not None  # placeholder
    assert first[4].license_code is None  # null_license
    assert {p.extension for p in first[5].photos} == {"jpeg", "JPG", "png", "gif"}
    assert [(p.extension, p.bare) for p in first[6].photos] == [("", False), ("", True)]
    assert first[7].latitude is None  # no_geo
    assert first[8].time_observed_at is None  # no_time
    assert dataset.taxa[first[9].taxon_id].rank == "subspecies"
    assert first[10].obscured


def test_hostile_users_are_opt_in() -> None:
    plain = build_dataset({"Apis mellifera": 20}, seed=1)
    hostile = build_dataset(
        {"Apis mellifera": 20}, seed=1, options=DatasetOptions(hostile_users=True)
    )
    logins = {o.user.login for o in hostile.observations}
    assert "../../etc/passwd" in logins
    assert "con" in logins
    assert all(re.fullmatch(r"[a-z0-9_]+", o.user.login) for o in plain.observations)


# -- taxa -------------------------------------------------------------------------------


async def test_taxa_search_matches_names_synonyms_and_common_names(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    bee = dataset.species("Apis mellifera")
    status, body = await get_json(http, f"{server.api_url}/taxa", q="apis mellifera")
    assert status == 200
    assert set(body) == {"total_results", "page", "per_page", "results"}
    names = [t["name"] for t in body["results"]]
    # The exact match first, then the subspecies whose names contain both words.
    assert names[0] == "Apis mellifera"
    assert set(names[1:]) == {"Apis mellifera ligustica", "Apis mellifera carnica"}
    top = body["results"][0]
    assert (top["id"], top["rank"], top["is_active"]) == (bee.id, "species", True)
    assert top["matched_term"] == "Apis mellifera"
    assert top["observations_count"] == 120

    _, synonym = await get_json(http, f"{server.api_url}/taxa", q="Apis mellifica")
    assert [(t["name"], t["matched_term"]) for t in synonym["results"]] == [
        ("Apis mellifera", "Apis mellifica")
    ]
    _, both = await get_json(http, f"{server.api_url}/taxa", q="Apis mellifica", is_active="any")
    assert [(t["name"], t["is_active"]) for t in both["results"]] == [
        ("Apis mellifera", True),
        ("Apis mellifica", False),
    ]
    assert both["results"][1]["default_photo"] is None

    _, common = await get_json(http, f"{server.api_url}/taxa", q="western HONEY")
    assert common["results"][0]["matched_term"] == "Western Honey Bee"
    assert common["results"][0]["preferred_common_name"] == "Western Honey Bee"

    _, nothing = await get_json(http, f"{server.api_url}/taxa", q="Nonexistus fakeus")
    assert nothing["total_results"] == 0
    assert nothing["results"] == []

    _, by_id = await get_json(http, f"{server.api_url}/taxa/{bee.id}")
    assert by_id["results"][0]["name"] == "Apis mellifera"


# -- observation search ---------------------------------------------------------------------


async def test_id_above_walk_covers_everything_exactly_once(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    bee = dataset.species("Apis mellifera")
    seen = await walk(http, server, taxon_id=bee.id, per_page=37)
    assert seen == [o.id for o in dataset.observations_of(bee.id)]
    first = await observations(
        http, server, taxon_id=bee.id, order_by="id", order="asc", id_above=seen[99]
    )
    assert first["total_results"] == 20
    assert first["per_page"] == 30


async def test_per_page_default_max_and_zero(
    server: FakeInatServer, http: aiohttp.ClientSession
) -> None:
    default = await observations(http, server)
    assert (default["page"], default["per_page"], len(default["results"])) == (1, 30, 30)
    assert default["total_results"] == 240
    full = await observations(http, server, per_page=200)
    assert len(full["results"]) == 200
    # iNaturalistAPI's perPage(): over the maximum falls back to the default, it is not cut.
    over = await observations(http, server, per_page=500)
    assert (over["per_page"], len(over["results"])) == (30, 30)
    junk = await observations(http, server, per_page="lots")
    assert junk["per_page"] == 30
    count_only = await observations(http, server, per_page=0, quality_grade="research")
    assert count_only["results"] == []
    assert count_only["total_results"] > 0


async def test_deep_paging_is_refused_with_403(
    server: FakeInatServer, http: aiohttp.ClientSession
) -> None:
    status, body = await get_json(http, f"{server.api_url}/observations", page=51, per_page=200)
    assert status == 403
    assert body == {
        "error": "Result window is too large, page * per_page must be less than or equal to 10000",
        "status": 403,
    }
    status, body = await get_json(http, f"{server.api_url}/observations", page=50, per_page=200)
    assert (status, body["results"]) == (200, [])


async def test_taxon_id_includes_subspecies_taxon_name_does_not(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    bee = dataset.species("Apis mellifera")
    by_id = await walk(http, server, taxon_id=bee.id, per_page=200)
    by_name = await walk(http, server, taxon_name="apis mellifera", per_page=200)
    direct = [o.id for o in dataset.observations_of(bee.id, descendants=False)]
    assert by_name == direct
    assert set(by_name) < set(by_id)
    assert len(by_id) == 120
    # taxon_name also answers to synonyms and common names; an unknown name finds nothing.
    assert await walk(http, server, taxon_name="Apis mellifica", per_page=200) == direct
    assert await walk(http, server, taxon_name="Western Honey Bee", per_page=200) == direct
    empty = await observations(http, server, taxon_name="Nonexistus fakeus")
    assert (empty["total_results"], empty["results"]) == (0, [])
    status, body = await get_json(http, f"{server.api_url}/observations", taxon_id=999_999_999)
    assert (status, body) == (422, {"error": "Unknown taxon_id 999999999", "status": 422})


async def test_quality_grade_filter(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    def count(*grades: str) -> int:
        return sum(o.quality_grade in grades for o in dataset.observations)

    research = await observations(http, server, quality_grade="research", per_page=0)
    assert research["total_results"] == count("research")
    pair = await observations(http, server, quality_grade="research,needs_id", per_page=0)
    assert pair["total_results"] == count("research", "needs_id")
    anything = await observations(http, server, quality_grade="any", per_page=0)
    assert anything["total_results"] == len(dataset.observations)
    results = (await observations(http, server, quality_grade="casual", per_page=200))["results"]
    assert {o["quality_grade"] for o in results} == {"casual"}


async def test_license_filter_and_null_license(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    wanted = {"cc-by", "cc0"}
    page = await observations(http, server, license="CC-BY,cc0", per_page=200)
    assert {o["license_code"] for o in page["results"]} <= wanted
    assert page["total_results"] == sum(o.license_code in wanted for o in dataset.observations)
    everything = await observations(http, server, license="any", per_page=0)
    assert everything["total_results"] == len(dataset.observations)
    # null (all rights reserved) is served as JSON null and matches no license filter.
    unlicensed = [o for o in dataset.observations if o.license_code is None]
    assert unlicensed
    one = await observations(http, server, id=unlicensed[0].id)
    assert one["results"][0]["license_code"] is None
    listed = await observations(http, server, license=",".join(LICENSE_CODES), per_page=0)
    assert listed["total_results"] == len(dataset.observations) - len(unlicensed)


async def test_photo_license_keeps_observations_with_at_least_one_such_photo(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    ids = await walk(http, server, photo_license="cc-by", per_page=200)
    expected = [o.id for o in dataset.observations if "cc-by" in o.photo_licenses]
    assert ids == expected
    mixed = [dataset.observation(i) for i in ids]
    # Some kept observations also hold photos under other licenses: filter photo by photo.
    assert any(o is not None and o.photo_licenses != {"cc-by"} for o in mixed)


async def test_photos_true_order_only_id_unknown_params(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    with_photos = await observations(http, server, photos="true", per_page=0, frobnicate="yes")
    assert with_photos["total_results"] == sum(bool(o.photos) for o in dataset.observations)
    newest = await observations(http, server, per_page=3)
    assert [o["id"] for o in newest["results"]] == [o.id for o in dataset.observations[-3:]][::-1]
    only = await observations(http, server, only_id="true", per_page=2, order="asc")
    assert only["results"] == [{"id": o.id} for o in dataset.observations[:2]]
    first = dataset.observations[0]
    shown = await observations(http, server)
    assert shown["total_results"] == 240
    status, single = await get_json(http, f"{server.api_url}/observations/{first.id}")
    assert (status, single["results"][0]["id"]) == (200, first.id)
    status, missing = await get_json(http, f"{server.api_url}/observations/1")
    assert (status, missing["total_results"], missing["results"]) == (200, 0, [])


async def test_answers_parse_with_the_client_models(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    body = await observations(http, server, order_by="id", order="asc", per_page=200)
    page = parse_observation_page(body)
    assert page.size == 200
    assert page.last_id == body["results"][-1]["id"]
    by_id = {o.id: o for o in page.observations}
    for fake in dataset.observations[:200]:
        parsed = by_id[fake.id]
        assert parsed.photo_items == len(fake.photos)
        # Placeholders have no /photos/<id>/ and are dropped by the client's parser.
        assert [p.id for p in parsed.photos] == [p.id for p in fake.real_photos]
        assert [p.license_code for p in parsed.photos] == [p.license_code for p in fake.real_photos]
        assert parsed.latitude == fake.latitude
        assert parsed.user_login == fake.user.login
    urls = [p["url"] for o in body["results"] for p in o["photos"]]
    real = [u for u in urls if "/photos/" in u]
    assert all(PHOTO_URL.match(u) for u in real), [u for u in real if not PHOTO_URL.match(u)]
    assert {m.group(3) for u in real if (m := PHOTO_URL.match(u))} >= {
        ".jpg",
        ".jpeg",
        ".JPG",
        ".png",
        ".gif",
        ".",
        None,
    }
    assert any(u.endswith(tuple(PLACEHOLDERS.values())) for u in urls)


# -- photo hosting ------------------------------------------------------------------------


async def test_every_size_of_every_extension(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    samples: dict[tuple[str, bool], Any] = {}
    for photo in dataset.photos():
        if photo.placeholder is None:
            samples.setdefault((photo.extension, photo.bare), photo)
    assert set(samples) >= {("jpg", False), ("JPG", False), ("png", False), ("", True), ("", False)}
    for photo in samples.values():
        square = server.photo_url(photo)
        lengths = []
        for size in ("square", "small", "medium", "large", "original"):
            async with http.get(photo_url_for_size(square, size)) as response:
                body = await response.read()
                assert response.status == 200
                assert response.content_type == photo.media_type
                assert int(response.headers["Content-Length"]) == len(body)
                assert body.startswith(MAGIC[photo.media_type])
                lengths.append(len(body))
        assert lengths == sorted(lengths), f"sizes grow with the size name: {lengths}"
    one = next(iter(samples.values()))
    twice = [await (await http.get(server.photo_url(one, "medium"))).read() for _ in range(2)]
    assert twice[0] == twice[1]
    other = next(p for p in samples.values() if p.id != one.id)
    assert await (await http.get(server.photo_url(other, "medium"))).read() != twice[0]
    assert (await http.get(server.photo_url(one).replace(".jpg?", ".jpg?999"))).status == 200


async def test_unknown_photos_and_wrong_keys_are_404(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    photo = next(p for p in dataset.photos() if p.extension == "jpg" and p.host == "s3")
    url = server.photo_url(photo, "medium").split("?")[0]
    for bad in (
        f"{server.base_url}/s3/photos/1/medium.jpg",
        url.replace(".jpg", ".JPG"),  # S3 keys are case-sensitive
        url.replace("medium", "huge"),
    ):
        async with http.get(bad) as response:
            assert response.status == 404, bad
            assert b"<Code>NoSuchKey</Code>" in await response.read()
    hidden = next(p for p in dataset.photos() if p.placeholder is not None)
    async with http.get(f"{server.base_url}/s3/photos/{hidden.id}/square.jpg") as response:
        assert response.status == 404
    async with http.get(server.photo_url(hidden)) as response:
        assert (response.status, response.content_type) == (200, "image/png")
        assert (await response.read()).startswith(MAGIC["image/png"])
    assert [r.kind for r in server.log.records()][-1] == "placeholder"


async def test_range_and_head(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    photo = next(p for p in dataset.photos() if p.placeholder is None)
    url = server.photo_url(photo, "small")
    whole = await (await http.get(url)).read()
    async with http.get(url, headers={"Range": "bytes=100-"}) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 100-{len(whole) - 1}/{len(whole)}"
        assert await response.read() == whole[100:]
    async with http.get(url, headers={"Range": f"bytes={len(whole)}-"}) as response:
        assert response.status == 416
    async with http.head(url) as response:
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == len(whole)


# -- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "content_type"),
    [
        (FaultKind.SERVICE_UNAVAILABLE, 503, "text/html"),
        (FaultKind.TOO_MANY_REQUESTS, 429, "text/html"),
        (FaultKind.SERVER_ERROR, 500, "application/json"),
        (FaultKind.NOT_FOUND, 404, "application/json"),
        (FaultKind.HTML_PAGE, 200, "text/html"),
        (FaultKind.S3_XML, 403, "application/xml"),
        (FaultKind.MALFORMED_JSON, 200, "application/json"),
        (FaultKind.WRONG_SHAPE, 200, "application/json"),
        (FaultKind.DEEP_JSON, 200, "application/json"),
    ],
)
async def test_api_faults_answer_once_then_recover(
    server: FakeInatServer,
    http: aiohttp.ClientSession,
    kind: FaultKind,
    status: int,
    content_type: str,
) -> None:
    rule = server.faults.fail_api(kind, path="/v1/observations", skip=1)
    url = f"{server.api_url}/observations"
    assert (await http.get(url)).status == 200  # skip=1 lets the first one through
    async with http.get(url) as response:
        assert (response.status, response.content_type) == (status, content_type)
        text = await response.text()
        if kind is FaultKind.TOO_MANY_REQUESTS:
            assert response.headers["Retry-After"] == "1"
        if content_type != "application/json" or kind is FaultKind.MALFORMED_JSON:
            with pytest.raises(ValueError, match=r".+"):
                json.loads(text)
        elif kind is FaultKind.DEEP_JSON:
            with pytest.raises(RecursionError):
                json.loads(text)
        elif kind is FaultKind.WRONG_SHAPE:
            assert "results" not in json.loads(text)
        else:
            assert json.loads(text) == {"error": json.loads(text)["error"], "status": status}
    assert (rule.matched, rule.fired) == (2, 1)
    assert (await http.get(url)).status == 200
    faulted = [r.fault for r in server.log.api_requests()]
    assert faulted == [None, str(kind), None]


async def test_truncated_reset_and_counters(server: FakeInatServer, dataset: FakeDataset) -> None:
    photo = next(p for p in dataset.photos() if p.placeholder is None)
    url = server.photo_url(photo, "large")
    server.faults.fail_photo(photo.id, FaultKind.TRUNCATED, times=2)
    # aiohttp retries an idempotent request once, silently, when the server hangs up
    # before answering: it takes two resets in a row for the client to see one.
    server.faults.fail_photo(photo.id, FaultKind.RESET, times=2)
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.get(url) as response:
                assert response.status == 200
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.read()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await http.get(url)
        for _ in range(2):
            async with http.get(url) as response:
                await response.read()
    counts = server.log.photo_fetches(photo.id)
    assert (counts.delivered, counts.cut, counts.faulted, counts.total) == (2, 2, 2, 6)
    assert server.log.photo_fetches(photo.id, "square").total == 0
    assert server.log.refetched_photos() == {(photo.id, "large"): 2}
    cut = [r for r in server.log.photo_requests(photo.id) if r.outcome == "cut"]
    assert all(r.content_length and 0 < r.bytes_sent < r.content_length for r in cut)


@pytest.mark.parametrize(
    ("kind", "status", "content_type", "marker"),
    [
        (FaultKind.HTML_PAGE, 200, "text/html", b"<!DOCTYPE html>"),
        (FaultKind.S3_XML, 403, "application/xml", b"<Code>AccessDenied</Code>"),
        (FaultKind.NOT_FOUND, 404, "application/xml", b"<Code>NoSuchKey</Code>"),
        (FaultKind.SERVICE_UNAVAILABLE, 503, "application/xml", b"<Code>SlowDown</Code>"),
    ],
)
async def test_photo_error_bodies(
    server: FakeInatServer,
    http: aiohttp.ClientSession,
    dataset: FakeDataset,
    kind: FaultKind,
    status: int,
    content_type: str,
    marker: bytes,
) -> None:
    photo = next(p for p in dataset.photos() if p.host == "s3" and p.placeholder is None)
    server.faults.fail_photo(photo.id, kind, size="medium")
    async with http.get(server.photo_url(photo, "small")) as response:
        assert response.status == 200  # other sizes are untouched
    async with http.get(server.photo_url(photo, "medium")) as response:
        assert (response.status, response.content_type) == (status, content_type)
        assert marker in await response.read()
    assert server.log.photo_fetches(photo.id, "medium").faulted == 1
    assert server.log.delivered_photos()[(photo.id, "medium")] == 0


async def test_random_faults_are_reproducible_per_attempt(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    photos = [p for p in dataset.photos() if p.placeholder is None][:40]

    async def statuses(order: list[Any]) -> dict[int, int]:
        server.faults.clear()
        server.faults.randomly(FaultKind.SERVICE_UNAVAILABLE, 0.3, seed=9)
        found = {}
        for photo in order:
            async with http.get(server.photo_url(photo)) as response:
                found[photo.id] = response.status
        return found

    forward = await statuses(photos)
    backward = await statuses(photos[::-1])
    assert forward == backward
    assert 0 < list(forward.values()).count(503) < len(photos)


async def test_stall_lets_client_time_out(
    server: FakeInatServer, http: aiohttp.ClientSession
) -> None:
    server.faults.fail_api(FaultKind.STALL, delay=5)
    with pytest.raises(asyncio.TimeoutError):
        await http.get(f"{server.api_url}/taxa", timeout=aiohttp.ClientTimeout(total=0.2))
    for _ in range(50):  # the server notices the hang-up on its own schedule
        if server.log.api_requests()[0].outcome == "aborted":
            break
        await asyncio.sleep(0.01)
    assert server.log.api_requests()[0].outcome == "aborted"


async def test_latency_bandwidth_and_runtime_switches(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    loop = asyncio.get_running_loop()
    server.settings.api_latency = 0.1
    start = loop.time()
    await http.get(f"{server.api_url}/taxa")
    assert loop.time() - start >= 0.1
    server.settings.api_latency = 0.0
    photo = next(p for p in dataset.photos() if p.placeholder is None)
    server.settings.photo_bandwidth = 40_000
    start = loop.time()
    body = await (await http.get(server.photo_url(photo, "medium"))).read()
    assert loop.time() - start >= 0.8 * len(body) / 40_000
    server.settings.photo_bandwidth = None
    times = server.log.api_times()
    assert times == sorted(times)


async def test_throttle_answers_varnish_429_on_the_servers_clock(
    dataset: FakeDataset, http: aiohttp.ClientSession
) -> None:
    now = [0.0]
    async with FakeInatServer(dataset, throttle_per_minute=3, clock=lambda: now[0]) as server:
        url = f"{server.api_url}/taxa"
        assert [(await http.get(url)).status for _ in range(3)] == [200, 200, 200]
        now[0] = 20.0
        async with http.get(url) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "40"
            assert "Varnish" in await response.text()
        now[0] = 61.0
        assert (await http.get(url)).status == 200
        assert server.log.api_times() == [0.0, 0.0, 0.0, 20.0, 61.0]


async def test_changing_the_dataset_mid_run(http: aiohttp.ClientSession) -> None:
    dataset = build_dataset({"Mantis religiosa": 20}, seed=2)
    mantis = dataset.species("Mantis religiosa")
    async with FakeInatServer(dataset) as server:
        before = await walk(http, server, taxon_id=mantis.id, per_page=200)
        added = dataset.add_observations("Mantis religiosa", 3)
        assert min(o.id for o in added) > max(before)
        after = await observations(
            http, server, taxon_id=mantis.id, id_above=before[-1], order="asc", order_by="id"
        )
        assert [o["id"] for o in after["results"]] == [o.id for o in added]
        photo = next(p for p in dataset.photos() if p.placeholder is None and p.host == "s3")
        moved = dataset.move_photo(photo.id)
        assert moved.host == "static"
        owner = dataset.observation_of_photo(photo.id)
        assert owner is not None
        shown = await observations(http, server, id=owner.id)
        assert any("/static/photos/" in p["url"] for p in shown["results"][0]["photos"])


# -- running it ---------------------------------------------------------------------------


def test_thread_runner_serves_synchronous_callers(dataset: FakeDataset) -> None:
    with run_in_thread(dataset, api_latency=0.01) as server:
        server.faults.fail_api(FaultKind.SERVICE_UNAVAILABLE, times=1)
        url = f"{server.api_url}/observations?per_page=1"
        with pytest.raises(urllib.request.HTTPError) as failure:
            urllib.request.urlopen(url, timeout=5)
        failure.value.close()
        with urllib.request.urlopen(url, timeout=5) as response:
            assert json.load(response)["total_results"] == 240
        assert [r.status for r in server.log.api_requests()] == [503, 200]


def test_cli_prints_the_api_url_and_serves_until_killed() -> None:
    command = [sys.executable, "-m", "inat_async.testing", "--species", "Apis mellifera=12"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            api_url = process.stdout.readline().strip()
            summary = json.loads(process.stdout.readline())
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", api_url)
            assert summary["species"]["Apis mellifera"]["observations"] == 12
            base = summary["base_url"]
            request = urllib.request.Request(
                f"{base}/_fake/faults",
                data=json.dumps({"kind": "429", "target": "api"}).encode(),
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert json.load(response)["kind"] == "429"
            with pytest.raises(urllib.request.HTTPError) as failure:
                urllib.request.urlopen(f"{api_url}/observations", timeout=5)
            assert failure.value.code == 429
            failure.value.close()
            with urllib.request.urlopen(f"{base}/_fake/summary", timeout=5) as response:
                assert json.load(response)["faults"] == {"429": 1}
        finally:
            process.terminate()
            assert process.wait(timeout=10) == 0
