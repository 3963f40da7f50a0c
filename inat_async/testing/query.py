"""Search semantics of ``GET /v1/observations`` and ``GET /v1/taxa``, as iNaturalistAPI has them.

Read from the API's source (``observation_query_builder.js``, ``inaturalist_api.js``,
``es_client.js``, ``util.js``):

- ``taxon_id`` matches the taxon and its descendants; one unknown id is a 422.
- ``taxon_name`` matches active taxa by name (scientific, common or synonym) and then only
  observations of exactly those taxa: no descendants. (The real match is an analysed
  "and" match; here it is an exact, case-insensitive one.)
- ``quality_grade``, ``license`` and ``photo_license`` take comma lists; ``any`` means no
  filter. Licenses are lowercased first; quality grades are not. ``photo_license`` keeps
  an observation when at least one of its photos carries one of the licenses.
- ``photos=true`` keeps observations with at least one photo item (a placeholder counts).
- ``per_page`` defaults to 30; 0 gives only ``total_results``; a value above 200 (or
  below 1, or not a number) falls back to 30 rather than being cut to 200.
- ``page * per_page > 10000`` is an HTTP 403 "Result window is too large".
- ``order`` is ``desc`` unless it is exactly ``asc``; ``order_by`` defaults to created_at.
- ``place_id`` (comma list) keeps observations with one of the places in ``place_ids``.
- ``d1``/``d2`` compare the observed date (a missing date never matches); ``month`` and
  ``year`` take comma lists; ``captive`` is ``true`` or ``false``; ``user_id`` takes ids or
  logins.
- ``term_id`` (+ ``term_value_id``) keeps observations with an annotation of that term (and
  one of those values): ONE annotation must match both, as in the API's nested query.
  ``without_term_id`` (+ ``without_term_value_id``) drops those that have such an annotation.
- ``swlat,swlng,nelat,nelng`` (all four) keep observations with coordinates in the box.
- ``/observations/species_counts`` counts the matching observations per *leaf* taxon, the
  taxon each observation is identified as: a subspecies comes back instead of, or beside,
  its species. Ordered by count, then id; ``per_page`` up to 500 (default 500), ``page``.
- Unknown parameters are ignored.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .catalog import FakePlace
from .data import FakeDataset, FakeObservation, FakeTaxon

MAX_PER_PAGE = 200
MAX_SPECIES_COUNTS = 500
DEFAULT_PER_PAGE = 30
RESULT_WINDOW = 10_000
WINDOW_MESSAGE = "Result window is too large, page * per_page must be less than or equal to 10000"


class ApiFailure(Exception):
    """An error the API answers with ``{"error": message, "status": status}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _list(value: str | None) -> list[str]:
    """util.paramArray: split on commas, drop empty items."""
    return [item for item in (value or "").split(",") if item]


def _filter_values(value: str | None, *, lower: bool = False) -> frozenset[str] | None:
    """None means "no filter": absent, empty or ``any``."""
    if not value or value == "any":
        return None
    items = _list(value.lower() if lower else value)
    return frozenset(items) if items else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def per_page(value: str | None, *, default: int = DEFAULT_PER_PAGE, maximum: int) -> int:
    """InaturalistAPI.perPage: 0 stays 0; junk, < 1 or > maximum fall back to the default."""
    if value is None:
        return default
    if value.strip() == "":
        return 0  # JavaScript's Number("") is 0
    try:
        number = float(value)
    except ValueError:
        return default
    if number == 0:
        return 0
    if number != number or number < 1 or number > maximum:  # NaN, too small, too big
        return default
    return int(number)


def page_number(value: str | None) -> int:
    number = _int(value)
    return number if number is not None and number >= 1 else 1


@dataclass(frozen=True, slots=True)
class ObservationFilter:
    """The part of a search that decides which observations match (not paging)."""

    taxon_ids: frozenset[int] | None = None
    exact_taxon_ids: frozenset[int] | None = None
    ids: frozenset[int] | None = None
    quality: frozenset[str] | None = None
    licenses: frozenset[str] | None = None
    photo_licenses: frozenset[str] | None = None
    photos: bool | None = None
    place_ids: frozenset[int] | None = None
    d1: str | None = None
    d2: str | None = None
    months: frozenset[int] | None = None
    years: frozenset[int] | None = None
    captive: bool | None = None
    users: frozenset[str] | None = None
    term: frozenset[int] | None = None
    term_values: frozenset[int] | None = None
    without_term: frozenset[int] | None = None
    without_term_values: frozenset[int] | None = None
    bbox: tuple[float, float, float, float] | None = None

    def accepts(self, obs: FakeObservation) -> bool:
        return self._accepts_basic(obs) and self._accepts_selection(obs)

    def _accepts_selection(self, obs: FakeObservation) -> bool:
        if self.place_ids is not None and self.place_ids.isdisjoint(obs.place_ids):
            return False
        date = obs.observed_on
        if self.d1 is not None and (date is None or date < self.d1):
            return False
        if self.d2 is not None and (date is None or date > self.d2):
            return False
        if self.months is not None and (date is None or int(date[5:7]) not in self.months):
            return False
        if self.years is not None and (date is None or int(date[:4]) not in self.years):
            return False
        if self.captive is not None and obs.captive != self.captive:
            return False
        if self.users is not None and not (
            str(obs.user.id) in self.users or obs.user.login in self.users
        ):
            return False
        if self.term is not None and not _annotated(obs, self.term, self.term_values):
            return False
        if self.without_term is not None and _annotated(
            obs, self.without_term, self.without_term_values
        ):
            return False
        if self.bbox is not None:
            if obs.latitude is None or obs.longitude is None:
                return False
            swlat, swlng, nelat, nelng = self.bbox
            if not swlat <= obs.latitude <= nelat:
                return False
            # A box across the antimeridian has its west edge east of its east edge.
            inside = (
                swlng <= obs.longitude <= nelng
                if swlng <= nelng
                else (obs.longitude >= swlng or obs.longitude <= nelng)
            )
            if not inside:
                return False
        return True

    def _accepts_basic(self, obs: FakeObservation) -> bool:
        if self.taxon_ids is not None and obs.taxon_id not in self.taxon_ids:
            return False
        if self.exact_taxon_ids is not None and obs.taxon_id not in self.exact_taxon_ids:
            return False
        if self.ids is not None and obs.id not in self.ids:
            return False
        if self.quality is not None and obs.quality_grade not in self.quality:
            return False
        if self.licenses is not None and obs.license_code not in self.licenses:
            return False
        if self.photo_licenses is not None and self.photo_licenses.isdisjoint(obs.photo_licenses):
            return False
        return self.photos is None or (len(obs.photos) > 0) == self.photos


@dataclass(frozen=True, slots=True)
class ObservationSearch:
    filter: ObservationFilter
    id_above: int | None = None
    id_below: int | None = None
    order_by: str = "created_at"
    descending: bool = True
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    only_id: bool = False


def parse_observation_search(params: Mapping[str, str], dataset: FakeDataset) -> ObservationSearch:
    """Read the query string of ``/v1/observations``; raise ApiFailure as the API would."""
    taxon_ids: frozenset[int] | None = None
    raw_taxa = _list(params.get("taxon_id") or params.get("taxon_ids"))
    if raw_taxa:
        # The lookup middleware rejects one unknown id; it does not check lists.
        if len(raw_taxa) == 1 and raw_taxa[0] != "any":
            taxon_id = _int(raw_taxa[0])
            if taxon_id is None or dataset.taxon(taxon_id) is None:
                raise ApiFailure(422, f"Unknown taxon_id {raw_taxa[0]}")
        # Anything that is not an id (even "any") then matches no taxon at all.
        wanted = [t for t in map(_int, raw_taxa) if t is not None]
        taxon_ids = frozenset(d for t in wanted for d in dataset.descendants(t))
    exact: frozenset[int] | None = None
    if params.get("taxon_name"):
        exact = frozenset(t.id for t in taxa_named(dataset, params["taxon_name"]))
    ids = None
    if params.get("id"):
        ids = frozenset(i for i in map(_int, _list(params["id"])) if i is not None)
    photos = {"true": True, "false": False}.get(params.get("photos", ""))
    return ObservationSearch(
        filter=_with_selection(
            ObservationFilter(
                taxon_ids=taxon_ids,
                exact_taxon_ids=exact,
                ids=ids,
                quality=_filter_values(params.get("quality_grade")),
                licenses=_filter_values(params.get("license"), lower=True),
                photo_licenses=_filter_values(params.get("photo_license"), lower=True),
                photos=photos,
            ),
            params,
        ),
        id_above=_int(params.get("id_above")),
        id_below=_int(params.get("id_below")),
        order_by=params.get("order_by") or "created_at",
        descending=params.get("order") != "asc",
        page=page_number(params.get("page")),
        per_page=per_page(params.get("per_page"), maximum=MAX_PER_PAGE),
        only_id=params.get("only_id", "false") not in ("", "false"),
    )


def _ints(value: str | None) -> frozenset[int] | None:
    items = _list(value)
    if not items or items == ["any"]:
        return None
    return frozenset(i for i in map(_int, items) if i is not None)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _date(value: str | None, name: str) -> str | None:
    if not value:
        return None
    text = value.strip()[:10]
    if len(text) != 10 or text[4] != "-" or text[7] != "-" or not text.replace("-", "").isdigit():
        raise ApiFailure(422, f"Failed to parse {name}")
    return text


def _with_selection(base: ObservationFilter, params: Mapping[str, str]) -> ObservationFilter:
    """``base`` plus the place, date, captive, user, annotation and box filters of a search."""
    term = without = None
    if params.get("term_id"):
        term = _ints(params["term_id"]) or frozenset()
    if params.get("without_term_id"):
        without = _ints(params["without_term_id"]) or frozenset()
    corners = [
        c
        for key in ("swlat", "swlng", "nelat", "nelng")
        if (c := _float(params.get(key))) is not None
    ]
    bbox = (corners[0], corners[1], corners[2], corners[3]) if len(corners) == 4 else None
    return replace(
        base,
        place_ids=_ints(params.get("place_id")),
        d1=_date(params.get("d1"), "d1"),
        d2=_date(params.get("d2"), "d2"),
        months=_ints(params.get("month")),
        years=_ints(params.get("year")),
        captive={"true": True, "false": False}.get(params.get("captive", "")),
        users=frozenset(_list(params.get("user_id"))) or None,
        term=term,
        term_values=_ints(params.get("term_value_id")) if term is not None else None,
        without_term=without,
        without_term_values=(
            _ints(params.get("without_term_value_id")) if without is not None else None
        ),
        bbox=bbox,
    )


def _annotated(obs: FakeObservation, terms: frozenset[int], values: frozenset[int] | None) -> bool:
    return any(
        term in terms and (values is None or value in values) for term, value in obs.annotations
    )


def species_counts(
    index: ObservationIndex, params: Mapping[str, str]
) -> tuple[int, int, int, list[tuple[FakeTaxon, int]]]:
    """``GET /v1/observations/species_counts``: ``(total, page, per_page, (taxon, count))``."""
    search = parse_observation_search(params, index.dataset)
    found = index.matching(search.filter)
    counts: dict[int, int] = {}
    for obs in found:
        counts[obs.taxon_id] = counts.get(obs.taxon_id, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    size = per_page(params.get("per_page"), default=MAX_SPECIES_COUNTS, maximum=MAX_SPECIES_COUNTS)
    page = page_number(params.get("page"))
    chosen = ranked[(page - 1) * size : page * size]
    taxa = index.dataset.taxa
    return len(ranked), page, size, [(taxa[taxon_id], count) for taxon_id, count in chosen]


def search_places(
    places: tuple[FakePlace, ...], params: Mapping[str, str]
) -> tuple[int, int, list[FakePlace]]:
    """``GET /v1/places/autocomplete?q=``: ``(total, per_page, places)``; every word of ``q``
    starts a word of the name; exact names first, then the larger places."""
    query = (params.get("q") or "").strip().lower()
    if not query:
        return 0, 0, []
    hits = [place for place in places if _words_match(query, place.name)]
    hits.sort(key=lambda p: (p.name.lower() != query, p.place_type == 7, p.id))
    size = per_page(params.get("per_page"), default=10, maximum=20)
    return len(hits), size, hits[:size]


def taxa_named(dataset: FakeDataset, name: str) -> list[FakeTaxon]:
    """Active taxa that have ``name`` (any case) among their names."""
    wanted = name.strip().lower()
    return [
        taxon
        for taxon in dataset.taxa.values()
        if taxon.is_active and any(n.lower() == wanted for n in taxon.names)
    ]


class ObservationIndex:
    """Answers searches fast: the filtered, id-sorted list is cached per filter and version."""

    def __init__(self, dataset: FakeDataset) -> None:
        self.dataset = dataset
        self._lock = threading.Lock()
        self._version = -1
        self._cache: dict[ObservationFilter, tuple[list[int], list[FakeObservation]]] = {}

    def _matching(self, where: ObservationFilter) -> tuple[list[int], list[FakeObservation]]:
        with self._lock:
            if self._version != self.dataset.version or len(self._cache) > 512:
                self._cache.clear()
                self._version = self.dataset.version
            hit = self._cache.get(where)
            if hit is None:
                found = [o for o in self.dataset.observations if where.accepts(o)]
                hit = ([o.id for o in found], found)
                self._cache[where] = hit
            return hit

    def matching(self, where: ObservationFilter) -> list[FakeObservation]:
        """Every observation ``where`` accepts, ascending by id (do not change the list)."""
        return self._matching(where)[1]

    def search(self, search: ObservationSearch) -> tuple[int, list[FakeObservation]]:
        """``(total_results, results of the requested page)``."""
        if search.page * search.per_page > RESULT_WINDOW:
            raise ApiFailure(403, WINDOW_MESSAGE)
        ids, found = self._matching(search.filter)
        start = 0 if search.id_above is None else bisect.bisect_right(ids, search.id_above)
        stop = len(ids) if search.id_below is None else bisect.bisect_left(ids, search.id_below)
        window = found[start : max(start, stop)]
        if search.order_by == "observed_on":
            window = sorted(window, key=lambda o: (o.observed_on or "", o.time_observed_at or ""))
            if search.descending:
                window.reverse()
        elif search.descending:
            # created_at grows with id here, so id order serves id, created_at and the rest.
            window = window[::-1]
        offset = (search.page - 1) * search.per_page
        return len(window), window[offset : offset + search.per_page]


@dataclass(frozen=True, slots=True)
class TaxonHit:
    taxon: FakeTaxon
    matched_term: str | None


def search_taxa(
    dataset: FakeDataset, params: Mapping[str, str]
) -> tuple[int, int, int, list[TaxonHit]]:
    """``GET /v1/taxa``: ``(total, page, per_page, hits)``.

    ``q`` matches when every word of it starts some word of a name (the autocomplete
    analyser); exact name matches come first, then the most observed. Only active taxa
    unless ``is_active=false`` or ``any``.
    """
    active = params.get("is_active", "true")
    ranks = _filter_values(params.get("rank"))
    query = (params.get("q") or "").strip().lower()
    hits: list[tuple[bool, TaxonHit]] = []
    for taxon in dataset.taxa.values():
        if active != "any" and taxon.is_active != (active != "false"):
            continue
        if ranks is not None and taxon.rank not in ranks:
            continue
        if not query:
            hits.append((False, TaxonHit(taxon, None)))
            continue
        exact = next((n for n in taxon.names if n.lower() == query), None)
        term = exact or next((n for n in taxon.names if _words_match(query, n)), None)
        if term is not None:
            hits.append((exact is not None, TaxonHit(taxon, term)))
    hits.sort(key=lambda h: (not h[0], -dataset.observations_count(h[1].taxon.id), h[1].taxon.id))
    size = per_page(params.get("per_page"), maximum=500)
    page = page_number(params.get("page"))
    if page * size > RESULT_WINDOW:
        raise ApiFailure(403, WINDOW_MESSAGE)
    chosen = [hit for _, hit in hits][(page - 1) * size : page * size]
    return len(hits), page, size, chosen


def _words_match(query: str, name: str) -> bool:
    words = name.lower().split()
    return all(any(word.startswith(part) for word in words) for part in query.split())
