"""The fake server's selection semantics: search filters, species counts, places, terms.

Every expectation is computed from the dataset's own fields, independently of the
server's filter code, so a filter that matched too much or too little would show.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from inat_async.testing import (
    FakeDataset,
    FakeInatServer,
    FakeObservation,
    FakeSpecies,
    build_dataset,
)

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "inat-api"


def recorded(name: str) -> Any:
    if not FIXTURES.is_dir():
        pytest.skip(f"recorded API answers not found in {FIXTURES}")
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def dataset() -> FakeDataset:
    bees = [
        FakeSpecies(
            "Apis mellifera",
            220,
            subspecies=("Apis mellifera ligustica", "Apis mellifera carnica"),
            family="Apidae",
        ),
        FakeSpecies(
            "Bombus terrestris", 90, subspecies=("Bombus terrestris audax",), family="Apidae"
        ),
        FakeSpecies("Xylocopa violacea", 40, family="Apidae"),
        FakeSpecies("Mantis religiosa", 60, family="Mantidae"),
    ]
    return build_dataset(bees, seed=11)


@pytest.fixture
async def server(dataset: FakeDataset) -> AsyncIterator[FakeInatServer]:
    async with FakeInatServer(dataset) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http: aiohttp.ClientSession, url: str, **params: Any) -> Any:
    async with http.get(url, params={k: str(v) for k, v in params.items()}) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def walk_ids(http: aiohttp.ClientSession, server: FakeInatServer, **params: Any) -> list[int]:
    seen: list[int] = []
    while True:
        page = await get(
            http,
            f"{server.api_url}/observations",
            order_by="id",
            order="asc",
            per_page=200,
            id_above=seen[-1] if seen else 0,
            **params,
        )
        if not page["results"]:
            return seen
        seen += [o["id"] for o in page["results"]]


def test_new_fields_are_drawn(dataset: FakeDataset) -> None:
    observations = dataset.observations
    assert any(o.captive for o in observations) and not all(o.captive for o in observations)
    assert any(o.place_ids for o in observations)
    assert all(not o.place_ids for o in observations if o.latitude is None)
    terms = {term for o in observations for term, _ in o.annotations}
    assert {1, 9, 17} <= terms
    years = {o.observed_on[:4] for o in observations if o.observed_on}
    months = {o.observed_on[5:7] for o in observations if o.observed_on}
    assert len(years) >= 2 and len(months) == 12
    assert len({o.user.id for o in observations}) > 5
    family = dataset.taxa[
        dataset.taxa[dataset.species("Apis mellifera").parent_id or 0].parent_id or 0
    ]
    assert (family.name, family.rank, family.rank_level) == ("Apidae", "family", 30)


def _place(dataset: FakeDataset) -> int:
    """The place held by most observations that is not held by all of them."""
    counts: dict[int, int] = {}
    for obs in dataset.observations:
        for place in obs.place_ids:
            counts[place] = counts.get(place, 0) + 1
    return max((n, p) for p, n in counts.items() if n < len(dataset.observations))[1]


def _cases(dataset: FakeDataset) -> list[tuple[dict[str, Any], Callable[[FakeObservation], bool]]]:
    place = _place(dataset)
    user = dataset.observations[0].user
    lats = sorted(o.latitude for o in dataset.observations if o.latitude is not None)
    lngs = sorted(o.longitude for o in dataset.observations if o.longitude is not None)
    box = (lats[len(lats) // 4], lngs[len(lngs) // 4], lats[-1], lngs[len(lngs) * 3 // 4])

    def in_box(o: FakeObservation) -> bool:
        return (
            o.latitude is not None
            and o.longitude is not None
            and box[0] <= o.latitude <= box[2]
            and box[1] <= o.longitude <= box[3]
        )

    date = lambda o: o.observed_on or ""  # noqa: E731
    return [
        ({"place_id": place}, lambda o: place in o.place_ids),
        ({"d1": "2017-06-01"}, lambda o: date(o) >= "2017-06-01"),
        ({"d2": "2017-06-01"}, lambda o: bool(date(o)) and date(o) <= "2017-06-01"),
        ({"month": "4,5,6"}, lambda o: date(o)[5:7] in ("04", "05", "06")),
        ({"year": "2018"}, lambda o: date(o)[:4] == "2018"),
        ({"captive": "true"}, lambda o: o.captive),
        ({"captive": "false"}, lambda o: not o.captive),
        ({"user_id": user.id}, lambda o: o.user.id == user.id),
        ({"user_id": user.login}, lambda o: o.user.id == user.id),
        ({"term_id": 1, "term_value_id": 2}, lambda o: (1, 2) in o.annotations),
        ({"term_id": 1}, lambda o: any(t == 1 for t, _ in o.annotations)),
        (
            {"without_term_id": 1, "without_term_value_id": 8},
            lambda o: (1, 8) not in o.annotations,
        ),
        (
            {"swlat": box[0], "swlng": box[1], "nelat": box[2], "nelng": box[3]},
            in_box,
        ),
        (
            {"place_id": place, "captive": "false", "term_id": 1, "term_value_id": 2, "year": 2017},
            lambda o: (
                place in o.place_ids
                and not o.captive
                and (1, 2) in o.annotations
                and date(o)[:4] == "2017"
            ),
        ),
    ]


async def test_each_filter_finds_exactly_what_matches(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    for params, predicate in _cases(dataset):
        expected = [o.id for o in dataset.observations if predicate(o)]
        assert expected, f"the dataset has nothing for {params}: the test proves nothing"
        assert len(expected) < len(dataset.observations), params
        assert await walk_ids(http, server, **params) == expected, params


async def test_bad_date_is_refused(server: FakeInatServer, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{server.api_url}/observations", params={"d1": "yesterday"}) as response:
        assert response.status == 422


async def test_species_counts_are_leaf_taxa(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    family = next(t for t in dataset.taxa.values() if t.name == "Apidae")
    body = await get(http, f"{server.api_url}/observations/species_counts", taxon_id=family.id)
    counts = {r["taxon"]["id"]: r["count"] for r in body["results"]}
    expected: dict[int, int] = {}
    for obs in dataset.observations:
        if family.id in dataset.taxa[obs.taxon_id].ancestor_ids:
            expected[obs.taxon_id] = expected.get(obs.taxon_id, 0) + 1
    assert counts == expected
    assert body["total_results"] == len(expected) and body["per_page"] == 500
    ranks = {r["taxon"]["rank"] for r in body["results"]}
    assert ranks == {"species", "subspecies"}, "subspecies come back beside their species"
    assert [r["count"] for r in body["results"]] == sorted(counts.values(), reverse=True)
    first = body["results"][0]["taxon"]
    assert first["ancestry"] == "/".join(map(str, first["ancestor_ids"][:-1]))
    # Paging: the same list, two at a time.
    paged: list[int] = []
    for page in (1, 2, 3, 4):
        part = await get(
            http,
            f"{server.api_url}/observations/species_counts",
            taxon_id=family.id,
            per_page=2,
            page=page,
        )
        paged += [r["taxon"]["id"] for r in part["results"]]
    assert paged == [r["taxon"]["id"] for r in body["results"]]
    # Filters apply: a species seen only as subspecies there comes back instead of it.
    place = _place(dataset)
    there = await get(
        http, f"{server.api_url}/observations/species_counts", place_id=place, per_page=500
    )
    assert sum(r["count"] for r in there["results"]) == sum(
        1 for o in dataset.observations if place in o.place_ids
    )


async def test_species_counts_shape_matches_the_recording(
    server: FakeInatServer, http: aiohttp.ClientSession
) -> None:
    real = recorded("pyinaturalist__v1_get_observation_species_counts.json")
    ours = await get(http, f"{server.api_url}/observations/species_counts")
    assert set(ours) == set(real)
    assert set(ours["results"][0]) == set(real["results"][0])
    missing = set(real["results"][0]["taxon"]) - set(ours["results"][0]["taxon"])
    assert not missing - {"wikipedia_url", "atlas_id", "preferred_common_name"}


async def test_places_autocomplete_and_by_id(
    server: FakeInatServer, http: aiohttp.ClientSession
) -> None:
    real = recorded("pyinaturalist__v1_get_places_autocomplete.json")
    found = await get(http, f"{server.api_url}/places/autocomplete", q="california")
    names = [p["name"] for p in found["results"]]
    assert names[0] == "California" and "Baja California" in names
    assert set(found["results"][0]) == set(real["results"][0])
    assert set(found) == set(real)
    twice = await get(http, f"{server.api_url}/places/autocomplete", q="Springfield")
    assert [p["name"] for p in twice["results"]] == ["Springfield", "Springfield"]
    nothing = await get(http, f"{server.api_url}/places/autocomplete", q="Atlantis")
    assert nothing["results"] == []
    by_id = await get(http, f"{server.api_url}/places/14,6744")
    assert sorted(p["name"] for p in by_id["results"]) == ["Australia", "California"]
    real_full = recorded("pyinaturalist__v1_get_places_by_id.json")["results"][0]
    assert set(by_id["results"][0]) <= set(real_full)
    assert by_id["results"][0]["geometry_geojson"]["type"] == "MultiPolygon"


async def test_controlled_terms_match_the_recording(
    server: FakeInatServer, http: aiohttp.ClientSession, dataset: FakeDataset
) -> None:
    real = recorded("pyinaturalist__v1_get_controlled_terms.json")
    ours = await get(http, f"{server.api_url}/controlled_terms")

    def labels(body: Any) -> dict[tuple[int, str], list[tuple[int, str]]]:
        return {
            (t["id"], t["label"]): [(v["id"], v["label"]) for v in t["values"]]
            for t in body["results"]
        }

    assert labels(ours) == labels(real)
    assert set(ours["results"][0]) <= set(real["results"][0])
    # Observations carry their annotations in the recorded shape.
    annotated = next(o for o in dataset.observations if o.annotations)
    body = await get(http, f"{server.api_url}/observations/{annotated.id}")
    item = body["results"][0]["annotations"][0]
    real_item = recorded("pyinaturalist__v1_get_observations_by_id.json")["results"][0][
        "annotations"
    ][0]
    assert set(item) == set(real_item)
    assert set(item["controlled_value"]) == set(real_item["controlled_value"])
    assert item["controlled_attribute"]["label"] in {t["label"] for t in real["results"]}
    assert (item["controlled_attribute_id"], item["controlled_value_id"]) == annotated.annotations[
        0
    ]
    assert body["results"][0]["place_ids"] == list(annotated.place_ids)
    assert body["results"][0]["captive"] is annotated.captive
