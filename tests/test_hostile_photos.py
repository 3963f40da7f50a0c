"""Hostile photo hosts and folders, over real HTTP: each fails its photo with a reason, never
hangs the run, never fills the disk, never writes outside the output folder."""

from __future__ import annotations

import csv
from pathlib import Path

import aiohttp
import pytest
from support import FAST_RETRY, expected_files, saved_files

from inat_async import StorageError, download_species
from inat_async.fetch import MAX_PHOTO_BYTES, PhotoError, PhotoFetcher
from inat_async.limits import Limits, LimitSettings
from inat_async.options import Query
from inat_async.retry import RetryPolicy
from inat_async.testing import FakeInatServer, FakePhoto, FaultKind

SPECIES = "Apis mellifera"
OBSERVATIONS = 4


def options(server: FakeInatServer, out: Path, limits: LimitSettings) -> dict[str, object]:
    return {"api_url": server.api_url, "out_dir": out, "limits": limits, "retry": FAST_RETRY}


def images(out: Path) -> Path:
    return out / "Apis_mellifera_images"


def first_photo(server: FakeInatServer) -> FakePhoto:
    observations = sorted(server.dataset.observations_of(SPECIES), key=lambda o: o.id)
    return next(p for o in observations if o.photos for p in o.real_photos)


def photo_rows(out: Path) -> list[dict[str, str]]:
    with (out / "Apis_mellifera_photos.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


async def run_with_one_bad_photo(
    server: FakeInatServer, tmp_path: Path, limits: LimitSettings, kind: FaultKind, **fault: object
) -> tuple[str, Path]:
    """Spoil every fetch of one photo; the others must all be saved. Returns its reason."""
    victim = first_photo(server)
    server.faults.fail_photo(victim.id, kind, times=None, **fault)  # type: ignore[arg-type]
    out = tmp_path / "out"
    result = await download_species(
        SPECIES, observations=OBSERVATIONS, **options(server, out, limits)
    )
    assert [f.photo_id for f in result.failures] == [victim.id]
    expected = expected_files(server, SPECIES, Query(), OBSERVATIONS)
    saved = saved_files(images(out))
    assert len(saved) == len(expected) - 1 and set(saved.items()) <= set(expected.items())
    assert not list(out.rglob("*.part"))
    row = next(r for r in photo_rows(out) if int(r["photo_id"]) == victim.id)
    assert row["status"] == "failed" and row["file_name"] == ""
    assert row["error"] == result.failures[0].reason
    return result.failures[0].reason, out


async def test_a_retry_after_of_years_fails_the_photo_at_once(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    reason, _ = await run_with_one_bad_photo(
        server, tmp_path, fast_limits, FaultKind.TOO_MANY_REQUESTS, retry_after=99_999_999
    )
    assert reason == "HTTP 429: the server asked to wait 1,157 days (more than 5 minutes)"


async def test_an_endless_body_stops_at_the_cap_of_its_size(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    reason, _ = await run_with_one_bad_photo(server, tmp_path, fast_limits, FaultKind.ENDLESS)
    cap = MAX_PHOTO_BYTES["medium"]
    assert reason == (
        f"the photo is larger than the {cap:,}-byte cap of its size (the server sent more)"
    )
    sent = [r.bytes_sent for r in server.log.records("photo") if r.fault == "endless"]
    # Fetched once (a photo over the cap is not asked for again), and read no further.
    assert len(sent) == 1 and sent[0] < 2 * cap


async def test_an_announced_length_over_the_cap_fails_before_reading(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    reason, _ = await run_with_one_bad_photo(server, tmp_path, fast_limits, FaultKind.HUGE_LENGTH)
    assert "announces 1,000,000,000,000 bytes" in reason


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({}, "image but sent something else"),
        ({"html": True}, "image but sent something else"),
        ({"length": 3}, "image but sent something else"),
    ],
)
async def test_a_body_that_is_not_the_announced_image_is_not_saved(
    server: FakeInatServer,
    tmp_path: Path,
    fast_limits: LimitSettings,
    fault: dict[str, object],
    expected: str,
) -> None:
    reason, _ = await run_with_one_bad_photo(
        server, tmp_path, fast_limits, FaultKind.NOT_AN_IMAGE, **fault
    )
    assert expected in reason and "attempts" in reason
    assert reason.isprintable() and "\xff" not in reason and "<html" not in reason


async def test_a_content_length_shorter_than_the_body_is_caught(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    reason, _ = await run_with_one_bad_photo(
        server, tmp_path, fast_limits, FaultKind.SHORT_LENGTH, cut_at=0.7
    )
    assert "image is cut off" in reason


async def test_a_trickling_body_times_out(server: FakeInatServer, tmp_path: Path) -> None:
    victim = first_photo(server)
    server.faults.fail_photo(victim.id, FaultKind.TRICKLE, delay=0.05)
    limits = Limits(LimitSettings(requests_per_minute=100_000, state_dir=tmp_path / "limits"))
    part = tmp_path / ".x.part"
    async with aiohttp.ClientSession() as session:
        fetcher = PhotoFetcher(
            session,
            limits=limits,
            retry=RetryPolicy(attempts=1),
            base_timeout=0.3,
            min_rate=1e9,  # only the base counts: a second to spare at most
        )
        with pytest.raises(PhotoError, match=r"too slow: \d+ bytes in 0 s"):
            await fetcher.download(server.photo_url(victim, "medium"), part, lambda _: part)
    await limits.aclose()
    assert not part.exists()


async def test_a_folder_squatting_on_a_photo_name_fails_that_photo_only(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    out = tmp_path / "out"
    expected = sorted(expected_files(server, SPECIES, Query(), OBSERVATIONS))
    squatter = images(out) / expected[0]
    (squatter / "inside").mkdir(parents=True)
    result = await download_species(
        SPECIES, observations=OBSERVATIONS, **options(server, out, fast_limits)
    )
    assert result.error is None and result.photos_failed == 1
    assert result.failures[0].reason.startswith(f"cannot write {expected[0]}: Is a directory")
    assert result.photos_downloaded == len(expected) - 1
    # A rerun tries that photo again, and only it; the folder stays as the user left it.
    again = await download_species(
        SPECIES, observations=OBSERVATIONS, **options(server, out, fast_limits)
    )
    assert again.photos_failed == 1 and again.photos_already_done == len(expected) - 1
    assert (squatter / "inside").is_dir()


async def test_a_symlinked_images_folder_is_refused(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    images(out).symlink_to(elsewhere)
    with pytest.raises(StorageError, match="is a symbolic link"):
        await download_species(
            SPECIES, observations=OBSERVATIONS, **options(server, out, fast_limits)
        )
    assert list(elsewhere.iterdir()) == []
