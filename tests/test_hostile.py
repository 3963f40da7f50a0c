"""Hostile and broken servers, over real HTTP against the fake iNaturalist (issue #14)."""

from __future__ import annotations

import asyncio
import csv
import socket
from pathlib import Path

import aiohttp
import pytest
from support import FAST_RETRY, expected_observations

from inat_async import (
    ApiError,
    InatClient,
    ObservationSkipped,
    OutputConflictError,
    PageFetched,
    PhotoSkipped,
    RetryPolicy,
    Settings,
    SpeciesEntry,
    SpeciesFileError,
    UsageError,
    download_all,
    read_species_csv,
)
from inat_async.api import MAX_BODY_BYTES
from inat_async.errors import redact
from inat_async.events import Event
from inat_async.limits import Limits, LimitSettings
from inat_async.models import (
    MAX_PHOTOS_PER_OBSERVATION,
    MAX_STORED_INT,
    Observation,
    parse_observation_page,
)
from inat_async.options import Query
from inat_async.pipeline import _Run
from inat_async.species import daily_request_warning
from inat_async.testing import FakeInatServer
from inat_async.urls import MAX_REDIRECTS

HUGE = 2**63


def run_options(server: FakeInatServer, out: Path, limits: LimitSettings, **extra: object) -> dict:
    return {
        "api_url": server.api_url,
        "out_dir": out,
        "limits": limits,
        "retry": FAST_RETRY,
        **extra,
    }


def _photo(photo_id: object, **extra: object) -> dict:
    return {"id": photo_id, "url": f"https://h/photos/{photo_id}/square.jpg", **extra}


# -- numbers at the parsing boundary --------------------------------------------------------


@pytest.mark.parametrize("bad", [-5, 0, HUGE, 10**30, "-1", "9" * 5000, 1.5, True])
def test_an_observation_id_out_of_range_is_dropped_with_its_reason(bad: object) -> None:
    page = parse_observation_page({"results": [{"id": 7, "photos": []}, {"id": bad}]})
    assert [o.id for o in page.observations] == [7]
    assert page.last_id == 7  # a bad id never becomes the next id_above
    assert page.size == 2
    (reason,) = page.rejected
    assert "out of range" in reason


def test_the_largest_storable_id_is_kept() -> None:
    page = parse_observation_page({"results": [{"id": MAX_STORED_INT}]})
    assert page.last_id == MAX_STORED_INT and not page.rejected


def test_photo_numbers_out_of_range() -> None:
    observation = Observation.from_api(
        {
            "id": 1,
            "user": {"id": HUGE},
            "taxon": {"id": -3},
            "positional_accuracy": HUGE,
            "photos": [
                _photo(HUGE),
                {"id": -2, "url": "https://h/photos/2/square.jpg"},
                {"url": f"https://h/photos/{'9' * 5000}/square.jpg"},
                _photo(5, original_dimensions={"width": HUGE, "height": -1}),
            ],
        }
    )
    assert observation is not None
    (photo,) = observation.photos
    assert (photo.id, photo.width, photo.height) == (5, None, None)
    assert [reason for reason, _ in observation.rejected] == ["invalid"] * 3
    assert observation.user_id is None and observation.taxon_id is None
    assert observation.positional_accuracy is None


def test_one_photo_listed_many_times_is_taken_once_and_photos_are_capped() -> None:
    repeated = Observation.from_api({"id": 1, "photos": [_photo(5)] * 10_000})
    assert repeated is not None
    assert len(repeated.photos) == 1
    assert len(repeated.rejected) == 9_999
    many = Observation.from_api({"id": 1, "photos": [_photo(i) for i in range(1, 10_001)]})
    assert many is not None
    assert len(many.photos) == MAX_PHOTOS_PER_OBSERVATION
    assert {reason for reason, _ in many.rejected} == {"too_many"}
    assert len(many.rejected) == 10_000 - MAX_PHOTOS_PER_OBSERVATION


async def test_out_of_range_numbers_from_the_server_crash_nothing(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    """A negative and a huge observation id, a huge photo id and a huge width in one page:
    the species goes on without them, the next species runs, and a rerun is clean."""
    wanted = expected_observations(server.dataset, "Apis mellifera", Query(), 12)
    with_photos = [o for o in wanted if o.real_photos]
    negative, huge, bad_photo, wide = with_photos[1], with_photos[2], with_photos[3], with_photos[4]
    server.settings.observation_patches = {negative.id: {"id": -5}, huge.id: {"id": HUGE}}
    server.settings.photo_patches = {
        bad_photo.real_photos[0].id: {"id": HUGE},
        wide.real_photos[0].id: {"original_dimensions": {"width": HUGE, "height": 10**30}},
    }
    events: list[Event] = []
    out = tmp_path / "out"
    options = run_options(server, out, fast_limits, observations=12)
    result = await download_all(
        ["Apis mellifera", "Mantis religiosa"], on_event=events.append, **options
    )
    apis, mantis = result.species
    assert apis.error is None and mantis.error is None
    assert result.ok
    assert apis.skipped_observations == 2
    assert apis.skipped_invalid == 1
    assert len([e for e in events if isinstance(e, ObservationSkipped)]) == 2
    assert any(isinstance(e, PhotoSkipped) and e.reason == "invalid" for e in events)
    assert mantis.photos_downloaded > 0
    with (out / "Apis_mellifera_photos.csv").open(encoding="utf-8", newline="") as handle:
        rows = {int(r["photo_id"]): r for r in csv.DictReader(handle)}
    row = rows[wide.real_photos[0].id]
    assert row["status"] == "done" and row["width"] == "" and row["height"] == ""
    assert bad_photo.real_photos[0].id not in rows
    with (out / "Apis_mellifera_metadata.csv").open(encoding="utf-8", newline="") as handle:
        ids = {int(r["observation_id"]) for r in csv.DictReader(handle)}
    assert negative.id not in ids and huge.id not in ids and -5 not in ids

    again = await download_all(["Apis mellifera", "Mantis religiosa"], **options)
    assert again.ok
    assert again.photos_downloaded == 0


async def test_an_unexpected_error_in_one_species_does_not_stop_the_others(
    server: FakeInatServer,
    tmp_path: Path,
    fast_limits: LimitSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = _Run._screen

    def broken(self: _Run, species: object, observation: Observation) -> object:
        if getattr(species, "name", "") == "Apis mellifera":
            raise ValueError("a bug")
        return screen(self, species, observation)  # type: ignore[arg-type]

    monkeypatch.setattr(_Run, "_screen", broken)
    result = await download_all(
        ["Apis mellifera", "Mantis religiosa"],
        **run_options(server, tmp_path / "out", fast_limits, observations=5),
    )
    apis, mantis = result.species
    assert apis.error is not None and "ValueError: a bug" in apis.error
    assert mantis.ok and mantis.photos_downloaded > 0
    assert result.exit_code == 1


# -- API bodies, redirects, URLs ------------------------------------------------------------


async def _client(server: FakeInatServer, limits: LimitSettings, **extra: object):  # type: ignore[no-untyped-def]
    session = aiohttp.ClientSession()
    client = InatClient(
        session,
        limits=Limits(limits),
        api_url=str(extra.pop("api_url", server.api_url)),
        retry=FAST_RETRY,
        **extra,  # type: ignore[arg-type]
    )
    return session, client


async def test_a_gzip_bomb_is_refused_at_the_size_cap_without_retries(
    server: FakeInatServer, fast_limits: LimitSettings
) -> None:
    """64 MiB of JSON whitespace in a 64 KB gzip body: read up to the cap, then refused."""
    server.faults.gzip_bomb(64 * 2**20, path="/v1/taxa")
    session, client = await _client(server, fast_limits)
    async with session:
        with pytest.raises(ApiError, match="larger than 33,554,432 bytes once decompressed"):
            await client.resolve_taxon("Apis mellifera")
    assert len([r for r in server.log.records() if r.path == "/v1/taxa"]) == 1
    assert MAX_BODY_BYTES == 32 * 2**20


async def test_a_bomb_fails_its_species_and_the_run_goes_on(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    taxon = server.dataset.species("Apis mellifera")
    server.faults.gzip_bomb(40 * 2**20, path="/v1/observations", times=1)
    result = await download_all(
        [SpeciesEntry("Apis mellifera", taxon_id=taxon.id), "Mantis religiosa"],
        **run_options(server, tmp_path / "out", fast_limits, observations=3),
    )
    apis, mantis = result.species
    assert apis.error is not None and "once decompressed" in apis.error
    assert mantis.ok and mantis.photos_downloaded > 0


@pytest.mark.parametrize(
    ("location", "requests"),
    [("file:///etc/passwd", 1), ("ftp://example.org/x", 1), (None, MAX_REDIRECTS)],
)
async def test_an_api_redirect_that_cannot_work_fails_at_once(
    server: FakeInatServer, fast_limits: LimitSettings, location: str | None, requests: int
) -> None:
    server.faults.redirect(location, target="api", path="/v1/taxa")
    session, client = await _client(server, fast_limits)
    async with session:
        with pytest.raises(ApiError, match="redirected"):
            await client.resolve_taxon("Apis mellifera")
    # FAST_RETRY makes 4 attempts: one attempt (of at most 10 hops) means no retry.
    assert len([r for r in server.log.records() if r.path == "/v1/taxa"]) == requests


async def test_a_photo_redirect_that_cannot_work_fails_that_photo_at_once(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    wanted = expected_observations(server.dataset, "Apis mellifera", Query(), 3)
    looping, elsewhere = wanted[0].real_photos[0], wanted[2].real_photos[0]
    server.faults.redirect(None, target="photo", photo_id=looping.id)
    server.faults.redirect("file:///etc/passwd", target="photo", photo_id=elsewhere.id)
    result = await download_all(
        ["Apis mellifera"], **run_options(server, tmp_path / "out", fast_limits, observations=3)
    )
    reasons = {f.photo_id: f.reason for f in result.species[0].failures}
    assert "endless" in reasons[looping.id]
    assert "not http(s)" in reasons[elsewhere.id]
    assert len([r for r in server.log.records() if r.photo_id == looping.id]) == MAX_REDIRECTS
    assert len([r for r in server.log.records() if r.photo_id == elsewhere.id]) == 1


async def test_a_query_in_the_api_url_is_carried_over_to_every_request(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    options = run_options(server, tmp_path / "out", fast_limits, observations=3)
    options["api_url"] = f"{server.api_url}?key=abc"
    result = await download_all(["Apis mellifera"], **options)
    assert result.ok
    api = [r for r in server.log.records() if r.kind == "api"]
    assert api and all(r.path in ("/v1/taxa", "/v1/observations") for r in api)
    assert all("key=abc" in r.query for r in api)


@pytest.mark.parametrize(
    "url", ["http://[::1", "http://host:99999/v1", "http:///v1", "http://h/v1#frag", "ftp://h/v1"]
)
def test_an_api_url_that_cannot_work_is_refused(url: str) -> None:
    with pytest.raises(UsageError, match="api_url"):
        Settings.create(api_url=url)


async def test_credentials_in_the_api_url_are_never_shown(
    tmp_path: Path, fast_limits: LimitSettings
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://annie7:s3cret@127.0.0.1:{port}/v1"
    result = await download_all(
        ["Apis mellifera"],
        api_url=url,
        out_dir=tmp_path / "out",
        limits=fast_limits,
        retry=RetryPolicy(attempts=1),
    )
    error = result.species[0].error
    assert error is not None and f"127.0.0.1:{port}" in error
    assert "s3cret" not in error and "annie7" not in error
    assert redact(f"see {url} and https://tok@h/") == (
        f"see http://***@127.0.0.1:{port}/v1 and https://***@h/"
    )


async def test_a_callers_credentials_go_to_the_api_only(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    """The API is reached as localhost, photos on 127.0.0.1: two hosts, as in production."""
    secret = {"Authorization": "Bearer tok-123", "Cookie": "session=abc", "User-Agent": "lab/1"}
    traced: list[str] = []

    async def on_request_start(
        session: aiohttp.ClientSession, context: object, params: aiohttp.TraceRequestStartParams
    ) -> None:
        traced.append(params.url.path)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    async with aiohttp.ClientSession(headers=secret, trace_configs=[trace]) as session:
        options = run_options(server, tmp_path / "out", fast_limits, observations=3)
        options["api_url"] = f"http://localhost:{server.port}/v1"
        result = await download_all(["Apis mellifera"], session=session, **options)
        assert not session.closed
    assert result.ok and result.photos_downloaded > 0
    records = server.log.records()
    api = [r for r in records if r.kind == "api"]
    photos = [r for r in records if r.kind == "photo"]
    assert api and all(r.authorization == "Bearer tok-123" for r in api)
    assert photos and all(r.authorization is None and r.cookie is None for r in photos)
    assert {r.user_agent for r in records} == {"lab/1"}
    # The caller's tracing sees every request, photos included.
    assert sorted(traced) == sorted(r.path for r in records)


# -- the output folder: one writer, no silent restart -----------------------------------------


async def test_a_second_run_into_the_same_folder_is_refused_while_the_first_runs(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    server.settings.photo_latency = 0.05
    out = tmp_path / "out"
    options = run_options(server, out, fast_limits, observations=6, workers=2)
    walking = asyncio.Event()

    def on_event(event: Event) -> None:
        if isinstance(event, PageFetched):
            walking.set()

    first = asyncio.create_task(download_all(["Apis mellifera"], on_event=on_event, **options))
    await walking.wait()
    with pytest.raises(UsageError, match=r"another inat-async run \(process \d+\) is downloading"):
        await download_all(["Apis mellifera"], **options)
    result = await first
    assert result.ok
    assert not server.log.refetched_photos()
    # Released when the run ends: the next run resumes (and has nothing to fetch).
    server.settings.photo_latency = 0.0
    again = await download_all(["Apis mellifera"], **options)
    assert again.ok and again.photos_downloaded == 0


async def test_an_emptied_store_beside_downloaded_files_is_refused_with_a_hint(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    out = tmp_path / "out"
    options = run_options(server, out, fast_limits, observations=4)
    assert (await download_all(["Apis mellifera"], **options)).ok
    fetched = len([r for r in server.log.records() if r.kind == "photo"])
    store = out / ".inat-async" / "state.sqlite3"
    store.write_bytes(b"")  # truncated to 0 bytes
    with pytest.raises(OutputConflictError, match="was lost or truncated") as caught:
        await download_all(["Apis mellifera"], **options)
    assert "Apis_mellifera_images" in str(caught.value)
    assert len([r for r in server.log.records() if r.kind == "photo"]) == fetched
    assert store.stat().st_size == 0  # left as found, for the user to restore


async def test_a_new_folder_and_a_folder_without_a_store_still_start(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    out = tmp_path / "out"
    (out / "notes").mkdir(parents=True)
    (out / "readme.csv").write_text("x\n")  # no store at all: not a lost one
    result = await download_all(
        ["Apis mellifera"], **run_options(server, out, fast_limits, observations=2)
    )
    assert result.ok and result.photos_downloaded > 0


# -- hostile input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('name,start_id\nApis mellifera,0\n"Mantis religiosa,0\nBombus terrestris,0\n', 3),
        ('name\n"Apis mellifera\n', 2),
    ],
)
def test_an_unclosed_quote_in_the_species_list_is_a_line_error(
    tmp_path: Path, text: str, line: int
) -> None:
    path = tmp_path / "species.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpeciesFileError, match=rf"line {line}: a quote .* never closed"):
        read_species_csv(path)


def test_a_list_that_needs_more_requests_than_a_day_allows_is_announced() -> None:
    names = [SpeciesEntry(f"Species {i}") for i in range(10_000)]
    warning = daily_request_warning(names, 9_500)
    assert warning is not None
    assert "10,000 species need at least 20,000 API requests" in warning
    assert "at least 3 days" in warning
    by_id = [SpeciesEntry(f"Species {i}", taxon_id=i + 1) for i in range(9_000)]
    assert daily_request_warning(by_id, 9_500) is None  # one page each, no lookup
    assert daily_request_warning(names[:100], 9_500) is None
