"""Choosing what to download: observation filters, places and annotations by name, search URLs.

Two steps, so that a typo fails before anything is sent or created:

1. :meth:`FilterRequest.parse` checks what a user typed, offline: dates, months, years,
   the bounding box, ``KEY=VALUE`` parameters (refusing the ones the tool owns).
2. :meth:`FilterRequest.resolve` looks names up with the API (``/places/autocomplete``,
   ``/places/<id>``, ``/controlled_terms``) and returns :class:`Filters`, plain search
   parameters that are part of a dataset's identity and are sent on every walk request.

>>> request = FilterRequest.parse(place=["California"], annotation=["Life Stage=Adult"])
>>> filters = await request.resolve(client)  # doctest: +SKIP
>>> filters.params()  # doctest: +SKIP
{'place_id': '14', 'term_id': '1', 'term_value_id': '2'}

:func:`parse_search_url` reads an iNaturalist website or API observations URL into the
same request, plus the taxa it names (which then make the species list).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from .errors import UsageError
from .models import is_result_page

if TYPE_CHECKING:
    from .api import InatClient

#: Search parameters the tool sets itself: a walk depends on them.
OWNED_PARAMS: dict[str, str] = {
    "taxon_id": "name the taxa in the species list (or use --from-url)",
    "taxon_ids": "name the taxa in the species list (or use --from-url)",
    "taxon_name": "name the taxa in the species list (or use --from-url)",
    "id_above": "the walk sets it (use start_id in the species list)",
    "id_below": "the walk sets it",
    "order_by": "the walk goes by ascending id",
    "order": "the walk goes by ascending id",
    "per_page": "the walk asks for full pages",
    "page": "the walk never pages by page number",
    "only_id": "the walk needs whole observations",
    "photos": "only observations with photos are fetched",
    "quality_grade": "use -q/--quality",
    "license": "use -l/--license",
    "photo_license": "use -l/--license",
}
# Website-only URL keys (how the page shows results): not part of the search.
_VIEW_KEYS = frozenset(
    {"subview", "view", "locale", "preferred_place_id", "ttl", "utf8", "x", "y", "zoom"}
)
# Parameters with a typed meaning here, whichever way they arrive (flag, --param, URL).
_TYPED_KEYS = frozenset(
    {
        "place_id",
        "d1",
        "d2",
        "month",
        "year",
        "captive",
        "user_id",
        "user_login",
        "term_id",
        "term_value_id",
        "without_term_id",
        "without_term_value_id",
        "swlat",
        "swlng",
        "nelat",
        "nelng",
    }
)
_T = TypeVar("_T")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_KEY = re.compile(r"^[a-z][a-z0-9_\[\]]*$")


# -- resolved filters ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnnotationFilter:
    """One annotation term and any of its values (none: any value of the term)."""

    term_id: int
    value_ids: tuple[int, ...] = ()
    #: "Life Stage=Adult" as the user or the API named it (display only).
    label: str = ""


@dataclass(frozen=True, slots=True)
class Filters:
    """Observation search filters, resolved to what the API takes. Empty by default.

    Part of a dataset's identity (see :meth:`describe`) and sent on every walk and
    dry-run request (see :meth:`params`).
    """

    place_ids: tuple[int, ...] = ()
    d1: str | None = None
    d2: str | None = None
    months: tuple[int, ...] = ()
    years: tuple[int, ...] = ()
    captive: bool | None = None
    annotation: AnnotationFilter | None = None
    without_annotation: AnnotationFilter | None = None
    users: tuple[str, ...] = ()
    bbox: tuple[float, float, float, float] | None = None
    #: Other search parameters, passed through as given: sorted (key, value) pairs.
    extra: tuple[tuple[str, str], ...] = ()
    #: Place names for display, by id (not part of the identity).
    place_names: tuple[tuple[int, str], ...] = field(default=(), compare=False)

    def params(self) -> dict[str, str]:
        """The search parameters, e.g. ``{"place_id": "14", "month": "4,5,6"}``."""
        params: dict[str, str] = dict(self.extra)
        if self.place_ids:
            params["place_id"] = _join(self.place_ids)
        if self.d1:
            params["d1"] = self.d1
        if self.d2:
            params["d2"] = self.d2
        if self.months:
            params["month"] = _join(self.months)
        if self.years:
            params["year"] = _join(self.years)
        if self.captive is not None:
            params["captive"] = "true" if self.captive else "false"
        if self.users:
            params["user_id"] = ",".join(self.users)
        if self.annotation is not None:
            params["term_id"] = str(self.annotation.term_id)
            if self.annotation.value_ids:
                params["term_value_id"] = _join(self.annotation.value_ids)
        if self.without_annotation is not None:
            params["without_term_id"] = str(self.without_annotation.term_id)
            if self.without_annotation.value_ids:
                params["without_term_value_id"] = _join(self.without_annotation.value_ids)
        if self.bbox is not None:
            for key, value in zip(("swlat", "swlng", "nelat", "nelng"), self.bbox, strict=True):
                params[key] = _number(value)
        return params

    def describe(self) -> dict[str, str]:
        """The filters as a dataset stores them: only the ones set, by API parameter."""
        return dict(sorted(self.params().items()))

    def summary(self) -> list[str]:
        """Short human lines, e.g. ``place California, US (14)``, ``wild``."""
        names = dict(self.place_names)
        lines: list[str] = []
        if self.place_ids:
            shown = [f"{names[p]} ({p})" if p in names else str(p) for p in self.place_ids]
            lines.append(f"place {', '.join(shown)}")
        if self.d1 or self.d2:
            lines.append(f"observed {self.d1 or '…'} to {self.d2 or '…'}")
        if self.months:
            lines.append(f"month {_join(self.months)}")
        if self.years:
            lines.append(f"year {_join(self.years)}")
        if self.captive is not None:
            lines.append("captive" if self.captive else "wild")
        if self.annotation is not None:
            lines.append(f"annotation {self.annotation.label or self.annotation.term_id}")
        if self.without_annotation is not None:
            lines.append(
                "without annotation "
                f"{self.without_annotation.label or self.without_annotation.term_id}"
            )
        if self.users:
            lines.append(f"user {', '.join(self.users)}")
        if self.bbox is not None:
            lines.append(f"box {','.join(_number(v) for v in self.bbox)}")
        lines.extend(f"{key}={value}" for key, value in self.extra)
        return lines

    @property
    def empty(self) -> bool:
        return not self.params()


def _join(values: Iterable[int]) -> str:
    return ",".join(str(v) for v in values)


def _number(value: float) -> str:
    """``10.0`` -> ``10``, ``-33.5`` -> ``-33.5``: stable text for identity and URLs."""
    return f"{value:.10g}" if value != int(value) else str(int(value))


# -- sampling ---------------------------------------------------------------------------

SAMPLES: tuple[str, ...] = ("oldest", "spread")


@dataclass(frozen=True, slots=True)
class Sampling:
    """Which observations and photos of a species a dataset takes (part of its identity).

    - ``sample="oldest"``: the first N observations by id (the default);
      ``"spread"``: N observations spread over the species' whole id range, the same
      ones for the same ``seed``; a larger N extends the selection, never changes it.
    - ``per_observer``: at most this many observations of one observer per species.
    - ``photos_per_observation``: at most the first M photos (by position) of each.
    """

    sample: str = "oldest"
    seed: int = 0
    per_observer: int | None = None
    photos_per_observation: int | None = None

    def __post_init__(self) -> None:
        if self.sample not in SAMPLES:
            raise UsageError(
                f"unknown sample {self.sample!r}; use one of {', '.join(SAMPLES)}",
                options=("sample",),
            )
        for name in ("per_observer", "photos_per_observation"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise UsageError(
                    f"{name} must be a whole number of at least 1, got {value!r}", options=(name,)
                )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UsageError(
                f"seed must be a whole number (0 or more), got {self.seed!r}", options=("seed",)
            )

    @property
    def spread(self) -> bool:
        return self.sample == "spread"

    def describe(self) -> dict[str, str]:
        """Only what differs from the default, so older datasets keep their identity."""
        found: dict[str, str] = {}
        if self.spread:
            found["sample"] = self.sample
            found["seed"] = str(self.seed)
        if self.per_observer is not None:
            found["per_observer"] = str(self.per_observer)
        if self.photos_per_observation is not None:
            found["photos_per_observation"] = str(self.photos_per_observation)
        return found


# -- what the user typed ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FilterRequest:
    """Filters as typed, checked offline; names are looked up by :meth:`resolve`."""

    places: tuple[str, ...] = ()
    d1: str | None = None
    d2: str | None = None
    months: tuple[int, ...] = ()
    years: tuple[int, ...] = ()
    captive: bool | None = None
    #: ("Life Stage", "Adult") or ("1", "2"); a value of None means any value of the term.
    annotations: tuple[tuple[str, str | None], ...] = ()
    without_annotations: tuple[tuple[str, str | None], ...] = ()
    users: tuple[str, ...] = ()
    bbox: tuple[float, float, float, float] | None = None
    extra: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(
        cls,
        *,
        place: Sequence[str] = (),
        d1: str | None = None,
        d2: str | None = None,
        month: str | Sequence[int] | None = None,
        year: str | Sequence[int] | None = None,
        captive: bool | None = None,
        annotation: Sequence[str] = (),
        without_annotation: Sequence[str] = (),
        user: str | Sequence[str] | None = None,
        bbox: str | Sequence[float] | None = None,
        param: Sequence[str] = (),
    ) -> FilterRequest:
        """Check every filter; raise :class:`UsageError` naming the first bad one."""
        pairs = [_param_pair(text) for text in param]
        request = cls(
            places=tuple(_places(place)),
            d1=parse_date(d1, "d1") if d1 else None,
            d2=parse_date(d2, "d2") if d2 else None,
            months=parse_months(month) if month else (),
            years=parse_years(year) if year else (),
            captive=captive,
            annotations=tuple(parse_annotation(text) for text in annotation),
            without_annotations=tuple(parse_annotation(text) for text in without_annotation),
            users=_users(user),
            bbox=parse_bbox(bbox) if bbox else None,
        )
        return request.merged(pairs, source="param")

    def merged(self, pairs: Iterable[tuple[str, str]], *, source: str) -> FilterRequest:
        """This request plus search parameters (from ``param`` or a URL's query)."""
        values: dict[str, str] = {}
        extra = dict(self.extra)
        for key, value in pairs:
            if key in OWNED_PARAMS:
                raise UsageError(
                    f"{source} {key}={value}: the tool sets {key}; {OWNED_PARAMS[key]}",
                    options=(source,),
                )
            target = values if key in _TYPED_KEYS else extra
            if key in target and target[key] != value:
                raise UsageError(
                    f"{source} gives {key} twice ({target[key]!r} and {value!r})", options=(source,)
                )
            target[key] = value
        merged = _typed(self, values, source)
        return _replace(merged, extra=tuple(sorted(extra.items())))

    def combine(self, other: FilterRequest, *, source: str) -> FilterRequest:
        """Both requests' filters; a filter both set is refused (``source`` names ``other``)."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if theirs in (None, ()):
                continue
            if mine not in (None, ()) and f.name != "extra":
                raise UsageError(
                    f"{source} and the options both set {f.name.rstrip('s')}", options=(source,)
                )
            changes[f.name] = theirs
        if self.extra and other.extra:
            clash = sorted(set(dict(self.extra)) & set(dict(other.extra)))
            if clash:
                raise UsageError(f"{source} and param both set {clash[0]}", options=(source,))
            changes["extra"] = tuple(sorted((*self.extra, *other.extra)))
        return _replace(self, **changes)

    @property
    def needs_api(self) -> bool:
        """True when resolving sends requests (place names or ids, annotations)."""
        return bool(self.places or self.annotations or self.without_annotations)

    async def resolve(self, client: InatClient) -> Filters:
        """Look up places and annotation names; :class:`UsageError` when one is unknown."""
        places: list[tuple[int, str]] = []
        for text in self.places:
            place = await resolve_place(client, text)
            if place not in places:
                places.append(place)
        terms: list[Term] | None = None
        if self.annotations or self.without_annotations:
            terms = await controlled_terms(client)
        return Filters(
            place_ids=tuple(sorted(p for p, _ in places)),
            d1=self.d1,
            d2=self.d2,
            months=self.months,
            years=self.years,
            captive=self.captive,
            annotation=_annotation_filter(self.annotations, terms, "annotation"),
            without_annotation=_annotation_filter(
                self.without_annotations, terms, "without_annotation"
            ),
            users=self.users,
            bbox=self.bbox,
            extra=self.extra,
            place_names=tuple(sorted(places)),
        )


def _replace(request: FilterRequest, **changes: Any) -> FilterRequest:
    values = {f.name: getattr(request, f.name) for f in fields(request)}
    values.update(changes)
    return FilterRequest(**values)


def _typed(request: FilterRequest, values: Mapping[str, str], source: str) -> FilterRequest:
    """Fold typed search parameters (``place_id=14``) into a request, refusing clashes."""
    if not values:
        return request
    changes: dict[str, Any] = {}

    def take(name: str, value: Any, key: str) -> None:
        if getattr(request, name) not in (None, ()):
            raise UsageError(
                f"{source} {key} is given twice (also by its own option)", options=(source,)
            )
        changes[name] = value

    if "place_id" in values:
        take("places", tuple(_places([values["place_id"]])), "place_id")
    for key in ("d1", "d2"):
        if key in values:
            take(key, parse_date(values[key], f"{source} {key}"), key)
    if "month" in values:
        take("months", parse_months(values["month"]), "month")
    if "year" in values:
        take("years", parse_years(values["year"]), "year")
    if "captive" in values:
        take("captive", _boolean(values["captive"], f"{source} captive"), "captive")
    users = values.get("user_id") or values.get("user_login")
    if users:
        take("users", _users(users), "user_id")
    for key, name in (("term_id", "annotations"), ("without_term_id", "without_annotations")):
        term = values.get(key)
        value_key = key.replace("term_id", "term_value_id")
        if term is None:
            if value_key in values:
                raise UsageError(f"{source} {value_key} needs {key}", options=(source,))
            continue
        value_ids = [v for v in values.get(value_key, "").split(",") if v.strip()]
        pairs: list[tuple[str, str | None]] = [(term, v.strip()) for v in value_ids] or [
            (term, None)
        ]
        take(name, tuple(pairs), key)
    corners = [values.get(k) for k in ("swlat", "swlng", "nelat", "nelng")]
    if any(c is not None for c in corners):
        if not all(c is not None for c in corners):
            raise UsageError(
                f"{source}: a box needs all of swlat, swlng, nelat and nelng", options=(source,)
            )
        take("bbox", parse_bbox(",".join(c for c in corners if c is not None)), "swlat")
    return _replace(request, **changes)


# -- offline parsers ------------------------------------------------------------------------


def parse_date(text: str, what: str = "date") -> str:
    """``2020-05-01`` as is; anything else, or a day that does not exist, is refused."""
    value = text.strip()
    if not _DATE.match(value):
        raise UsageError(
            f"{what} must be a date written YYYY-MM-DD, got {text!r}", options=(what.split()[0],)
        )
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{what} {text!r} is not a real day", options=(what.split()[0],)) from None
    return value


def _numbers(value: str | Sequence[int], what: str) -> list[int]:
    if not isinstance(value, str):
        return [int(v) for v in value]
    found: list[int] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        # A range "2015-2020" or "4-6" reads as every value in it.
        low, sep, high = item.partition("-")
        try:
            if sep:
                start, stop = int(low), int(high)
                if stop < start or stop - start > 1000:
                    raise ValueError
                found.extend(range(start, stop + 1))
            else:
                found.append(int(item))
        except ValueError:
            raise UsageError(
                f"{what} must be whole numbers or ranges like 4-6, got {item!r}",
                options=(what.split()[0],),
            ) from None
    if not found:
        raise UsageError(f"no {what} given")
    return found


def parse_months(value: str | Sequence[int]) -> tuple[int, ...]:
    """``"4,5,6"`` or ``"4-6"`` -> ``(4, 5, 6)``; months are 1 to 12."""
    months = _numbers(value, "months")
    bad = [m for m in months if not 1 <= m <= 12]
    if bad:
        raise UsageError(f"months are 1 to 12, got {bad[0]}")
    return tuple(sorted(set(months)))


def parse_years(value: str | Sequence[int]) -> tuple[int, ...]:
    """``"2020,2021"`` or ``"2015-2020"``: four-digit years."""
    years = _numbers(value, "years")
    this_year = dt.date.today().year
    bad = [y for y in years if not 1000 <= y <= this_year + 1]
    if bad:
        raise UsageError(f"years must be within 1000..{this_year + 1}, got {bad[0]}")
    return tuple(sorted(set(years)))


def parse_bbox(value: str | Sequence[float]) -> tuple[float, float, float, float]:
    """``"SWLAT,SWLNG,NELAT,NELNG"``: south-west then north-east corner, in degrees.

    A box whose west edge lies east of its east edge crosses the antimeridian.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    if len(items) != 4:
        raise UsageError(
            f"bbox takes four numbers SWLAT,SWLNG,NELAT,NELNG, got {len(items)} in {value!r}",
            options=("bbox",),
        )
    try:
        swlat, swlng, nelat, nelng = (float(v) for v in items)
    except ValueError:
        raise UsageError(f"bbox takes numbers, got {value!r}", options=("bbox",)) from None
    if not all(math.isfinite(v) for v in (swlat, swlng, nelat, nelng)):
        raise UsageError(f"bbox takes finite numbers, got {value!r}", options=("bbox",))
    if not (-90 <= swlat <= 90 and -90 <= nelat <= 90):
        raise UsageError(
            f"bbox latitudes must be within -90..90, got {swlat} and {nelat}", options=("bbox",)
        )
    if not (-180 <= swlng <= 180 and -180 <= nelng <= 180):
        raise UsageError(
            f"bbox longitudes must be within -180..180, got {swlng} and {nelng}", options=("bbox",)
        )
    if swlat > nelat:
        raise UsageError(
            f"bbox south-west latitude {swlat} is north of the north-east one {nelat}; "
            "the order is SWLAT,SWLNG,NELAT,NELNG",
            options=("bbox",),
        )
    return swlat, swlng, nelat, nelng


def parse_annotation(text: str) -> tuple[str, str | None]:
    """``"Life Stage=Adult"`` -> ``("Life Stage", "Adult")``; ``"Sex"`` -> ``("Sex", None)``."""
    term, sep, value = text.partition("=")
    term, value = " ".join(term.split()), " ".join(value.split())
    if not term or (sep and not value):
        raise UsageError(
            f"an annotation is written TERM=VALUE, e.g. 'Life Stage=Adult'; got {text!r}"
        )
    return term, value if sep else None


def _param_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"param is written KEY=VALUE, got {text!r}", options=("param",))
    if not _KEY.match(key):
        raise UsageError(
            f"param {text!r}: {key!r} is not a search parameter name", options=("param",)
        )
    return key, value.strip()


def _places(values: Iterable[str]) -> list[str]:
    found: list[str] = []
    for value in values:
        # A comma list of ids is several places; a name may not contain a comma-free id.
        parts = [p.strip() for p in value.split(",")] if _is_id_list(value) else [value.strip()]
        for part in parts:
            if not part:
                raise UsageError("place needs a place name or id", options=("place",))
            if part not in found:
                found.append(part)
    return found


def _is_id_list(value: str) -> bool:
    return all(p.strip().isdigit() for p in value.split(",") if p.strip())


def _users(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    users = tuple(dict.fromkeys(item.strip() for item in items if item.strip()))
    for user in users:
        if any(ch.isspace() or ch in "&=?#/" for ch in user):
            raise UsageError(f"user takes a login or a user id, got {user!r}", options=("user",))
    return users


def _boolean(value: str, what: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise UsageError(f"{what} must be true or false, got {value!r}", options=(what.split()[0],))


# -- lookups ------------------------------------------------------------------------


async def resolve_place(client: InatClient, text: str) -> tuple[int, str]:
    """``(place id, display name)`` for an id or a name.

    A name must match one place exactly (ignoring case); otherwise the error lists the
    candidates so the user can pick one, by its id.
    """
    if text.isdigit():
        body = await client.get_json(f"places/{int(text)}", {}, valid=is_result_page)
        for item in body["results"]:
            if isinstance(item, Mapping) and item.get("id") == int(text):
                return int(text), _place_name(item)
        raise UsageError(f"no iNaturalist place has id {text}")
    body = await client.get_json(
        "places/autocomplete", {"q": text, "per_page": 20}, valid=is_result_page
    )
    found = [
        (item["id"], item)
        for item in body["results"]
        if isinstance(item, Mapping) and isinstance(item.get("id"), int)
    ]
    wanted = text.casefold()
    exact = [
        (pid, item)
        for pid, item in found
        if str(item.get("name", "")).casefold() == wanted
        or str(item.get("display_name", "")).casefold() == wanted
    ]
    if len(exact) == 1:
        return exact[0][0], _place_name(exact[0][1])
    candidates = exact or found
    if not candidates:
        raise UsageError(f"no iNaturalist place is named {text!r}")
    listed = "; ".join(f"{_place_name(item)} (id {pid})" for pid, item in candidates[:8])
    what = "several places are" if exact else "no place is exactly"
    raise UsageError(f"{what} named {text!r}: {listed}", options=(what.split()[0],))


def _place_name(item: Mapping[str, Any]) -> str:
    return str(item.get("display_name") or item.get("name") or item.get("id"))


@dataclass(frozen=True, slots=True)
class Term:
    """An annotation term of ``/controlled_terms`` and its values."""

    id: int
    label: str
    values: tuple[tuple[int, str], ...]


async def controlled_terms(client: InatClient) -> list[Term]:
    """Every annotation term and its values, from ``/controlled_terms`` (one request)."""
    body = await client.get_json("controlled_terms", {}, valid=is_result_page)
    terms: list[Term] = []
    for item in body["results"]:
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), int):
            continue
        values = tuple(
            (value["id"], str(value.get("label") or value["id"]))
            for value in item.get("values") or []
            if isinstance(value, Mapping) and isinstance(value.get("id"), int)
        )
        terms.append(Term(item["id"], str(item.get("label") or item["id"]), values))
    return terms


def _annotation_filter(
    wanted: Sequence[tuple[str, str | None]], terms: list[Term] | None, option: str
) -> AnnotationFilter | None:
    if not wanted or terms is None:
        return None
    chosen: Term | None = None
    values: list[tuple[int, str]] = []
    any_value = False
    for term_text, value_text in wanted:
        term = _find(terms, term_text, lambda t: (t.id, t.label))
        if term is None:
            valid = ", ".join(t.label for t in terms)
            raise UsageError(
                f"{option}: no annotation term {term_text!r}; the terms are {valid}",
                options=(option,),
            )
        if chosen is not None and term.id != chosen.id:
            # term_id takes one term: an observation needs ONE annotation matching both
            # the term and the value, so two terms cannot be asked for together.
            raise UsageError(
                f"{option}: the API filters on one annotation term at a time; "
                f"got {chosen.label!r} and {term.label!r}",
                options=(option,),
            )
        chosen = term
        if value_text is None:
            any_value = True
            continue
        value = _find(term.values, value_text, lambda v: v)
        if value is None:
            valid = ", ".join(label for _, label in term.values)
            raise UsageError(
                f"{option}: {term.label!r} has no value {value_text!r}; its values are {valid}",
                options=(option,),
            )
        if value not in values:
            values.append(value)
    assert chosen is not None
    if any_value:
        # "Any value of the term" includes the values also named.
        return AnnotationFilter(chosen.id, (), chosen.label)
    label = " or ".join(f"{chosen.label}={name}" for _, name in values)
    return AnnotationFilter(chosen.id, tuple(sorted(v for v, _ in values)), label)


def _find(items: Sequence[_T], text: str, key: Callable[[_T], tuple[int, str]]) -> _T | None:
    """The item whose label (case-insensitive) or id equals ``text``."""
    wanted = text.casefold()
    for item in items:
        item_id, label = key(item)
        if str(item_id) == text or label.casefold() == wanted:
            return item
    return None


# -- search URLs -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UrlSelection:
    """What an observations search URL asks for."""

    filters: FilterRequest
    #: Taxon ids (``taxon_id``) and names (``taxon_name``) that make the species list.
    taxon_ids: tuple[int, ...] = ()
    taxon_names: tuple[str, ...] = ()
    quality: str | None = None
    license: str | None = None


def parse_search_url(url: str) -> UrlSelection:
    """An iNaturalist website or API observations search URL, as filters and taxa.

    >>> parse_search_url(
    ...     "https://www.inaturalist.org/observations?taxon_id=47219&place_id=6744"
    ... ).taxon_ids
    (47219,)
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        raise UsageError(f"the search URL {url!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"the search URL must start with http:// or https://, got {url!r}")
    path = parts.path.rstrip("/")
    if not (path == "/observations" or path.endswith("/v1/observations")):
        raise UsageError(
            f"the search URL {url!r} is not an observations search; copy the address of an "
            "iNaturalist observations page, e.g. https://www.inaturalist.org/observations?"
            "taxon_id=47219&place_id=6744",
        )
    pairs: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=False):
        key = key.strip()
        if key in pairs and pairs[key] != value:
            raise UsageError(f"the search URL gives {key} twice")
        pairs[key] = value.strip()
    taxon_ids: list[int] = []
    for item in (pairs.pop("taxon_id", "") + "," + pairs.pop("taxon_ids", "")).split(","):
        if not item.strip():
            continue
        if not item.strip().isdigit():
            raise UsageError(f"the search URL: taxon_id must be ids, got {item!r}")
        if int(item) not in taxon_ids:
            taxon_ids.append(int(item))
    taxon_names = tuple(n.strip() for n in pairs.pop("taxon_name", "").split(",") if n.strip())
    quality = pairs.pop("quality_grade", None)
    license_ = pairs.pop("photo_license", None) or pairs.pop("license", None)
    pairs.pop("license", None)
    for key in ("id_above", "id_below", "order_by", "order", "per_page", "page", "only_id"):
        # How the page was sorted and paged: the walk decides that.
        pairs.pop(key, None)
    if pairs.pop("photos", "true") not in ("true", "any"):
        raise UsageError("the search URL: observations without photos have nothing to download")
    # The website writes "any" for a filter it does not apply (its explore page links to
    # ?place_id=any&verifiable=any...): no filter, not a place named "any".
    search = [
        (k, v) for k, v in pairs.items() if k not in _VIEW_KEYS and v and v.casefold() != "any"
    ]
    filters = FilterRequest().merged(search, source="the search URL")
    return UrlSelection(filters, tuple(taxon_ids), taxon_names, quality, license_)
