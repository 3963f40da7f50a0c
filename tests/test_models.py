"""Parsing of taxa, observations and photos, on answers recorded from the real API.

The recorded answers live outside the project, in ``<repo>/../shared/fixtures/inat-api``
(see SOURCES.md there); the tests that need them are skipped when that folder is absent.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inat_async.models import (
    Observation,
    Photo,
    Taxon,
    is_result_page,
    parse_observation_page,
    parse_taxa_page,
    photo_url_for_size,
    url_extension,
)
from inat_async.naming import photo_file_name, safe_component
from inat_async.options import SIZES, Query

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "inat-api"
OBSERVATION_FILES = [
    "MushroomObserver__amanita_flavorubens.txt",
    "MushroomObserver__ceanothus_cordulatus.txt",
    "MushroomObserver__coprinus.txt",
    "MushroomObserver__i_obliquus_f_sterilis.txt",
    "MushroomObserver__import_all.txt",
    "MushroomObserver__inocybe.txt",
    "MushroomObserver__listed_ids.txt",
    "MushroomObserver__no_location.txt",
    "MushroomObserver__russulaceae.txt",
    "MushroomObserver__somion_unicolor.txt",
    "MushroomObserver__validae.txt",
    "MushroomObserver__zero_results.txt",
    "pyinaturalist__v1_get_nonexistent_observation.json",
    "pyinaturalist__v1_get_observation.json",
    "pyinaturalist__v1_get_observation_with_ofvs.json",
    "pyinaturalist__v1_get_observation_with_sounds.json",
    "pyinaturalist__v1_get_observations_by_id.json",
    "pyinaturalist__v1_get_observations_page1.json",
    "pyinaturalist__v1_get_observations_page2.json",
    "pyinaturalist__v2_get_observations_by_id_full.json",
    "pyinaturalist__v2_get_observations_full.json",
    "pyinaturalist__v2_get_observations_minimal.json",
]
TAXA_FILES = [
    "pyinaturalist__v1_get_taxa.json",
    "pyinaturalist__v1_get_taxa_autocomplete.json",
    "pyinaturalist__v1_get_taxa_by_id.json",
]
ERROR_FILES = [
    "pyinaturalist__get_access_token_401.json",
    "pyinaturalist__v0_create_observation_fail.json",
]
#: Answers that the selection features read (species counts, annotations, places).
SELECTION_FILES = [
    "pyinaturalist__v1_get_all_observation_species_counts_page1.json",
    "pyinaturalist__v1_get_all_observation_species_counts_page2.json",
    "pyinaturalist__v1_get_controlled_terms.json",
    "pyinaturalist__v1_get_observation_species_counts.json",
    "pyinaturalist__v1_get_places_autocomplete.json",
    "pyinaturalist__v1_get_places_by_id.json",
]
S3 = "inaturalist-open-data.s3.amazonaws.com"
STATIC = "static.inaturalist.org"
PLACEHOLDER = "https://www.inaturalist.org/attachment_defaults/local_photos/square.png"


def load(name: str) -> Any:
    if not FIXTURES.is_dir():
        pytest.skip(f"recorded API answers not found in {FIXTURES}")
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def only_observation(name: str) -> Observation:
    page = parse_observation_page(load(name))
    assert len(page.observations) == 1
    return page.observations[0]


def raw_results(name: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = load(name)["results"]
    return results


def walk(value: object) -> Iterator[Mapping[str, Any]]:
    """Every mapping nested anywhere in a JSON value."""
    if isinstance(value, Mapping):
        yield value
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def test_the_file_lists_cover_every_recorded_answer() -> None:
    load(OBSERVATION_FILES[0])
    recorded = {path.name for path in FIXTURES.iterdir() if path.name != "SOURCES.md"}
    assert recorded == set(OBSERVATION_FILES + TAXA_FILES + ERROR_FILES + SELECTION_FILES)


# --- observations ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", OBSERVATION_FILES)
def test_every_recorded_observation_parses(name: str) -> None:
    body = load(name)
    page = parse_observation_page(body)
    results = body["results"]
    with_ids = [item for item in results if isinstance(item.get("id"), int)]
    assert is_result_page(body)
    assert page.size == len(results)
    assert page.total_results == body["total_results"]
    assert [o.id for o in page.observations] == [item["id"] for item in with_ids]
    assert page.last_id == (max(item["id"] for item in with_ids) if with_ids else None)
    for observation, item in zip(page.observations, with_ids, strict=True):
        assert observation.uuid == item["uuid"]
        assert observation.quality_grade in {"research", "needs_id", "casual"}
        assert observation.user_login == item["user"]["login"]
        assert observation.taxon_id == item["taxon"]["id"]
        assert observation.photo_items == len(item["photos"])
        # Every recorded observation photo is a real one: none may be lost.
        assert len(observation.photos) == len(item["photos"])
        for photo, raw in zip(observation.photos, item["photos"], strict=True):
            assert photo.id == raw["id"]
            assert photo.position == item["photos"].index(raw)
            assert f"/photos/{photo.id}/square." in photo.url
            assert photo.license_code == raw["license_code"]
            assert photo.attribution == raw["attribution"]
            assert (photo.width, photo.height) == (
                raw["original_dimensions"]["width"],
                raw["original_dimensions"]["height"],
            )
            for size in SIZES:
                assert photo.url_for(size) == photo.url.replace("/square.", f"/{size}.")
            name_ = photo_file_name(
                observation.taxon_name or "",
                observation.user_login,
                photo.license_code,
                observation.id,
                photo.position,
                photo.extension,
            )
            assert name_.endswith(f"_{observation.id}_{photo.position}.{photo.extension}")


def test_null_licenses_mean_all_rights_reserved() -> None:
    observation = only_observation("pyinaturalist__v1_get_observations_page2.json")
    assert observation.license_code is None
    assert [p.license_code for p in observation.photos] == [None]
    russula = only_observation("MushroomObserver__russulaceae.txt")
    assert [p.license_code for p in russula.photos] == [None, None]
    assert {urlsplit(p.url).hostname for p in russula.photos} == {STATIC}
    # Such photos pass only when every license is accepted.
    assert Query.parse(license="any").accepts_photo_license(None)
    assert not Query.parse(license="cc-by,cc0").accepts_photo_license(None)


def test_photo_license_differs_from_the_observation_license() -> None:
    observation = only_observation("pyinaturalist__v1_get_observation.json")
    assert observation.license_code == "cc0"
    assert [p.license_code for p in observation.photos] == ["cc-by", "cc-by"]
    ceanothus = only_observation("MushroomObserver__ceanothus_cordulatus.txt")
    assert ceanothus.license_code == "cc-by-sa"
    assert [p.license_code for p in ceanothus.photos] == ["cc-by"]
    # The filter looks at each photo's own license, never at the observation's.
    cc0_only = Query.parse(license="cc0")
    assert not any(cc0_only.accepts_photo_license(p.license_code) for p in observation.photos)
    cc_by = Query.parse(license="cc-by")
    assert all(cc_by.accepts_photo_license(p.license_code) for p in ceanothus.photos)


def test_geojson_gives_lat_lon_in_that_order() -> None:
    checked = 0
    for name in OBSERVATION_FILES:
        for item, observation in zip(
            [i for i in raw_results(name) if "id" in i],
            parse_observation_page(load(name)).observations,
            strict=True,
        ):
            if not item.get("geojson"):
                assert (observation.latitude, observation.longitude) == (None, None)
                continue
            # Some answers give the coordinates as strings ("50.646894"): still numbers here.
            lon, lat = item["geojson"]["coordinates"]
            assert (observation.latitude, observation.longitude) == (float(lat), float(lon))
            if isinstance(item.get("location"), str):
                lat_text, lon_text = item["location"].split(",")
                assert observation.latitude == pytest.approx(float(lat_text))
                assert observation.longitude == pytest.approx(float(lon_text))
                checked += 1
    assert checked >= 15


def test_no_geojson_and_no_location() -> None:
    observation = only_observation("MushroomObserver__no_location.txt")
    assert (observation.latitude, observation.longitude) == (None, None)
    assert len(observation.photos) == 1


@pytest.mark.parametrize("missing", ["delete", "null", "empty", "bad"])
def test_missing_geojson_falls_back_to_location(missing: str) -> None:
    item = copy.deepcopy(raw_results("MushroomObserver__coprinus.txt")[0])
    if missing == "delete":
        del item["geojson"]
    elif missing == "null":
        item["geojson"] = None
    elif missing == "empty":
        item["geojson"] = {"type": "Point", "coordinates": []}
    else:
        item["geojson"] = {"coordinates": ["x", None]}
    observation = Observation.from_api(item)
    assert observation is not None
    assert observation.latitude == pytest.approx(31.9901034402)
    assert observation.longitude == pytest.approx(-95.9476812704)


@pytest.mark.parametrize(
    "location", [None, "", "31.99", "a,b", "1,2,3", [31.99, -95.94], "nan,nan", "inf,1"]
)
def test_unusable_location_gives_no_coordinates(location: object) -> None:
    item = copy.deepcopy(raw_results("MushroomObserver__coprinus.txt")[0])
    item["geojson"] = None
    item["location"] = location
    observation = Observation.from_api(item)
    assert observation is not None
    assert (observation.latitude, observation.longitude) == (None, None)


@pytest.mark.parametrize(
    "coordinates", ["[1e400, 45.0]", "[1" + "0" * 400 + ", 45.0]", "[NaN, 45.0]", "[true, false]"]
)
def test_out_of_range_numbers_do_not_crash(coordinates: str) -> None:
    # json.loads reads 1e400 as inf and a 400-digit literal as an int beyond float range.
    item = json.loads(
        '{"id": 1, "geojson": {"coordinates": ' + coordinates + '}, "location": "10.5,20.25"}'
    )
    observation = Observation.from_api(item)
    assert observation is not None
    assert (observation.latitude, observation.longitude) == (10.5, 20.25)


def test_mixed_extensions_in_one_observation() -> None:
    inocybe = only_observation("MushroomObserver__inocybe.txt")
    assert [p.extension for p in inocybe.photos] == ["jpg"] * 4 + ["jpeg"]
    assert inocybe.photos[4].url_for("large").endswith("/large.jpeg")
    somion = only_observation("MushroomObserver__somion_unicolor.txt")
    assert {p.extension for p in somion.photos} == {"jpeg"}
    sounds = only_observation("pyinaturalist__v1_get_observation_with_sounds.json")
    assert [p.extension for p in sounds.photos] == ["png", "png"]


def test_timestamp_query_is_kept_when_changing_size() -> None:
    observation = only_observation("pyinaturalist__v1_get_observation.json")
    photo = observation.photos[0]
    assert photo.url == "https://static.inaturalist.org/photos/24355315/square.jpeg?1536150664"
    assert photo.url_for("medium") == (
        "https://static.inaturalist.org/photos/24355315/medium.jpeg?1536150664"
    )
    assert photo.url_for("original") == (
        "https://static.inaturalist.org/photos/24355315/original.jpeg?1536150664"
    )
    assert photo.extension == "jpeg"


def test_a_photo_can_move_from_static_to_s3() -> None:
    before = only_observation("pyinaturalist__v1_get_observation.json")
    after = only_observation("pyinaturalist__v1_get_observations_by_id.json")
    assert [p.id for p in before.photos] == [p.id for p in after.photos]
    assert {urlsplit(p.url).hostname for p in before.photos} == {STATIC}
    assert {urlsplit(p.url).hostname for p in after.photos} == {S3}
    for photo in after.photos:
        medium = urlsplit(photo.url_for("medium"))
        assert (medium.hostname, medium.query) == (S3, "")
        assert medium.path == f"/photos/{photo.id}/medium.jpeg"


def test_urls_of_every_size_agree_with_those_the_api_lists() -> None:
    """Nested photos list ``<size>_url`` next to ``url``: the real answer to compare with."""
    compared, skipped, extensions = 0, 0, set()
    for name in OBSERVATION_FILES + TAXA_FILES:
        for item in walk(load(name)):
            if not isinstance(item.get("url"), str) or "square_url" not in item:
                continue
            photo = Photo.from_api(item, 0)
            if photo is None:
                # Flickr or Wikimedia taxon photos have no /photos/<id>/ path: not ours to fetch.
                assert urlsplit(item["url"]).hostname not in {S3, STATIC}
                skipped += 1
                continue
            extensions.add(photo.extension)
            for size in ("square", *SIZES):
                if f"{size}_url" in item:
                    assert photo.url_for(size) == item[f"{size}_url"]
                    compared += 1
    assert compared > 500
    assert skipped > 0
    # Real URLs end in .jpg, .jpeg, .JPG, and even in a bare "." (no extension at all).
    assert {"jpg", "jpeg", None} <= extensions


@pytest.mark.parametrize(
    ("url", "extension", "medium"),
    [
        (
            "https://static.inaturalist.org/photos/1205428/square.?1413275622",
            None,
            "https://static.inaturalist.org/photos/1205428/medium.?1413275622",
        ),
        (
            "https://inaturalist-open-data.s3.amazonaws.com/photos/4160980/square.",
            None,
            "https://inaturalist-open-data.s3.amazonaws.com/photos/4160980/medium.",
        ),
        (
            "https://static.inaturalist.org/photos/1/square.JPG?123",
            "jpg",
            "https://static.inaturalist.org/photos/1/medium.JPG?123",
        ),
        ("https://static.inaturalist.org/photos/1/square", None, None),
        ("https://static.inaturalist.org/photos/1/square.jpé", None, None),
        ("https://static.inaturalist.org/photos/1/square.j%70g", None, None),
        ("https://h/photos/square/square.jpg?/photos/1/x.jpg", None, None),
    ],
)
def test_extensions(url: str, extension: str | None, medium: str | None) -> None:
    assert url_extension(url) == extension
    if medium is not None:
        assert photo_url_for_size(url, "medium") == medium


def test_size_rewrite_touches_the_file_stem_only() -> None:
    url = "https://square.example/photos/7/square.jpg?square=1#square"
    assert photo_url_for_size(url, "large") == (
        "https://square.example/photos/7/large.jpg?square=1#square"
    )


def test_non_ascii_names() -> None:
    noe = only_observation("pyinaturalist__v1_get_observation.json")
    assert noe.user_name == "Nicolas Noé"
    bohemier = only_observation("MushroomObserver__i_obliquus_f_sterilis.txt")
    assert bohemier.user_name == "Benjamin Bohémier"
    assert bohemier.photos[0].attribution == (
        "(c) Benjamin Bohémier, some rights reserved (CC BY-NC)"
    )
    assert safe_component(bohemier.user_name) == "Benjamin-Bohemier"
    assert bohemier.photos[0].extension == "jpeg"


@pytest.mark.parametrize(
    "name", ["MushroomObserver__amanita_flavorubens.txt", "MushroomObserver__listed_ids.txt"]
)
def test_observations_without_photos(name: str) -> None:
    for observation in parse_observation_page(load(name)).observations:
        assert observation.photos == ()
        assert observation.photo_items == 0


def test_placeholders_are_skipped_and_positions_kept() -> None:
    item = copy.deepcopy(raw_results("MushroomObserver__inocybe.txt")[0])
    item["photos"][1]["url"] = PLACEHOLDER
    item["photos"][2]["url"] = None
    item["photos"][3] = "not a photo"
    observation = Observation.from_api(item)
    assert observation is not None
    assert observation.photo_items == 5
    assert [p.position for p in observation.photos] == [0, 4]
    assert [p.id for p in observation.photos] == [394895181, 394895682]
    with pytest.raises(ValueError, match="not an iNaturalist photo URL"):
        photo_url_for_size(PLACEHOLDER, "medium")


@pytest.mark.parametrize(
    "url",
    [
        PLACEHOLDER,
        "https://www.inaturalist.org/assets/copyright-infringement-square.png",
        "https://farm4.staticflickr.com/3614/3557113604_11b14dfd03_s.jpg",
        "https://static.inaturalist.org/photos//square.jpg",
        "https://static.inaturalist.org/photos/12/",
        "https://[broken/photos/1/square.jpg",
        "",
        None,
        42,
    ],
)
def test_not_a_photo(url: object) -> None:
    assert Photo.from_api({"id": 1, "url": url, "license_code": "cc-by"}, 0) is None
    if isinstance(url, str):
        assert url_extension(url) is None


def test_photo_id_falls_back_to_the_url() -> None:
    photo = Photo.from_api({"url": "https://static.inaturalist.org/photos/99/square.JPG"}, 2)
    assert photo is not None
    assert (photo.id, photo.position, photo.license_code, photo.width) == (99, 2, None, None)
    assert photo.extension == "jpg"


@pytest.mark.parametrize("odd", ["²", "١٢", "-3", "1.5", " ", True, 2.0, None, [], {}])
def test_odd_ids_and_numbers_are_none(odd: object) -> None:
    assert Observation.from_api({"id": odd}) is None
    observation = Observation.from_api(
        {"id": " 17 ", "positional_accuracy": odd, "user": {"id": odd}, "taxon": odd}
    )
    assert observation is not None
    assert (observation.id, observation.positional_accuracy, observation.user_id) == (
        17,
        None,
        None,
    )


def test_obscured_observations() -> None:
    assert only_observation("pyinaturalist__v1_get_observation_with_ofvs.json").obscured is True
    assert only_observation("MushroomObserver__coprinus.txt").obscured is True
    assert only_observation("MushroomObserver__inocybe.txt").obscured is False


def test_observation_fields() -> None:
    observation = only_observation("pyinaturalist__v1_get_observation.json")
    assert observation.id == 16227955
    assert observation.url == "https://www.inaturalist.org/observations/16227955"
    assert observation.taxon_name == "Lixus bardanae"
    assert observation.user_login == "niconoe"
    assert observation.positional_accuracy == 23
    assert observation.observed_on is not None
    assert observation.observed_on.startswith("2018-")


# --- pages -----------------------------------------------------------------------------------


def test_a_multi_result_page() -> None:
    page = parse_observation_page(load("MushroomObserver__import_all.txt"))
    assert page.total_results == 5
    assert page.size == 2
    assert [o.id for o in page.observations] == [94257956, 129141850]
    assert page.last_id == 129141850
    assert {o.user_login for o in page.observations} == {"devin189"}


@pytest.mark.parametrize(
    "name",
    ["MushroomObserver__zero_results.txt", "pyinaturalist__v1_get_nonexistent_observation.json"],
)
def test_empty_pages_end_a_walk(name: str) -> None:
    page = parse_observation_page(load(name))
    assert (page.total_results, page.size, page.last_id, page.observations) == (0, 0, None, ())


def test_two_pages_of_one_query() -> None:
    first = parse_observation_page(load("pyinaturalist__v1_get_observations_page1.json"))
    second = parse_observation_page(load("pyinaturalist__v1_get_observations_page2.json"))
    assert first.total_results == second.total_results == 2
    assert (first.last_id, second.last_id) == (57754375, 57707611)


def test_a_result_without_id_is_dropped_but_counted() -> None:
    page = parse_observation_page(load("pyinaturalist__v2_get_observations_minimal.json"))
    assert (page.size, page.observations, page.last_id) == (1, (), None)


def test_last_id_counts_unusable_items() -> None:
    page = parse_observation_page(
        {"total_results": "7", "results": [{"id": 5}, {"id": 9, "photos": "?"}, {"id": "x"}, 3]}
    )
    assert (page.total_results, page.size, page.last_id) == (7, 4, 9)
    assert [o.id for o in page.observations] == [5, 9]


def test_post_processed_files_parse() -> None:
    """pyinaturalist rewrote these (location as a list, Python datetimes): parse, don't crash."""
    sounds = only_observation("pyinaturalist__v1_get_observation_with_sounds.json")
    assert (sounds.latitude, sounds.longitude) == (51.601234, -1.122952)
    assert sounds.observed_on == "2021-06-25 22:18:43+00:00"
    assert [p.license_code for p in sounds.photos] == ["cc0", "cc0"]
    full = only_observation("pyinaturalist__v2_get_observations_full.json")
    assert (full.latitude, full.longitude) == (50.9316206893, -105.1650693422)
    assert [p.license_code for p in full.photos] == [None, None]
    assert full.user_login == "jmilligan"


@pytest.mark.parametrize("name", ERROR_FILES)
def test_error_bodies_are_not_result_pages(name: str) -> None:
    body = load(name)
    assert not is_result_page(body)
    page = parse_observation_page(body)
    assert (page.total_results, page.size, page.last_id, page.observations) == (None, 0, None, ())
    assert parse_taxa_page(body) == []


@pytest.mark.parametrize("body", [None, [], "results", {"results": None}, {"results": {}}])
def test_odd_bodies(body: object) -> None:
    assert not is_result_page(body)
    assert parse_observation_page(body).size == 0
    assert parse_taxa_page(body) == []


# --- taxa ------------------------------------------------------------------------------------


def test_taxa_search() -> None:
    body = load("pyinaturalist__v1_get_taxa.json")
    taxa = parse_taxa_page(body)
    assert is_result_page(body)
    assert len(taxa) == 30
    assert len({t.id for t in taxa}) == 30
    assert all(t.is_active and t.matched_term for t in taxa)
    assert taxa[0] == Taxon(
        id=70118,
        name="Nicrophorus vespilloides",
        rank="species",
        is_active=True,
        matched_term="Nicrophorus vespilloides",
        common_name=taxa[0].common_name,
        observations_count=taxa[0].observations_count,
    )
    by_name = {t.name: t for t in taxa}
    # A hit on a common name and on a subspecies name: matched_term says which.
    assert by_name["Synanthedon vespiformis"].matched_term == "Sésie vespiforme"
    assert by_name["Pseudopolybia vespiceps"].matched_term == "Pseudopolybia vespiceps vespiceps"
    assert by_name["Vespina"].rank == "genus"


def test_taxa_autocomplete_and_by_id() -> None:
    assert len(parse_taxa_page(load("pyinaturalist__v1_get_taxa_autocomplete.json"))) == 10
    (taxon,) = parse_taxa_page(load("pyinaturalist__v1_get_taxa_by_id.json"))
    assert (taxon.id, taxon.name, taxon.matched_term) == (70118, "Nicrophorus vespilloides", None)
    assert taxon.observations_count is not None


def test_taxon_flags() -> None:
    item = copy.deepcopy(raw_results("pyinaturalist__v1_get_taxa.json")[0])
    item["is_active"] = False
    inactive = Taxon.from_api(item)
    assert inactive is not None
    assert not inactive.is_active
    item["is_active"] = None  # unknown is not "inactive"
    assert Taxon.from_api(item) == Taxon.from_api({**item, "is_active": True})
    assert Taxon.from_api({"id": 1}) is None
    assert Taxon.from_api({"name": "Apis"}) is None
    assert Taxon.from_api({"id": True, "name": "Apis"}) is None


# --- never crash -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["12", "²", "١٢", "nan", "1e400", "-1", " 7 ", "40.1,-3.2", PLACEHOLDER]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
photo_urls = st.one_of(
    st.text(max_size=60),
    st.from_regex(
        r"https?://[a-z\[\].]{0,12}/photos/[0-9²]{1,4}/[a-z]{1,8}(\.[^/]{0,5})?", fullmatch=True
    ),
)
photo_items = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "url": photo_urls | json_values,
        "license_code": json_values,
        "attribution": json_values,
        "original_dimensions": json_values
        | st.fixed_dictionaries({"width": json_values, "height": json_values}),
    },
)
observation_items = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(
        (
            "id",
            "uuid",
            "quality_grade",
            "license_code",
            "observed_on",
            "time_observed_at",
            "location",
            "obscured",
            "positional_accuracy",
            "place_guess",
            "taxon",
            "user",
        ),
        json_values,
    )
    | {
        "geojson": json_values | st.fixed_dictionaries({"coordinates": json_values}),
        "photos": json_values | st.lists(photo_items | json_values, max_size=4),
    },
)


@settings(max_examples=150)
@given(
    st.fixed_dictionaries(
        {
            "total_results": json_values,
            "results": st.lists(observation_items | json_values, max_size=4),
        }
    )
    | json_values
)
def test_any_json_parses_without_raising(body: object) -> None:
    page = parse_observation_page(body)
    for observation in page.observations:
        for photo in observation.photos:
            assert 0 <= photo.position < observation.photo_items
            for size in SIZES:
                photo.url_for(size)
            assert photo.extension is None or re.fullmatch(r"[a-z0-9]+", photo.extension)
    parse_taxa_page(body)


@given(photo_items, st.integers(0, 100))
def test_any_photo_item_parses_without_raising(item: dict[str, Any], position: int) -> None:
    photo = Photo.from_api(item, position)
    if photo is not None:
        assert photo.position == position
        assert photo_url_for_size(photo.url, "small")
