"""Reruns finish the job: nothing done twice, nothing lost; bad data never escapes the folder."""

from __future__ import annotations

import csv
import errno
import socket
from pathlib import Path

import pytest
from support import FAST_RETRY, expected_files, saved_files

from inat_async import StorageError, download_all, download_species
from inat_async.fetch import PartHandle, PhotoFiles
from inat_async.limits import LimitSettings
from inat_async.options import Query
from inat_async.resume import DONE, ResumeStore
from inat_async.species import SpeciesEntry
from inat_async.testing import DatasetOptions, FakeInatServer, FaultKind, build_dataset

SPECIES = "Apis mellifera"


def options(server: FakeInatServer, out: Path, limits: LimitSettings, **extra: object) -> dict:
    return {
        "api_url": server.api_url,
        "out_dir": out,
        "limits": limits,
        "retry": FAST_RETRY,
        **extra,
    }


def images(out: Path, species: str = SPECIES) -> Path:
    return out / f"{species.replace(' ', '_')}_images"


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


async def test_a_finished_run_reruns_without_a_single_request(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    out = tmp_path / "out"
    first = await download_species(SPECIES, observations=10, **options(server, out, fast_limits))
    before = len(server.log.records())
    again = await download_species(SPECIES, observations=10, **options(server, out, fast_limits))
    assert len(server.log.records()) == before, "a finished dataset needs no request at all"
    assert again.photos_downloaded == 0
    assert again.photos_already_done == first.photos_downloaded
    assert len(rows(out / "Apis_mellifera_metadata.csv")) == 10


async def test_a_larger_count_continues_after_the_last_observation(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    out = tmp_path / "out"
    await download_species(SPECIES, observations=7, **options(server, out, fast_limits))
    more = await download_species(SPECIES, observations=19, **options(server, out, fast_limits))
    assert more.observations == 19
    assert saved_files(images(out)) == expected_files(server, SPECIES, Query(), 19)
    ids = [int(r["observation_id"]) for r in rows(out / "Apis_mellifera_metadata.csv")]
    assert ids == sorted(set(ids)) and len(ids) == 19
    assert not server.log.refetched_photos()


async def test_deleted_photos_and_transient_failures_are_fetched_again(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    out = tmp_path / "out"
    expected = expected_files(server, SPECIES, Query(), 10)
    wanted = server.dataset.observations_of(SPECIES)
    # One photo keeps failing (transient), one is gone for good (404).
    photo_ids = [int(name.split("_")[-2]) for name in expected]
    flaky_obs, gone_obs = photo_ids[0], photo_ids[-1]
    flaky = next(p for o in wanted if o.id == flaky_obs for p in o.real_photos)
    gone = next(p for o in wanted if o.id == gone_obs for p in o.real_photos)
    server.faults.fail_photo(flaky.id, FaultKind.SERVICE_UNAVAILABLE, times=FAST_RETRY.attempts)
    server.faults.fail_photo(gone.id, FaultKind.NOT_FOUND, times=None)
    first = await download_species(SPECIES, observations=10, **options(server, out, fast_limits))
    assert first.photos_failed == 1 and first.photos_missing == 1
    victim = sorted(images(out).iterdir())[0]
    victim.unlink()

    second = await download_species(SPECIES, observations=10, **options(server, out, fast_limits))
    # The flaky photo and the deleted one come back; the 404 is not asked for again.
    assert second.photos_downloaded == 2
    assert second.photos_failed == 0 and second.photos_missing == 1 and second.ok
    saved = saved_files(images(out))
    assert victim.name in saved
    assert len(saved) == len(expected) - 1
    photo_rows = rows(out / "Apis_mellifera_photos.csv")
    assert [r["status"] for r in photo_rows].count("missing") == 1
    assert len(photo_rows) == len({(r["observation_id"], r["position"]) for r in photo_rows})


async def test_start_id_is_a_lower_bound(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    ordered = sorted(o.id for o in server.dataset.observations_of(SPECIES))
    start = ordered[20]
    out = tmp_path / "out"
    result = await download_species(
        SPECIES, observations=5, start_id=start, **options(server, out, fast_limits)
    )
    assert result.observations == 5
    assert saved_files(images(out)) == expected_files(server, SPECIES, Query(), 5, start_id=start)
    assert all(int(r["observation_id"]) > start for r in rows(out / "Apis_mellifera_metadata.csv"))


async def test_a_taxon_id_column_skips_name_resolution_and_hostile_names_stay_inside(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    taxon = server.dataset.species(SPECIES)
    out = tmp_path / "out"
    result = await download_all(
        [SpeciesEntry("../../escape/../x", taxon_id=taxon.id)],
        observations=3,
        **options(server, out, fast_limits),
    )
    assert result.ok
    assert [r.path for r in server.log.records("api") if r.path.startswith("/v1/taxa")] == [
        f"/v1/taxa/{taxon.id}"
    ]
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "limits" not in str(p)]
    assert written and all(out in p.parents for p in written)
    assert not (tmp_path / "escape").exists()


async def test_hostile_logins_never_write_outside_the_folder(
    tmp_path: Path, fast_limits: LimitSettings
) -> None:
    dataset = build_dataset({SPECIES: 40}, seed=11, options=DatasetOptions(hostile_users=True))
    out = tmp_path / "deep" / "out"
    async with FakeInatServer(dataset) as server:
        result = await download_species(
            SPECIES, observations=40, **options(server, out, fast_limits)
        )
        assert result.ok
        expected = expected_files(server, SPECIES, Query(), 40)
    assert saved_files(images(out)) == expected
    everything = [p for p in tmp_path.rglob("*") if "limits" not in str(p)]
    assert all(p == out.parent or out in p.parents or p == out for p in everything)
    assert all(len(p.name.encode()) < 255 for p in everything)


async def test_malformed_answers_fail_one_species_and_the_others_go_on(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    # Species are walked side by side: spoil the one species' searches, whatever the order.
    taxon = server.dataset.species(SPECIES)
    server.faults.fail_api(
        FaultKind.MALFORMED_JSON,
        times=FAST_RETRY.attempts,
        path="/v1/observations",
        query=f"taxon_id={taxon.id}&",
    )
    result = await download_all(
        [SPECIES, "Mantis religiosa"],
        observations=3,
        **options(server, tmp_path / "o", fast_limits),
    )
    bad, good = result.species
    assert bad.error is not None and "not JSON" in bad.error and SPECIES in bad.error
    assert good.ok and good.photos_downloaded > 0
    assert result.exit_code == 1


async def test_an_unreachable_api_is_a_clear_error(
    tmp_path: Path, fast_limits: LimitSettings
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await download_species(
        SPECIES,
        api_url=f"http://127.0.0.1:{port}/v1",
        out_dir=tmp_path / "out",
        limits=fast_limits,
        retry=FAST_RETRY,
    )
    assert result.error is not None
    assert "cannot connect" in result.error and f"127.0.0.1:{port}" in result.error
    assert not result.ok


class FullDisk(PhotoFiles):
    """A disk that takes the first bytes of a file, then has no space left."""

    def create(self, path: Path) -> PartHandle:
        handle = super().create(path)
        handle.write(b"\xff\xd8 the first bytes")
        return _NoSpace(handle)


class _NoSpace:
    def __init__(self, handle: PartHandle) -> None:
        self._handle = handle

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        self._handle.close()


async def test_a_full_disk_stops_with_a_clear_error_and_leaves_no_partial_file(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    out = tmp_path / "out"
    await download_species(SPECIES, observations=3, **options(server, out, fast_limits))
    done_before = saved_files(images(out))

    with pytest.raises(StorageError, match="No space left on device"):
        await download_species(
            SPECIES, observations=8, files=FullDisk(), **options(server, out, fast_limits)
        )
    assert saved_files(images(out)) == done_before
    assert not list(out.rglob("*.part"))
    # The state is consistent: a rerun with space again finishes the job exactly.
    final = await download_species(SPECIES, observations=8, **options(server, out, fast_limits))
    assert final.ok
    assert saved_files(images(out)) == expected_files(server, SPECIES, Query(), 8)


async def test_a_photo_renamed_into_place_but_not_recorded_is_not_fetched_again(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    """kill -9 between the rename and the store's commit: the final name proves it is whole."""
    out = tmp_path / "out"
    first = await download_species(SPECIES, observations=6, **options(server, out, fast_limits))
    with ResumeStore.open(out) as store:
        done = store.photos(SPECIES, DONE)
        for record in done:
            store.mark_pending(record)
    before = saved_files(images(out))
    fetched = len(server.log.records("photo"))
    again = await download_species(SPECIES, observations=6, **options(server, out, fast_limits))
    assert len(server.log.records("photo")) == fetched
    assert again.photos_downloaded == 0
    assert again.photos_already_done == first.photos_downloaded == len(done)
    assert saved_files(images(out)) == before
    with ResumeStore.open(out) as store:
        assert [(r.file_name, r.sha256) for r in store.photos(SPECIES)] == [
            (r.file_name, r.sha256) for r in done
        ]


async def test_a_resumed_species_reports_the_skips_of_an_uninterrupted_run(
    tmp_path: Path, fast_limits: LimitSettings
) -> None:
    """Skips (license, placeholders, ...) are kept with the pages: a dataset grown over
    three runs, and a rerun with nothing left to do, report what one run reports."""
    dataset = build_dataset(
        {SPECIES: 60},
        seed=11,
        options=DatasetOptions(placeholder_rate=0.3, license_mismatch_rate=0.5),
    )
    fields = (
        "skipped_license",
        "skipped_placeholder",
        "skipped_invalid",
        "skipped_too_many",
        "skipped_observations",
    )

    def skips(result: object) -> dict[str, int]:
        return {name: getattr(result, name) for name in fields}

    async with FakeInatServer(dataset) as server:
        whole = await download_species(
            SPECIES,
            observations=50,
            license="cc-by-nc",
            **options(server, tmp_path / "a", fast_limits),
        )
        out = tmp_path / "b"
        for count in (5, 12, 50, 50):  # the last one has nothing left to do
            stepped = await download_species(
                SPECIES,
                observations=count,
                license="cc-by-nc",
                **options(server, out, fast_limits),
            )
    assert whole.skipped_placeholder > 0
    assert whole.skipped_license > 0
    assert stepped.photos_downloaded == 0
    assert skips(stepped) == skips(whole)
