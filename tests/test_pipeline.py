"""End to end over real HTTP: the library against the fake iNaturalist on loopback."""

from __future__ import annotations

import asyncio
import csv
import hashlib
from pathlib import Path

import aiohttp
import pytest
from support import (
    FAST_RETRY,
    expected_files,
    expected_name,
    expected_observations,
    saved_files,
)

from inat_async import (
    PhotoDownloaded,
    PhotoSkipped,
    SpeciesFinished,
    TaxonResolved,
    UsageError,
    download_all,
    download_species,
    fetch,
)
from inat_async.events import Event
from inat_async.limits import Limits, LimitSettings
from inat_async.options import Query
from inat_async.testing import FakeInatServer, FaultKind


def run_options(server: FakeInatServer, out: Path, limits: LimitSettings, **extra: object) -> dict:
    return {
        "api_url": server.api_url,
        "out_dir": out,
        "limits": limits,
        "retry": FAST_RETRY,
        **extra,
    }


async def test_downloads_exactly_the_right_photos(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    events: list[Event] = []
    out = tmp_path / "out"
    result = await download_species(
        "Apis mellifera",
        observations=20,
        on_event=events.append,
        **run_options(server, out, fast_limits),
    )
    query = Query()
    assert result.error is None
    assert result.observations == 20
    expected = expected_files(server, "Apis mellifera", query, 20)
    assert saved_files(out / "Apis_mellifera_images") == expected
    assert result.photos_downloaded == len(expected)
    assert result.bytes == sum(p.stat().st_size for p in (out / "Apis_mellifera_images").iterdir())
    # Metadata: one row per observation, ascending ids, the original's columns first.
    with (out / "Apis_mellifera_metadata.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    wanted = expected_observations(server.dataset, "Apis mellifera", query, 20)
    assert [int(r["observation_id"]) for r in rows] == [o.id for o in wanted]
    assert rows[0]["species_name"] == "Apis mellifera"
    assert rows[0]["observer_login"] == wanted[0].user.login
    # Photos CSV: each photo with its own license and attribution.
    with (out / "Apis_mellifera_photos.csv").open(encoding="utf-8", newline="") as handle:
        photos = list(csv.DictReader(handle))
    assert {p["file_name"] for p in photos} == set(expected)
    assert all(p["attribution"] and p["status"] == "done" for p in photos)
    by_id = {photo.id: photo for o in wanted for photo in o.photos}
    for row in photos:
        assert row["photo_license"] == (by_id[int(row["photo_id"])].license_code or "none")
    kinds = {type(e) for e in events}
    assert {TaxonResolved, PhotoDownloaded, SpeciesFinished} <= kinds
    # Placeholders were reported as skipped, never saved.
    assert any(isinstance(e, PhotoSkipped) and e.reason == "placeholder" for e in events) == (
        result.skipped_placeholder > 0
    )
    assert not server.log.refetched_photos()


@pytest.mark.parametrize(
    ("license", "quality", "size"),
    [
        ("cc-by,cc0", "research", "small"),
        ("any", "any", "large"),
        ("cc-by-nc", "needs_id,casual", "original"),
    ],
)
async def test_filters_and_sizes(
    server: FakeInatServer,
    tmp_path: Path,
    fast_limits: LimitSettings,
    license: str,
    quality: str,
    size: str,
) -> None:
    out = tmp_path / "out"
    result = await download_species(
        "Apis mellifera",
        observations=15,
        license=license,
        quality=quality,
        size=size,
        **run_options(server, out, fast_limits),
    )
    query = Query.parse(license=license, quality=quality, size=size)
    expected = expected_files(server, "Apis mellifera", query, 15)
    assert saved_files(out / "Apis_mellifera_images") == expected
    assert result.observations == len(
        expected_observations(server.dataset, "Apis mellifera", query, 15)
    )


async def test_species_list_shares_one_pool_and_reports_unknown_names(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    out = tmp_path / "out"
    result = await download_all(
        ["Apis mellifera", "Nonexistent beastus", "mantis RELIGIOSA"],
        observations=10,
        workers=3,
        **run_options(server, out, fast_limits),
    )
    names = [s.name for s in result.species]
    assert names == ["Apis mellifera", "Nonexistent beastus", "mantis RELIGIOSA"]
    unknown = result.species[1]
    assert unknown.error is not None and "Nonexistent beastus" in unknown.error
    assert result.exit_code == 1
    assert result.species[0].ok and result.species[2].ok
    assert (out / "mantis_RELIGIOSA_images").is_dir()


async def test_synonym_is_accepted_and_reported(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    taxon = server.dataset.species("Apis mellifera")
    synonym = taxon.synonyms[0]
    result = await download_species(
        synonym, observations=3, **run_options(server, tmp_path / "out", fast_limits)
    )
    assert result.taxon is not None and result.taxon.id == taxon.id
    assert result.matched_term is not None
    assert result.matched_term.casefold() == synonym.casefold()


async def test_faults_are_retried_and_missing_photos_reported(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    query = Query()
    wanted = expected_observations(server.dataset, "Apis mellifera", query, 12)
    photos = [p for o in wanted for p in o.real_photos]
    server.faults.fail_api(FaultKind.SERVICE_UNAVAILABLE, times=1)
    server.faults.fail_api(FaultKind.TOO_MANY_REQUESTS, times=1)
    server.faults.fail_api(FaultKind.MALFORMED_JSON, times=1)
    server.faults.fail_photo(photos[0].id, FaultKind.TRUNCATED, times=2)
    server.faults.fail_photo(photos[1].id, FaultKind.HTML_PAGE, times=1)
    server.faults.fail_photo(photos[2].id, FaultKind.SERVICE_UNAVAILABLE, times=2)
    server.faults.fail_photo(photos[3].id, FaultKind.S3_XML, times=1)
    server.faults.fail_photo(photos[4].id, FaultKind.NOT_FOUND, times=100)
    out = tmp_path / "out"
    result = await download_species(
        "Apis mellifera", observations=12, **run_options(server, out, fast_limits)
    )
    expected = expected_files(server, "Apis mellifera", query, 12)
    gone = expected_name("Apis mellifera", wanted, photos[4])
    assert saved_files(out / "Apis_mellifera_images") == {
        name: digest for name, digest in expected.items() if name != gone
    }
    assert result.photos_missing == 1 and result.photos_failed == 0
    assert result.ok  # a photo the server no longer has is reported, not a failure
    assert not list((out / "Apis_mellifera_images").glob(".*.part"))


async def test_json_nested_past_the_parser_is_not_json_retried_then_an_api_error(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    """A page nested deeper than any parser goes (json raises RecursionError) is an answer
    that is not JSON: retried, and when it keeps coming, the species' one-line error."""
    server.faults.fail_api(FaultKind.DEEP_JSON, path="/v1/observations", times=1)
    once = await download_species(
        "Apis mellifera", observations=5, **run_options(server, tmp_path / "once", fast_limits)
    )
    assert once.ok and once.photos_downloaded > 0

    server.faults.fail_api(FaultKind.DEEP_JSON, path="/v1/observations", times=None)
    always = await download_species(
        "Apis mellifera", observations=5, **run_options(server, tmp_path / "always", fast_limits)
    )
    assert always.error is not None and not always.ok
    assert "not JSON" in always.error and "internal" not in always.error


async def test_a_photo_that_keeps_failing_is_recorded_and_the_run_goes_on(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    wanted = expected_observations(server.dataset, "Apis mellifera", Query(), 5)
    broken = wanted[0].real_photos[0]
    server.faults.fail_photo(broken.id, FaultKind.SERVICE_UNAVAILABLE, times=100)
    out = tmp_path / "out"
    result = await download_species(
        "Apis mellifera", observations=5, **run_options(server, out, fast_limits)
    )
    assert result.photos_failed == 1 and not result.ok
    (failure,) = result.failures
    assert failure.photo_id == broken.id and "503" in failure.reason
    with (out / "Apis_mellifera_photos.csv").open(encoding="utf-8", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if int(r["photo_id"]) == broken.id)
    assert row["status"] == "failed" and "503" in row["error"] and row["file_name"] == ""


async def test_concurrent_calls_share_the_limits(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    first, second = await asyncio.gather(
        download_species(
            "Apis mellifera", observations=8, **run_options(server, tmp_path / "a", fast_limits)
        ),
        download_species(
            "Mantis religiosa", observations=8, **run_options(server, tmp_path / "b", fast_limits)
        ),
    )
    assert first.ok and second.ok
    assert first.photos_downloaded > 0 and second.photos_downloaded > 0


async def test_a_caller_session_is_used_and_left_open(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    async with aiohttp.ClientSession(headers={"User-Agent": "my-lab/1.0"}) as session:
        result = await download_species(
            "Apis mellifera",
            observations=2,
            session=session,
            **run_options(server, tmp_path / "out", fast_limits),
        )
        assert not session.closed
    assert result.ok
    assert {r.user_agent for r in server.log.records()} == {"my-lab/1.0"}


async def test_our_user_agent_is_sent_on_every_request(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    await download_species(
        "Apis mellifera", observations=2, **run_options(server, tmp_path / "out", fast_limits)
    )
    agents = {r.user_agent for r in server.log.records()}
    assert len(agents) == 1
    assert agents.pop().startswith("inat-async/")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"observations": 0}, "observations"),
        ({"workers": 0}, "workers"),
        ({"license": "cc-by,gpl"}, "gpl"),
        ({"quality": "great"}, "great"),
        ({"size": "huge"}, "huge"),
    ],
)
async def test_bad_options_are_usage_errors_before_anything_is_created(
    tmp_path: Path, options: dict, message: str
) -> None:
    out = tmp_path / "out"
    with pytest.raises(UsageError, match=message):
        await download_species("Apis mellifera", out_dir=out, **options)
    assert not out.exists()


@pytest.mark.parametrize("write_buffer", [fetch.WRITE_BUFFER, 1024])
async def test_the_recorded_sha256_is_the_saved_files(
    server: FakeInatServer, tmp_path: Path, write_buffer: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The body is hashed in the file hop: in one piece, or piece by piece as it is flushed.
    monkeypatch.setattr(fetch, "WRITE_BUFFER", write_buffer)
    observation = min(server.dataset.observations_of("Apis mellifera"), key=lambda o: o.id)
    photo = observation.real_photos[0]
    limits = Limits(LimitSettings(requests_per_minute=100_000, state_dir=tmp_path / "limits"))
    saved = tmp_path / "photo.jpg"
    async with aiohttp.ClientSession() as session:
        fetcher = fetch.PhotoFetcher(session, limits=limits, retry=FAST_RETRY)
        fetched = await fetcher.download(
            server.photo_url(photo, "medium"), tmp_path / ".photo.part", lambda _: saved
        )
    await limits.aclose()
    body = saved.read_bytes()
    assert len(body) > 3 * 1024
    assert (fetched.path, fetched.bytes) == (saved, len(body))
    assert fetched.sha256 == hashlib.sha256(body).hexdigest()
