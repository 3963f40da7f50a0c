"""Typed, defensive parsing of the API's taxa, observations and photos.

The API may leave out or null any field; parsing never raises on a missing or odd
value, it yields ``None`` instead. Numbers are checked here, at the boundary: an id
must be a whole number from 1 to 2^63 - 1 (what the resume store can hold), any other
stored number from 0 to 2^63 - 1. A result whose ``id`` is unusable is dropped (and
counted in :attr:`ObservationPage.rejected`); a photo item with an unusable id is left
out with its reason (:attr:`Observation.rejected`); any other out-of-range number
becomes ``None``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Required, TypedDict
from urllib.parse import urlsplit, urlunsplit

import msgspec

# `/photos/<id>/<size>.<ext>`: every real photo URL has this; placeholders do not.
_PHOTO_PATH = re.compile(r"/photos/(\d+)/([A-Za-z]+)(\.[^/]*)?$")

#: The largest number the resume store (SQLite INTEGER) can hold.
MAX_STORED_INT = 2**63 - 1
#: Photos taken from one observation at most: real ones have a few, rarely more than 20;
#: a page listing thousands (or one photo thousands of times) is broken or hostile.
MAX_PHOTOS_PER_OBSERVATION = 100
_MAX_DIGITS = len(str(MAX_STORED_INT))


def _int(value: object, *, minimum: int = 0) -> int | None:
    """A whole number from ``minimum`` to :data:`MAX_STORED_INT`, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        # isdigit() alone accepts "²", on which int() raises; length first, as int()
        # refuses strings of more than 4300 digits.
        if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > _MAX_DIGITS:
            return None
        value = int(text)
    if isinstance(value, int) and minimum <= value <= MAX_STORED_INT:
        return value
    return None


def _id(value: object) -> int | None:
    """An iNaturalist id: a whole number from 1 to :data:`MAX_STORED_INT`, else None."""
    return _int(value, minimum=1)


def _show(value: object) -> str:
    """A bad value, short enough for a one-line reason."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: an int beyond float range
        return None
    # "nan" and "inf" parse as floats but are no coordinates.
    return number if math.isfinite(number) else None


def _str(value: object) -> str | None:
    if isinstance(value, str) and value != "":
        return value
    return None


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


#: An observation's identity in a dataset: the API's numeric id, or the Open Data uuid.
ObservationId = int | str


@dataclass(frozen=True, slots=True)
class Taxon:
    id: int
    name: str
    rank: str | None = None
    is_active: bool = True
    matched_term: str | None = None
    common_name: str | None = None
    observations_count: int | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Taxon | None:
        taxon_id, name = _id(data.get("id")), _str(data.get("name"))
        if taxon_id is None or name is None:
            return None
        return cls(
            id=taxon_id,
            name=name,
            rank=_str(data.get("rank")),
            is_active=data.get("is_active") is not False,
            matched_term=_str(data.get("matched_term")),
            common_name=_str(data.get("preferred_common_name")),
            observations_count=_int(data.get("observations_count")),
        )


@dataclass(frozen=True, slots=True)
class Photo:
    id: int
    url: str
    license_code: str | None
    attribution: str | None
    width: int | None
    height: int | None
    position: int

    @classmethod
    def from_api(cls, data: Mapping[str, Any], position: int) -> Photo | None:
        """None for an item that is not a real, downloadable photo (a placeholder or bad)."""
        parsed = _parse_photo(data, position)
        return parsed if isinstance(parsed, Photo) else None

    def url_for(self, size: str) -> str:
        """The URL of this photo in another size: only the file stem of the path changes."""
        return photo_url_for_size(self.url, size)

    @property
    def extension(self) -> str | None:
        return url_extension(self.url)


class _Placeholder:
    """A photo item with no real photo behind it (hidden, flagged or missing)."""


_PLACEHOLDER = _Placeholder()


def _parse_photo(data: Mapping[str, Any], position: int) -> Photo | _Placeholder | str:
    """The photo, a placeholder, or why the item cannot be used (a bad number)."""
    url = _str(data.get("url"))
    if url is None:
        return _PLACEHOLDER
    match = _photo_path(url)
    if match is None:
        return _PLACEHOLDER
    raw_id = data.get("id")
    photo_id = _id(raw_id) if raw_id is not None else _id(match.group(1))
    if photo_id is None:
        return f"photo id {_show(raw_id if raw_id is not None else match.group(1))} is out of range"
    dims = _map(data.get("original_dimensions"))
    license_code = _str(data.get("license_code"))
    return Photo(
        id=photo_id,
        url=url,
        license_code=license_code.lower() if license_code else None,
        attribution=_str(data.get("attribution")),
        width=_int(dims.get("width")),
        height=_int(dims.get("height")),
        position=position,
    )


def url_extension(url: str) -> str | None:
    """The extension a photo URL names, lower-cased without the dot, or None if it has none."""
    match = _photo_path(url)
    ext = (match.group(3) or "") if match else ""
    ext = ext.lstrip(".").lower()
    return ext if ext.isascii() and ext.isalnum() else None


def _photo_path(url: str) -> re.Match[str] | None:
    try:
        path = urlsplit(url).path
    except ValueError:  # e.g. "https://[bad/..." (an unclosed IPv6 bracket)
        return None
    return _PHOTO_PATH.search(path)


def photo_url_for_size(url: str, size: str) -> str:
    """``.../photos/1/square.jpg?123`` -> ``.../photos/1/medium.jpg?123``.

    Raises ValueError for a URL that is not a photo URL (a placeholder).
    """
    parts = urlsplit(url)
    match = _PHOTO_PATH.search(parts.path)
    if match is None:
        raise ValueError(f"not an iNaturalist photo URL: {url}")
    path = parts.path[: match.start(2)] + size + (match.group(3) or "")
    return urlunsplit(parts._replace(path=path))


@dataclass(frozen=True, slots=True)
class Annotation:
    """An annotation: a controlled term and its value, with their labels when the API sent them."""

    term_id: int
    value_id: int
    term: str | None = None
    value: str | None = None

    def __str__(self) -> str:
        """``Life Stage=Adult``; ids stand in for labels the answer did not carry."""
        return f"{self.term or self.term_id}={self.value or self.value_id}"

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Annotation | None:
        term_id = _int(data.get("controlled_attribute_id"))
        value_id = _int(data.get("controlled_value_id"))
        if term_id is None or value_id is None:
            return None
        return cls(
            term_id,
            value_id,
            _str(_map(data.get("controlled_attribute")).get("label")),
            _str(_map(data.get("controlled_value")).get("label")),
        )


@dataclass(frozen=True, slots=True)
class Observation:
    #: The API's numeric id; the Open Data tables have none and name observations by uuid.
    id: ObservationId
    uuid: str | None
    quality_grade: str | None
    license_code: str | None
    observed_on: str | None
    time_observed_at: str | None
    latitude: float | None
    longitude: float | None
    obscured: bool | None
    positional_accuracy: int | None
    place_guess: str | None
    taxon_id: int | None
    taxon_name: str | None
    taxon_rank: str | None
    user_id: int | None
    user_login: str | None
    user_name: str | None
    photos: tuple[Photo, ...]
    #: How many photo items the API listed, placeholders included.
    photo_items: int
    place_ids: tuple[int, ...] = ()
    captive: bool | None = None
    annotations: tuple[Annotation, ...] = ()
    #: Photo items that name no real photo (hidden, flagged or missing).
    placeholders: int = 0
    #: Each other unused photo item as (reason, detail): ``invalid`` (a bad id or a photo
    #: listed twice) or ``too_many`` (past :data:`MAX_PHOTOS_PER_OBSERVATION`).
    rejected: tuple[tuple[str, str], ...] = ()

    @property
    def url(self) -> str:
        return f"https://www.inaturalist.org/observations/{self.id}"

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Observation | None:
        obs_id = _id(data.get("id"))
        if obs_id is None:
            return None
        latitude, longitude = _coordinates(data)
        taxon, user = _map(data.get("taxon")), _map(data.get("user"))
        raw_photos = data.get("photos")
        items = raw_photos if isinstance(raw_photos, list) else []
        photos: list[Photo] = []
        seen: set[int] = set()
        rejected: list[tuple[str, str]] = []
        placeholders = 0
        for position, item in enumerate(items):
            parsed = _parse_photo(item, position) if isinstance(item, Mapping) else _PLACEHOLDER
            if isinstance(parsed, _Placeholder):
                placeholders += 1
            elif isinstance(parsed, str):
                rejected.append(("invalid", parsed))
            elif parsed.id in seen:
                rejected.append(("invalid", f"photo {parsed.id} is listed more than once"))
            elif len(photos) >= MAX_PHOTOS_PER_OBSERVATION:
                detail = f"more than {MAX_PHOTOS_PER_OBSERVATION} photos in one observation"
                rejected.append(("too_many", detail))
            else:
                seen.add(parsed.id)
                photos.append(parsed)
        license_code = _str(data.get("license_code"))
        obscured = data.get("obscured")
        captive = data.get("captive")
        places = data.get("place_ids")
        raw_annotations = data.get("annotations")
        return cls(
            id=obs_id,
            uuid=_str(data.get("uuid")),
            quality_grade=_str(data.get("quality_grade")),
            license_code=license_code.lower() if license_code else None,
            observed_on=_str(data.get("observed_on")),
            time_observed_at=_str(data.get("time_observed_at")),
            latitude=latitude,
            longitude=longitude,
            obscured=obscured if isinstance(obscured, bool) else None,
            positional_accuracy=_int(data.get("positional_accuracy")),
            place_guess=_str(data.get("place_guess")),
            taxon_id=_id(taxon.get("id")),
            taxon_name=_str(taxon.get("name")),
            taxon_rank=_str(taxon.get("rank")),
            user_id=_id(user.get("id")),
            user_login=_str(user.get("login")),
            user_name=_str(user.get("name")),
            photos=tuple(photos),
            photo_items=len(items),
            place_ids=tuple(
                p for item in (places if isinstance(places, list) else []) if (p := _int(item))
            ),
            captive=captive if isinstance(captive, bool) else None,
            annotations=tuple(
                a
                for item in (raw_annotations if isinstance(raw_annotations, list) else [])
                if isinstance(item, Mapping) and (a := Annotation.from_api(item)) is not None
            ),
            placeholders=placeholders,
            rejected=tuple(rejected),
        )


def _coordinates(data: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(lat, lon) from geojson [lon, lat], else from the "lat,lon" location string."""
    coords = _map(data.get("geojson")).get("coordinates")
    if isinstance(coords, list) and len(coords) == 2:
        lon, lat = _float(coords[0]), _float(coords[1])
        if lat is not None and lon is not None:
            return lat, lon
    location = data.get("location")
    if isinstance(location, str) and location.count(",") == 1:
        lat_text, lon_text = location.split(",")
        lat, lon = _float(lat_text), _float(lon_text)
        if lat is not None and lon is not None:
            return lat, lon
    return None, None


def parse_taxa_page(body: object) -> list[Taxon]:
    results = _map(body).get("results")
    if not isinstance(results, list):
        return []
    return [t for item in results if isinstance(item, Mapping) and (t := Taxon.from_api(item))]


@dataclass(frozen=True, slots=True)
class ObservationPage:
    total_results: int | None
    observations: tuple[Observation, ...]
    #: Highest usable id on the page, even of an item we could not use: the next `id_above`.
    last_id: int | None
    #: How many result items the page had (0 ends a walk).
    size: int
    #: Why each result item that is not in ``observations`` was dropped.
    rejected: tuple[str, ...] = ()
    #: The walk's position after each observation, when it is not the observation's id
    #: (the Open Data source walks by each observation's smallest photo id).
    cursors: tuple[int, ...] | None = None

    def cursor_after(self, taken: int) -> int | None:
        """The watermark after the first ``taken`` observations of this page."""
        if taken <= 0:
            return None
        if self.cursors is not None:
            return self.cursors[taken - 1]
        observation_id = self.observations[taken - 1].id
        return observation_id if isinstance(observation_id, int) else None


def is_result_page(body: object) -> bool:
    """True when body has the shape of a search answer: a mapping with a list of results."""
    return isinstance(body, Mapping) and isinstance(body.get("results"), list)


def parse_observation_page(body: object) -> ObservationPage:
    data = _map(body)
    results = data.get("results")
    items = results if isinstance(results, list) else []
    ids: list[int] = []
    observations: list[Observation] = []
    rejected: list[str] = []
    for item in items:
        if not isinstance(item, Mapping):
            rejected.append("a result that is not an object")
            continue
        raw_id = item.get("id")
        obs_id = _id(raw_id)
        if obs_id is None:
            # An id out of range must not move the walk either: a negative one would be
            # stored, a huge one cannot be, and neither can be an `id_above`.
            rejected.append(f"observation id {_show(raw_id)} is missing or out of range")
            continue
        ids.append(obs_id)
        observation = Observation.from_api(item)
        if observation is not None:
            observations.append(observation)
    return ObservationPage(
        total_results=_int(data.get("total_results")),
        observations=tuple(observations),
        last_id=max(ids) if ids else None,
        size=len(items),
        rejected=tuple(rejected),
    )


# What :func:`parse_observation_page` reads of a search answer, and nothing else: decoding
# to these types skips every other field (identifications, ancestries, comments: most of
# a real page's bytes) without building it. Each field is typed as the API sends it, null
# included; anything else fails validation and takes the general path, so the result is
# the same either way. total=False: a key left out stays left out, as with json.loads.
class _LabelJson(TypedDict, total=False):
    label: str | None


class _AnnotationJson(TypedDict, total=False):
    controlled_attribute_id: int | None
    controlled_value_id: int | None
    controlled_attribute: _LabelJson | None
    controlled_value: _LabelJson | None


class _DimensionsJson(TypedDict, total=False):
    width: int | None
    height: int | None


class _PhotoJson(TypedDict, total=False):
    id: int | None
    url: str | None
    license_code: str | None
    attribution: str | None
    original_dimensions: _DimensionsJson | None


class _TaxonJson(TypedDict, total=False):
    id: int | None
    name: str | None
    rank: str | None


class _UserJson(TypedDict, total=False):
    id: int | None
    login: str | None
    name: str | None


class _GeojsonJson(TypedDict, total=False):
    # int | float: an int stays an int, as json.loads gives it; some answers send strings.
    coordinates: list[int | float | str] | None


class _ObservationJson(TypedDict, total=False):
    id: int | None
    uuid: str | None
    quality_grade: str | None
    license_code: str | None
    observed_on: str | None
    time_observed_at: str | None
    place_guess: str | None
    positional_accuracy: int | None
    obscured: bool | None
    captive: bool | None
    # "lat,lon", or [lat, lon] (v2, some v1): a list is not read.
    location: str | list[Any] | None
    geojson: _GeojsonJson | None
    taxon: _TaxonJson | None
    user: _UserJson | None
    photos: list[_PhotoJson | None] | None
    place_ids: list[int] | None
    annotations: list[_AnnotationJson] | None


class _PageJson(TypedDict, total=False):
    total_results: int | None
    # Required and a list of objects: a decoded page always passes is_result_page.
    results: Required[list[_ObservationJson]]


_PAGE_DECODER = msgspec.json.Decoder(_PageJson)


def decode_observation_page(data: bytes) -> ObservationPage | None:
    """The page a search answer's UTF-8 JSON ``data`` holds, or None if the quick way
    cannot tell: then ``parse_observation_page(json.loads(text))`` must decide.

    When it returns a page, it is the page that path gives (tests/test_pagedecode.py
    checks it on arbitrary pages), in a fraction of the time and memory.
    """
    try:
        body = _PAGE_DECODER.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        # Malformed, or a value of a type the schema does not list (a string id, a
        # number where an object belongs, NaN...; ValidationError is a DecodeError);
        # invalid UTF-8 in a field read (msgspec before 0.23 raises UnicodeDecodeError).
        return None
    return parse_observation_page(body)
