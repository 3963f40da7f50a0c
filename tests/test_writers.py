"""The writers seam and the resume store's work off the loop: CSVs written in a thread, only
when the species changed, with the user's umask; reruns reconciled in a thread; per-photo
statuses committed in batches, a locked store waited for on the loop's timer."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import FAST_RETRY
from test_resume_store import record

from inat_async import StorageError, download_species
from inat_async.limits import LimitSettings
from inat_async.models import Taxon
from inat_async.options import Query
from inat_async.resume import DONE, PENDING, PhotoRecord, ResumeStore, StatusBatch, done_change
from inat_async.testing import FakeInatServer
from inat_async.writers.csvs import CsvWriter

SPECIES = "Apis mellifera"


def options(server: FakeInatServer, out: Path, limits: LimitSettings) -> dict[str, object]:
    return {"api_url": server.api_url, "out_dir": out, "limits": limits, "retry": FAST_RETRY}


def csvs(out: Path) -> list[Path]:
    return [out / "Apis_mellifera_metadata.csv", out / "Apis_mellifera_photos.csv"]


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask_027")
async def test_csvs_follow_the_umask_like_the_photos(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    out = tmp_path / "out"
    await download_species(SPECIES, observations=3, **options(server, out, fast_limits))
    photo = next((out / "Apis_mellifera_images").iterdir())
    modes = {stat.S_IMODE(p.stat().st_mode) for p in [*csvs(out), photo]}
    assert modes == {0o640}  # 0666 less the umask; mkstemp would have made 0600


async def test_csvs_are_written_off_the_loop_and_only_when_the_species_changed(
    server: FakeInatServer,
    tmp_path: Path,
    fast_limits: LimitSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    threads: list[bool] = []
    original = CsvWriter.write

    def watched(self: CsvWriter, store: ResumeStore, species: str) -> None:
        threads.append(threading.current_thread() is threading.main_thread())
        original(self, store, species)

    monkeypatch.setattr(CsvWriter, "write", watched)
    await download_species(SPECIES, observations=4, **options(server, out, fast_limits))
    assert threads == [False]
    written = [p.read_bytes() for p in csvs(out)]
    stamps = [p.stat().st_mtime_ns for p in csvs(out)]

    # Nothing changed: no rewrite.
    await download_species(SPECIES, observations=4, **options(server, out, fast_limits))
    assert threads == [False]
    assert [p.stat().st_mtime_ns for p in csvs(out)] == stamps

    # A CSV deleted by the user comes back, byte for byte.
    csvs(out)[1].unlink()
    await download_species(SPECIES, observations=4, **options(server, out, fast_limits))
    assert threads == [False, False]
    assert [p.read_bytes() for p in csvs(out)] == written

    # More observations: the species changed, the CSVs follow.
    await download_species(SPECIES, observations=6, **options(server, out, fast_limits))
    assert len(threads) == 3
    assert len(csvs(out)[0].read_text(encoding="utf-8").splitlines()) == 1 + 6


async def test_a_rerun_reconciles_off_the_loop_and_adopts_only_whole_images(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    """A pending photo with a file under its final name: a whole image is adopted (renamed
    before its batch committed); an HTML page squatting there is downloaded over."""
    out = tmp_path / "out"
    await download_species(SPECIES, observations=4, **options(server, out, fast_limits))
    with ResumeStore.open(out) as store:
        done = store.photos(SPECIES, DONE)
        for record in done:
            store.mark_pending(record)
    images = out / "Apis_mellifera_images"
    assert done[0].file_name is not None
    squatted = images / done[0].file_name
    whole = squatted.read_bytes()
    squatted.write_bytes(b"<html>login</html>")
    fetched = len(server.log.records("photo"))

    again = await download_species(SPECIES, observations=4, **options(server, out, fast_limits))
    assert again.photos_downloaded == 1 and again.photos_already_done == len(done) - 1
    assert len(server.log.records("photo")) == fetched + 1
    assert squatted.read_bytes() == whole
    with ResumeStore.open(out) as store:
        assert not store.photos(SPECIES, PENDING)
        assert [(r.file_name, r.sha256) for r in store.photos(SPECIES)] == [
            (r.file_name, r.sha256) for r in done
        ]


def _stored_photos(tmp_path: Path) -> tuple[ResumeStore, list[PhotoRecord]]:
    store = ResumeStore.open(tmp_path, Query())
    store.set_taxon("A b", Taxon(1, "A b"), None)
    return store, record(store, "A b", 1, 2)


async def test_a_locked_store_is_waited_for_on_the_loop_timer(tmp_path: Path) -> None:
    store, records = _stored_photos(tmp_path)
    batch = StatusBatch(store, size=2)
    for n, photo in enumerate(records):
        batch.add(done_change(photo, f"f{n}.jpg", 10, "ab"))
    assert batch.due

    other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another connection holds the write lock

    def release() -> None:
        time.sleep(0.3)
        other.execute("COMMIT")

    lags: list[float] = []

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            lags.append(loop.time() - before - 0.005)

    releaser = threading.Thread(target=release)
    tick = asyncio.create_task(ticker())
    releaser.start()
    await batch.flush()
    tick.cancel()
    releaser.join()
    other.close()
    assert len(batch) == 0
    # The loop kept turning while the store was locked: no SQLite sleep on its thread.
    assert len(lags) > 10 and max(lags) < 0.1
    assert [r.status for r in store.photos("A b")] == [DONE] * 4
    store.close()


async def test_a_store_locked_for_too_long_is_a_storage_error(tmp_path: Path) -> None:
    store, records = _stored_photos(tmp_path)
    batch = StatusBatch(store, patience=0.05)
    batch.add(done_change(records[0], "f.jpg", 10, "ab"))
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StorageError, match="stayed locked"):
        await batch.flush()
    other.execute("ROLLBACK")
    other.close()
    assert len(batch) == 1  # kept: nothing is lost, a later flush commits it
    await batch.flush()
    assert store.photos("A b", DONE)[0].file_name == "f.jpg"
    store.close()
