"""Observation pages decoded the quick way (msgspec, to the fields read) give what the
general way (text in the answer's charset, ``json.loads``, dict parsing) gives, for any
answer: the same page, or the same retry with the same reason.

The recorded API answers live in ``<repo>/../shared/fixtures/inat-api``; the test that
reads them is skipped when that folder is absent.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from inat_async.api import InatClient, _observation_page, _Retryable
from inat_async.errors import ResponseShapeError
from inat_async.limits import Limits, LimitSettings
from inat_async.models import (
    ObservationPage,
    decode_observation_page,
    is_result_page,
    parse_observation_page,
)
from inat_async.options import Query
from inat_async.retry import RetryPolicy
from inat_async.testing import FakeInatServer

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "inat-api"

# -- the general path, as it was before the quick one (the reference) -------------------------


def general(data: bytes, charset: str | None) -> ObservationPage | tuple[str, str]:
    """What the client made of an answer before: a page, or ("retry", why)."""
    try:
        text = data.decode(charset or "utf-8", errors="replace")
    except LookupError:
        text = data.decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
    except ValueError:
        return ("retry", "the answer was not JSON")
    if not is_result_page(body):
        return ("retry", "the answer did not have the expected shape")
    return parse_observation_page(body)


def client_reads(data: bytes, charset: str | None) -> ObservationPage | tuple[str, str]:
    """What the client makes of an answer now."""
    try:
        return _observation_page(data, charset)
    except _Retryable as exc:
        return ("retry" if exc.bad_shape else "other", str(exc))


def same(read: object, expected: object) -> bool:
    """Equal down to what a CSV cell shows: -0.0 == 0.0, but "-0.0" != "0.0"."""
    return repr(read) == repr(expected)


# -- JSON text with what json.dumps cannot write: duplicate keys, raw number literals ------


@dataclass(frozen=True)
class Obj:
    """A JSON object as written, key order and duplicate keys included."""

    pairs: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Raw:
    """A number literal written as is (``1e400``, ``-0``, 30 digits...)."""

    text: str


def dump(value: Any, ascii_only: bool) -> str:
    if isinstance(value, Obj):
        inner = ", ".join(f"{dump(k, ascii_only)}: {dump(v, ascii_only)}" for k, v in value.pairs)
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dump(v, ascii_only) for v in value) + "]"
    if isinstance(value, Raw):
        return value.text
    # NaN and Infinity as json.dumps writes them (json.loads reads them; msgspec does not).
    return json.dumps(value, ensure_ascii=ascii_only)


def encode(value: Any, ascii_only: bool = True) -> bytes:
    # surrogatepass: a lone surrogate written raw is invalid UTF-8, as a broken server sends.
    return dump(value, ascii_only).encode("utf-8", errors="surrogatepass")


# -- pages: the real field names, with good, null, missing, odd and duplicated values -------

NUMBER_TEXT = st.from_regex(
    r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)
#: Within float range (1e400 is inf to json.loads, out of range to msgspec).
FLOAT_TEXT = st.from_regex(
    r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,2})?", fullmatch=True
)
IDS = st.one_of(
    st.integers(1, 2**63 - 1),
    st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**30]),
)
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.builds(Raw, NUMBER_TEXT),
    st.text(max_size=8),
    st.sampled_from(["", "12", " 7", "²", "nan,nan", "1.5,2.5", "\ud800", "é"]),
    st.just([]),
    st.lists(st.integers(-5, 5), max_size=3),
    st.builds(Obj, st.just(())),
)
#: Any JSON a real API puts in a field: what a page's unread fields hold.
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.builds(Raw, NUMBER_TEXT)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.builds(Obj, st.lists(st.tuples(st.text(max_size=4), inner), max_size=3).map(tuple))
    ),
    max_leaves=8,
)
UNREAD_NAMES = st.sampled_from(["identifications", "non_owner_ids", "comments", "ofvs", "x"])


def pages(odd: bool) -> st.SearchStrategy[Any]:
    """Search answers: as the API sends them, or (``odd``) with anything anywhere."""
    other = ODD | JSON_VALUES if odd else JSON_VALUES
    # An unread field; when odd, also a read field's name again, with anything in it.
    heavy = st.tuples(
        UNREAD_NAMES | st.sampled_from(["id", "taxon", "photos", "results"])
        if odd
        else UNREAD_NAMES,
        other,
    )

    def field(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        """Mostly what the API sends, sometimes null, (odd) sometimes anything."""
        return st.one_of(good, good, good, st.none(), *([ODD] if odd else []))

    def either(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(good, good, good, good, ODD) if odd else good

    def obj(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Obj]:
        """Some of the fields in any order, maybe one twice, with unread fields mixed in."""
        names = sorted(fields)

        @st.composite
        def build(draw: st.DrawFn) -> Obj:
            chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
            pairs = [(name, draw(fields[name])) for name in chosen]
            if chosen and draw(st.integers(0, 9)) == 0:  # a duplicate key: the last one counts
                name = draw(st.sampled_from(chosen))
                pairs.insert(draw(st.integers(0, len(pairs))), (name, draw(fields[name])))
            for extra in draw(st.lists(heavy, max_size=2)):
                pairs.insert(draw(st.integers(0, len(pairs))), extra)
            return Obj(tuple(pairs))

        return build()

    label = obj({"label": field(st.text(max_size=6)), "id": field(st.integers(1, 9))})
    annotation = obj(
        {
            "controlled_attribute_id": field(st.integers(0, 30)),
            "controlled_value_id": field(st.integers(0, 30)),
            "controlled_attribute": field(label),
            "controlled_value": field(label),
        }
    )
    extension = st.sampled_from(["jpg", "JPG", "png", ""])
    url = st.builds("https://h/photos/{}/square.{}".format, IDS, extension) | st.sampled_from(
        ["", "https://h/attachment_defaults/square.png", "https://[bad/photos/1/square.jpg"]
    )
    dimensions = obj({"width": field(st.integers(0, 5000)), "height": field(st.integers(0, 5000))})
    photo = obj(
        {
            "id": field(IDS),
            "url": field(url),
            "license_code": field(st.sampled_from(["cc-by", "CC0", "cc-by-nc"])),
            "attribution": field(st.text(max_size=10)),
            "original_dimensions": field(dimensions),
        }
    )
    latitude, longitude = st.floats(-90, 90), st.floats(-180, 180)
    coordinate = (
        longitude | longitude.map(str) | st.integers(-180, 180) | st.builds(Raw, FLOAT_TEXT)
    )
    # "lat,lon", or [lat, lon] as v2 (and some v1 answers) send it.
    location = st.builds("{},{}".format, latitude, longitude) | st.lists(latitude, max_size=2)
    observation = obj(
        {
            "id": field(IDS),
            "uuid": field(st.uuids().map(str)),
            "quality_grade": field(st.sampled_from(["research", "needs_id", "casual"])),
            "license_code": field(st.sampled_from(["cc-by", "CC-BY-NC", "cc0"])),
            "observed_on": field(st.dates().map(str)),
            "time_observed_at": field(st.just("2017-02-11T23:52:00-08:00")),
            "place_guess": field(st.text(max_size=10)),
            "positional_accuracy": field(st.integers(0, 10**6)),
            "obscured": field(st.booleans()),
            "captive": field(st.booleans()),
            "location": field(location | st.text(max_size=8)),
            "geojson": field(
                obj(
                    {
                        "coordinates": field(st.lists(either(coordinate), max_size=3)),
                        "type": st.just("Point"),
                    }
                )
            ),
            "taxon": field(
                obj(
                    {
                        "id": field(IDS),
                        "name": field(st.text(max_size=8)),
                        "rank": field(st.sampled_from(["species", "genus"])),
                    }
                )
            ),
            "user": field(
                obj(
                    {
                        "id": field(IDS),
                        "login": field(st.text(max_size=8)),
                        "name": field(st.text(max_size=8)),
                    }
                )
            ),
            "photos": field(st.lists(either(photo), max_size=4)),
            "place_ids": field(st.lists(either(st.integers(0, 10**6)), max_size=4)),
            "annotations": field(st.lists(either(annotation), max_size=3)),
        }
    )
    results = st.lists(either(observation), max_size=5)
    page = obj(
        {
            "total_results": field(st.integers(0, 10**6)),
            "results": results | ODD if odd else results,
            "page": st.integers(1, 3),
            "per_page": st.integers(0, 200),
        }
    )
    return page | ODD if odd else page


CHARSETS = st.sampled_from([None, None, "utf-8", "UTF-8", "utf8", "latin-1", "utf-16", "nope"])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(page=pages(odd=True), ascii_only=st.booleans(), charset=CHARSETS)
@example(page=Obj((("results", []),)), ascii_only=True, charset=None)
def test_any_page_reads_as_the_general_path_reads_it(
    page: Any, ascii_only: bool, charset: str | None
) -> None:
    data = encode(page, ascii_only)
    assert same(client_reads(data, charset), general(data, charset))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(page=pages(odd=False), ascii_only=st.booleans())
def test_pages_as_the_api_sends_them_take_the_quick_path(page: Obj, ascii_only: bool) -> None:
    """Nulls, missing keys, duplicates and unread fields of any shape stay on the quick path."""
    data = encode(page, ascii_only)
    if "results" not in dict(page.pairs):
        assert decode_observation_page(data) is None
        return
    quick = decode_observation_page(data)
    assert quick is not None
    assert same(quick, general(data, None))


@pytest.mark.parametrize(
    ("data", "charset"),
    [
        # A read field of a type the schema does not list: the parser still reads it.
        (b'{"results": [{"id": "12", "photos": []}]}', None),
        (b'{"results": [{"id": 12, "captive": "yes"}], "total_results": "3"}', None),
        (b'{"results": [{"id": 12.0}, {"id": true}, {"id": 7}]}', None),
        (b'{"results": [{"id": 7, "geojson": {"coordinates": [true, 2]}}]}', None),
        # A result that is not an object, or no object at all.
        (b'{"results": [null, 3, {"id": 4}]}', None),
        (b'{"results": "none"}', None),
        (b'{"total_results": 0}', None),
        (b"[]", None),
        # Literals json.loads reads and msgspec does not.
        (b'{"results": [{"id": 5, "positional_accuracy": NaN}]}', None),
        (b'{"results": [{"id": 5, "identifications": [Infinity]}]}', None),
        (b'{"results": [{"id": 5, "geojson": {"coordinates": [1e400, 2]}}]}', None),
        # An id of more than 4300 digits: not JSON to Python (nor to the schema's int).
        (b'{"results": [{"id": 1' + b"0" * 5000 + b"}]}", None),
        # Text: invalid UTF-8 and lone surrogates in a read field, a BOM, another charset.
        (b'{"results": [{"id": 5, "user": {"login": "a\xffb"}}]}', None),
        (b'{"results": [{"id": 5, "uuid": "\\ud800"}]}', None),
        (b'{"results": [{"id": 5, "place_guess": "x"}], "note": "\\udc00"}', None),
        (b'\xef\xbb\xbf{"results": []}', None),
        ('{"results": [{"id": 5, "user": {"login": "Grégoire"}}]}'.encode("latin-1"), "latin-1"),
        ('{"results": [{"id": 5}]}'.encode("utf-16"), "utf-16"),
        (b'{"results": [{"id": 5}]}', "no-such-charset"),
        # Malformed.
        (b'{"results": [{"id": 5},]}', None),
        (b'{"results": []} x', None),
        (b"", None),
    ],
)
def test_odd_answers_take_the_general_path(data: bytes, charset: str | None) -> None:
    if charset is None:
        assert decode_observation_page(data) is None
    assert same(client_reads(data, charset), general(data, charset))


def test_the_general_path_is_taken_and_its_page_used() -> None:
    data = b'{"results": [{"id": "12", "photos": []}, {"id": 3}], "total_results": 2}'
    assert decode_observation_page(data) is None
    page = _observation_page(data, None)
    assert isinstance(page, ObservationPage)
    assert [o.id for o in page.observations] == [12, 3] and page.last_id == 12


@pytest.mark.parametrize(
    "data",
    [
        # Duplicate keys: the last one counts, as with json.loads.
        b'{"results": [{"id": 1}], "results": [{"id": 2}]}',
        b'{"results": [{"id": 1, "id": 9, "taxon": {"id": 3}, "taxon": null}]}',
        # Escaped key names, nulls everywhere, unread fields with invalid UTF-8 and odd nesting.
        b'{"r\\u0065sults": [{"\\u0069d": 4, "user": null, "photos": [null, {"id": null}]}]}',
        b'{"results": [{"id": 4, "identifications": [{"x": "\xff\xfe"}, [[[1e999]]]]}]}',
        b'{"results": [{"id": 9223372036854775807}, {"id": 9223372036854775808}]}',
        # Coordinates as strings, a location as [lat, lon]: both seen in real answers.
        b'{"results": [{"id": 7, "geojson": {"coordinates": ["1.5", 2]}, "location": [2, 1.5]}]}',
        # Past 2^64: still an int, rejected with its value as before.
        b'{"results": [{"id": 18446744073709551616}, {"id": 3}]}',
        b'{"results": [{"id": 4, "geojson": {"coordinates": [-0, 1E+2]}, "location": "1,2"}]}',
    ],
)
def test_quick_path_edges(data: bytes) -> None:
    quick = decode_observation_page(data)
    assert quick is not None
    assert same(quick, general(data, None))


def test_a_literal_python_refuses_in_an_unread_field_is_read_the_quick_way() -> None:
    """The one known difference: CPython refuses integer literals of more than 4300 digits
    (a guard against slow int parsing, not a JSON rule), so the general path retried a page
    carrying one, even in a field never read; the quick path skips it and reads the page."""
    data = b'{"results": [{"id": 5, "identifications": [1' + b"0" * 5000 + b"]}]}"
    assert general(data, None) == ("retry", "the answer was not JSON")
    page = client_reads(data, None)
    assert isinstance(page, ObservationPage) and page.last_id == 5


def is_search(data: bytes) -> bool:
    """An observation search answer: results that are observations with photos."""
    body = json.loads(data)
    results = body.get("results") if isinstance(body, dict) else None
    return bool(results) and isinstance(results[0], dict) and "photos" in results[0]


def test_every_recorded_answer_reads_the_same() -> None:
    if not FIXTURES.is_dir():
        pytest.skip(f"recorded API answers not found in {FIXTURES}")
    answers = sorted(p for p in FIXTURES.iterdir() if p.suffix in (".json", ".txt"))
    searches = []
    for path in answers:
        data = path.read_bytes()
        for charset in (None, "utf-8"):
            assert same(client_reads(data, charset), general(data, charset)), path.name
        if is_search(data):
            searches.append(path.name)
            # Real answers (v1 and v2: string coordinates, [lat, lon] locations) are quick.
            assert decode_observation_page(data) is not None, path.name
    assert len(searches) >= 10


# -- over HTTP: the client walks odd answers as before --------------------------------------


async def test_the_fake_servers_heavy_pages_take_the_quick_path(server: FakeInatServer) -> None:
    """Pages as heavy as real ones (what the benchmark walks) are read the quick way."""
    server.settings.heavy_pages = True
    taxon = server.dataset.species("Apis mellifera")
    params = {"taxon_id": taxon.id, "order_by": "id", "order": "asc", "per_page": 200}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.api_url}/observations", params=params) as response,
    ):
        data, charset = await response.read(), response.charset
    assert len(data) > 1_000_000
    quick = decode_observation_page(data)
    assert quick is not None and len(quick.observations) > 20
    assert same(quick, general(data, charset))
    assert same(_observation_page(data, charset), quick)


@pytest.fixture
async def canned() -> AsyncIterator[tuple[str, list[tuple[bytes, str]]]]:
    """A server answering /v1/observations with queued (body, content type) pairs."""
    queue: list[tuple[bytes, str]] = []

    async def answer(request: web.Request) -> web.Response:
        body, content_type = queue.pop(0) if queue else (b'{"results": []}', "application/json")
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/v1/observations", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1", queue
    finally:
        await runner.cleanup()


async def walk(api_url: str, limits: LimitSettings) -> list[ObservationPage]:
    retry = RetryPolicy(attempts=2, base=0.0, cap=0.0)
    async with aiohttp.ClientSession() as session, Limits(limits) as shared:
        client = InatClient(session, limits=shared, api_url=api_url, retry=retry)
        return [page async for page in client.observation_pages(1, Query())]


async def test_a_walk_reads_quick_and_general_pages_alike(
    canned: tuple[str, list[tuple[bytes, str]]], fast_limits: LimitSettings
) -> None:
    url, queue = canned
    latin = '{"results": [{"id": 7, "user": {"login": "Grégoire"}}]}'.encode("latin-1")
    queue += [
        (
            b'{"results": [{"id": 3, "photos": [{"url": "https://h/photos/9/square.jpg"}]}]}',
            "application/json; charset=utf-8",
        ),
        (b'{"results": [{"id": "5", "positional_accuracy": NaN}]}', "application/json"),
        (latin, "application/json; charset=ISO-8859-1"),
    ]
    pages = await walk(url, fast_limits)
    assert [[o.id for o in page.observations] for page in pages] == [[3], [5], [7]]
    assert pages[0].observations[0].photos[0].id == 9
    assert pages[2].observations[0].user_login == "Grégoire"


async def test_a_page_that_is_not_json_is_retried_then_refused_as_before(
    canned: tuple[str, list[tuple[bytes, str]]], fast_limits: LimitSettings
) -> None:
    url, queue = canned
    queue += [(b'{"results": [{"id": 3}]', "application/json")] * 2
    with pytest.raises(ResponseShapeError, match="the answer was not JSON"):
        await walk(url, fast_limits)
    assert not queue
    queue += [(b'{"results": {"id": 3}}', "application/json"), (b'{"results": [{"id": 4}]}', "")]
    assert [page.last_id for page in await walk(url, fast_limits)] == [4]


def test_coordinates_read_the_same_as_float() -> None:
    # -0 and big ints stay ints (json.loads gives ints); a float field would make them floats.
    data = b'{"results": [{"id": 1, "geojson": {"coordinates": [123456789012345678901, -0]}}]}'
    page = decode_observation_page(data)
    assert page is not None
    (observation,) = page.observations
    assert observation.longitude == float(123456789012345678901)
    assert observation.latitude == 0.0 and math.copysign(1, observation.latitude) == 1.0
