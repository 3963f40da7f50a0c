"""Filters, places, annotations, search URLs and species lists: parsing, lookups, end to end.

Expectations come from the fake dataset's own fields (place_ids, captive, annotations,
observed dates, users, coordinates), never from the server's filter code.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from support import FAST_RETRY

from inat_async import download_all
from inat_async.checklist import api_client, list_species, resolve_selection, write_species_csv
from inat_async.errors import OutputConflictError, UsageError
from inat_async.limits import LimitSettings
from inat_async.options import Query
from inat_async.selection import (
    AnnotationFilter,
    FilterRequest,
    Filters,
    parse_bbox,
    parse_date,
    parse_months,
    parse_search_url,
    parse_years,
)
from inat_async.species import read_species_csv
from inat_async.testing import (
    FakeDataset,
    FakeInatServer,
    FakeObservation,
    FakeSpecies,
    build_dataset,
)

SPECIES = ("Apis mellifera", "Bombus terrestris")


@pytest.fixture(scope="module")
def bees() -> FakeDataset:
    return build_dataset(
        [
            FakeSpecies(
                "Apis mellifera",
                90,
                subspecies=("Apis mellifera ligustica", "Apis mellifera carnica"),
                family="Apidae",
            ),
            FakeSpecies(
                "Bombus terrestris", 50, subspecies=("Bombus terrestris audax",), family="Apidae"
            ),
            FakeSpecies("Xylocopa violacea", 20, family="Apidae"),
            FakeSpecies("Mantis religiosa", 30, family="Mantidae"),
        ],
        seed=21,
    )


@pytest.fixture
async def fake(bees: FakeDataset) -> AsyncIterator[FakeInatServer]:
    async with FakeInatServer(bees) as server:
        yield server


# -- offline parsing ----------------------------------------------------------------------------


def test_dates_months_years_and_boxes() -> None:
    assert parse_date("2020-02-29") == "2020-02-29"
    for bad in ("2021-02-29", "2020-2-1", "yesterday", "2020/01/01", ""):
        with pytest.raises(UsageError):
            parse_date(bad)
    assert parse_months("6,4,5,4") == (4, 5, 6)
    assert parse_months("4-6") == (4, 5, 6)
    for bad in ("0", "13", "4-", "a", ""):
        with pytest.raises(UsageError):
            parse_months(bad)
    assert parse_years("2021,2015-2017") == (2015, 2016, 2017, 2021)
    with pytest.raises(UsageError):
        parse_years("20")
    assert parse_bbox("-10,170,10,-170") == (-10.0, 170.0, 10.0, -170.0)  # antimeridian
    for bad in ("1,2,3", "91,0,92,1", "0,-181,1,0", "10,0,-10,1", "a,b,c,d", "nan,0,1,1"):
        with pytest.raises(UsageError):
            parse_bbox(bad)


@pytest.mark.parametrize(
    "param", ["taxon_id=1", "id_above=5", "order_by=id", "order=asc", "per_page=5", "page=2"]
)
def test_param_refuses_what_the_tool_owns(param: str) -> None:
    with pytest.raises(UsageError, match=param.split("=")[0]):
        FilterRequest.parse(param=[param])


def test_param_passes_others_through_and_types_the_known_ones() -> None:
    request = FilterRequest.parse(param=["project_id=12", "month=4-5", "lat=1", "lng=2"])
    assert request.months == (4, 5)
    assert request.extra == (("lat", "1"), ("lng", "2"), ("project_id", "12"))
    for bad in (["novalue"], ["=x"], ["a b=1"]):
        with pytest.raises(UsageError):
            FilterRequest.parse(param=bad)
    with pytest.raises(UsageError, match="twice"):
        FilterRequest.parse(month="4", param=["month=5"])


def test_filters_params_and_identity() -> None:
    filters = Filters(
        place_ids=(14, 1),
        d1="2020-01-01",
        months=(4, 5),
        captive=False,
        annotation=AnnotationFilter(1, (2,), "Life Stage=Adult"),
        without_annotation=AnnotationFilter(9, (), "Sex"),
        users=("bee_lover",),
        bbox=(-10.0, 20.5, 10.0, 30.0),
        extra=(("project_id", "3"),),
    )
    assert filters.params() == {
        "project_id": "3",
        "place_id": "14,1",
        "d1": "2020-01-01",
        "month": "4,5",
        "captive": "false",
        "user_id": "bee_lover",
        "term_id": "1",
        "term_value_id": "2",
        "without_term_id": "9",
        "swlat": "-10",
        "swlng": "20.5",
        "nelat": "10",
        "nelng": "30",
    }
    assert list(filters.describe()) == sorted(filters.params())
    assert Filters().empty and Filters().describe() == {}
    # Display names are not identity.
    assert Filters(place_ids=(14,), place_names=((14, "California"),)) == Filters(place_ids=(14,))


def test_search_urls() -> None:
    selection = parse_search_url(
        "https://www.inaturalist.org/observations?taxon_id=47219&place_id=6744"
        "&quality_grade=research&subview=map&order_by=observed_on&term_id=1&term_value_id=2"
        "&captive=false&project_id=9"
    )
    assert selection.taxon_ids == (47219,)
    assert selection.quality == "research"
    assert selection.filters.places == ("6744",)
    assert selection.filters.annotations == (("1", "2"),)
    assert selection.filters.captive is False
    assert selection.filters.extra == (("project_id", "9"),)
    api = parse_search_url(
        "https://api.inaturalist.org/v1/observations?taxon_name=Apis%20mellifera"
    )
    assert api.taxon_names == ("Apis mellifera",) and not api.taxon_ids
    # The website's own "no filter": its explore links say place_id=any, captive=any...
    unfiltered = parse_search_url(
        "https://www.inaturalist.org/observations?place_id=any&taxon_id=47219"
        "&verifiable=any&captive=any&quality_grade=any&photos=any"
    )
    assert unfiltered.filters == FilterRequest()
    assert unfiltered.taxon_ids == (47219,) and unfiltered.quality == "any"
    for bad in (
        "https://www.inaturalist.org/observations/12345",
        "https://www.inaturalist.org/taxa/47219",
        "https://api.inaturalist.org/v1/observations/species_counts?place_id=1",
        "ftp://www.inaturalist.org/observations",
        "not a url",
        "https://www.inaturalist.org/observations?d1=tomorrow",
    ):
        with pytest.raises(UsageError):
            parse_search_url(bad)


# -- lookups against the fake API ----------------------------------------------------------------


async def test_places_and_annotations_are_looked_up(
    fake: FakeInatServer, fast_limits: LimitSettings
) -> None:
    async with api_client(api_url=fake.api_url, limits=fast_limits, retry=FAST_RETRY) as client:
        found = await FilterRequest.parse(
            place=["california", "6744"], annotation=["life stage=ADULT", "Life Stage=Larva"]
        ).resolve(client)
        assert found.place_ids == (14, 6744)
        assert found.annotation == AnnotationFilter(
            1, (2, 6), "Life Stage=Adult or Life Stage=Larva"
        )
        any_sex = await FilterRequest.parse(without_annotation=["sex"]).resolve(client)
        assert any_sex.params() == {"without_term_id": "9"}
        problems = {
            "Springfield": "Springfield, IL, US \\(id 2359\\); Springfield, MA, US",
            "Atlantis": "no iNaturalist place is named 'Atlantis'",
            "99999999": "no iNaturalist place has id 99999999",
        }
        for place, message in problems.items():
            with pytest.raises(UsageError, match=message):
                await FilterRequest.parse(place=[place]).resolve(client)
        with pytest.raises(UsageError, match="the terms are Alive or Dead, Established, Life"):
            await FilterRequest.parse(annotation=["Stage=Adult"]).resolve(client)
        with pytest.raises(UsageError, match="its values are Adult, Teneral"):
            await FilterRequest.parse(annotation=["Life Stage=Grown"]).resolve(client)
        with pytest.raises(UsageError, match="one annotation term at a time"):
            await FilterRequest.parse(annotation=["Life Stage=Adult", "Sex=Male"]).resolve(client)
        with pytest.raises(UsageError, match="no iNaturalist taxon has id 5"):
            await resolve_selection(client, FilterRequest(), taxon_ids=[5])


async def test_species_of_a_family_roll_subspecies_up(
    fake: FakeInatServer, bees: FakeDataset, fast_limits: LimitSettings, tmp_path: Path
) -> None:
    def photographed(o: FakeObservation) -> bool:
        return bool(o.photos) and o.quality_grade == "research"

    async with api_client(api_url=fake.api_url, limits=fast_limits, retry=FAST_RETRY) as client:
        rows = await list_species(client, taxon="Apidae")
        genera = await list_species(client, taxon="Apidae", rank="genus", limit=2)
        few = await list_species(client, taxon="Apidae", min_observations=20)
    expected = {
        name: sum(1 for o in bees.observations_of(name) if photographed(o))
        for name in ("Apis mellifera", "Bombus terrestris", "Xylocopa violacea")
    }
    assert {r.name: r.observations for r in rows} == expected
    assert [r.observations for r in rows] == sorted(expected.values(), reverse=True)
    apis = next(r for r in rows if r.name == "Apis mellifera")
    assert apis.leaves == 3 and apis.taxon_id == bees.species("Apis mellifera").id
    assert [r.rank for r in genera] == ["genus", "genus"] and genera[0].name == "Apis"
    assert all(r.observations >= 20 for r in few) and len(few) < len(rows)
    # The file it writes is a species list run reads as it is.
    path = write_species_csv(rows, tmp_path / "bees.csv")
    assert path.read_text().splitlines()[0] == "name,taxon_id,observations"
    entries = read_species_csv(path)
    assert [(e.name, e.taxon_id) for e in entries] == [(r.name, r.taxon_id) for r in rows]


async def test_species_where_only_subspecies_were_seen(
    fast_limits: LimitSettings, tmp_path: Path
) -> None:
    """A species seen only as its subspecies still comes back, found through the ancestry."""
    dataset = build_dataset(
        [
            FakeSpecies(
                "Apis mellifera", 30, subspecies=("Apis mellifera ligustica",), family="Apidae"
            )
        ],
        seed=2,
    )
    apis = dataset.species("Apis mellifera")
    for obs in [o for o in dataset.observations if o.taxon_id == apis.id]:
        dataset.remove_observation(obs.id)
    async with FakeInatServer(dataset) as server:
        async with api_client(api_url=server.api_url, limits=fast_limits) as client:
            rows = await list_species(client, taxon="Apidae", query=Query(quality=None))
        lookups = [r for r in server.log.records() if r.path.startswith("/v1/taxa/")]
    assert [(r.name, r.taxon_id, r.leaves) for r in rows] == [("Apis mellifera", apis.id, 1)]
    assert rows[0].observations == sum(1 for o in dataset.observations if o.photos)
    assert len(lookups) == 1, "one lookup for the missing species"


# -- end to end: each filter downloads exactly what matches ---------------------------------------


def _cases(
    bees: FakeDataset,
) -> list[tuple[str, dict[str, Any], Callable[[FakeObservation], bool]]]:
    counts: dict[int, int] = {}
    for obs in bees.observations:
        for place in obs.place_ids:
            counts[place] = counts.get(place, 0) + 1
    place = max((n, p) for p, n in counts.items() if n < len(bees.observations))[1]
    user = max(
        bees.observations, key=lambda o: sum(x.user == o.user for x in bees.observations)
    ).user
    lats = sorted(o.latitude for o in bees.observations if o.latitude is not None)
    lngs = sorted(o.longitude for o in bees.observations if o.longitude is not None)
    box = (lats[0], lngs[len(lngs) // 3], lats[-1], lngs[-1])

    def in_box(o: FakeObservation) -> bool:
        lat, lng = o.latitude, o.longitude
        return lat is not None and lng is not None and box[0] <= lat <= box[2] and box[1] <= lng

    def date(o: FakeObservation) -> str:
        return o.observed_on or ""

    return [
        ("place", {"place": [str(place)]}, lambda o: place in o.place_ids),
        ("d1", {"d1": "2017-09-01"}, lambda o: date(o) >= "2017-09-01"),
        ("d2", {"d2": "2017-09-01"}, lambda o: "" < date(o) <= "2017-09-01"),
        ("month", {"month": "1-6"}, lambda o: "01" <= date(o)[5:7] <= "06"),
        ("year", {"year": "2018"}, lambda o: date(o)[:4] == "2018"),
        ("wild", {"captive": False}, lambda o: not o.captive),
        ("captive", {"captive": True}, lambda o: o.captive),
        ("annotation", {"annotation": ["Life Stage=Adult"]}, lambda o: (1, 2) in o.annotations),
        (
            "without",
            {"without_annotation": ["Life Stage=Juvenile"]},
            lambda o: (1, 8) not in o.annotations,
        ),
        ("user", {"user": user.login}, lambda o: o.user == user),
        ("bbox", {"bbox": ",".join(map(str, box))}, in_box),
        (
            "combined",
            {"captive": False, "annotation": ["life stage=adult"], "year": "2017-2018"},
            lambda o: not o.captive and (1, 2) in o.annotations and date(o)[:4] in ("2017", "2018"),
        ),
    ]


def _downloaded(out: Path, species: str) -> list[int]:
    name = species.replace(" ", "_")
    with (out / f"{name}_metadata.csv").open(encoding="utf-8", newline="") as handle:
        return [int(row["observation_id"]) for row in csv.DictReader(handle)]


async def test_each_filter_downloads_exactly_what_matches(
    fake: FakeInatServer, bees: FakeDataset, fast_limits: LimitSettings, tmp_path: Path
) -> None:
    async with api_client(api_url=fake.api_url, limits=fast_limits) as client:
        for label, options, predicate in _cases(bees):
            filters = await FilterRequest.parse(**options).resolve(client)
            out = tmp_path / label
            await download_all(
                SPECIES,
                observations=1000,
                out_dir=out,
                api_url=fake.api_url,
                limits=fast_limits,
                retry=FAST_RETRY,
                filters=filters,
                size="small",
            )
            kept = dropped = 0
            for species in SPECIES:
                candidates = [
                    o
                    for o in bees.observations_of(species)
                    if o.photos and o.quality_grade == "research"
                ]
                expected = [o.id for o in candidates if predicate(o)]
                kept, dropped = kept + len(expected), dropped + len(candidates) - len(expected)
                assert _downloaded(out, species) == expected, (label, species)
            assert kept and dropped, f"{label}: a filter that keeps all or nothing proves little"
    # Every walk request carried the filters.
    walks = [r for r in fake.log.records() if r.path == "/v1/observations"]
    assert walks and all("photos=true" in r.query for r in walks)
    assert any("term_id=1" in r.query and "captive=false" in r.query for r in walks)


async def test_metadata_has_the_new_columns_after_the_old(
    fake: FakeInatServer, bees: FakeDataset, fast_limits: LimitSettings, tmp_path: Path
) -> None:
    await download_all(
        ["Apis mellifera"],
        observations=30,
        out_dir=tmp_path,
        api_url=fake.api_url,
        limits=fast_limits,
        retry=FAST_RETRY,
        size="small",
    )
    with (tmp_path / "Apis_mellifera_metadata.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames is not None
    assert reader.fieldnames[-4:] == ["observer_id", "place_ids", "captive", "annotations"]
    assert reader.fieldnames[:2] == ["species_name", "observation_id"]
    labels = {1: "Life Stage", 9: "Sex", 17: "Alive or Dead", 22: "Evidence of Presence"}
    values = {
        2: "Adult",
        8: "Juvenile",
        6: "Larva",
        7: "Egg",
        4: "Pupa",
        5: "Nymph",
        10: "Female",
        11: "Male",
        20: "Cannot Be Determined",
        18: "Alive",
        19: "Dead",
        24: "Organism",
    }
    for row in rows:
        obs = bees.observation(int(row["observation_id"]))
        assert obs is not None
        assert row["observer_id"] == str(obs.user.id)
        assert row["place_ids"] == " ".join(map(str, obs.place_ids))
        assert row["captive"] == ("true" if obs.captive else "false")
        assert row["annotations"] == "; ".join(
            f"{labels[t]}={values[v]}" for t, v in obs.annotations
        )
    assert any(row["annotations"] for row in rows) and any(row["place_ids"] for row in rows)


async def test_other_filters_are_another_dataset(
    fake: FakeInatServer, fast_limits: LimitSettings, tmp_path: Path
) -> None:
    options: dict[str, Any] = {
        "observations": 5,
        "out_dir": tmp_path,
        "api_url": fake.api_url,
        "limits": fast_limits,
        "retry": FAST_RETRY,
        "size": "small",
    }
    wild = Filters(captive=False)
    await download_all(["Apis mellifera"], filters=wild, **options)
    await download_all(["Apis mellifera"], filters=wild, **options)  # the same: resumes
    with pytest.raises(OutputConflictError, match="captive 'false' before, not set now"):
        await download_all(["Apis mellifera"], **options)
    with pytest.raises(OutputConflictError, match="month not set before, '4' now"):
        await download_all(
            ["Apis mellifera"], filters=Filters(captive=False, months=(4,)), **options
        )
