"""The disk threads: one thread, more only when work waits long (a slow disk); in a run,
saves overlap the next download and the threads end with the run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError
from pathlib import Path

import pytest
from support import FAST_RETRY

from inat_async import download_species
from inat_async.disk import DiskThreads
from inat_async.fetch import PhotoFiles
from inat_async.limits import LimitSettings
from inat_async.testing import FakeInatServer
from inat_async.testing.log import RequestRecord


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def disk(clock: Clock) -> Iterator[DiskThreads]:
    made = DiskThreads(max_threads=3, grow_after=0.25, clock=clock)
    yield made
    made.shutdown(wait=True)


def test_work_runs_on_one_thread_and_returns_or_raises(disk: DiskThreads) -> None:
    names = [disk.submit(lambda: threading.current_thread().name).result() for _ in range(20)]
    assert set(names) == {"inat-async-disk-0"}
    assert disk.threads == 1

    def boom() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        disk.submit(boom).result()
    assert disk.submit(sum, [1, 2, 3]).result() == 6  # the thread survived the error


def test_no_thread_before_the_first_work() -> None:
    made = DiskThreads()
    assert made.threads == 0
    made.shutdown()


def test_work_that_waited_long_adds_a_thread_up_to_the_most(
    disk: DiskThreads, clock: Clock
) -> None:
    """A slow disk: each piece of work holds its thread while the next ones wait."""
    release = [threading.Event() for _ in range(5)]
    started = [threading.Event() for _ in range(5)]

    def slow(n: int) -> int:
        started[n].set()
        release[n].wait(timeout=10)
        return n

    futures = [disk.submit(slow, 0)]
    assert started[0].wait(timeout=10)
    futures += [disk.submit(slow, n) for n in range(1, 5)]
    clock.now = 0.2  # waited less than grow_after: no new thread
    release[0].set()
    assert started[1].wait(timeout=10)
    assert disk.threads == 1
    clock.now = 1.0  # the next ones waited a second: each one taken adds a thread
    release[1].set()
    assert started[2].wait(timeout=10) and started[3].wait(timeout=10)
    for event in release:
        event.set()
    assert [f.result(timeout=10) for f in futures] == [0, 1, 2, 3, 4]
    assert disk.threads == 3  # never more than max_threads


def test_work_cancelled_before_it_started_never_runs(disk: DiskThreads) -> None:
    gate, ran = threading.Event(), []
    first = disk.submit(gate.wait, 10)
    second = disk.submit(ran.append, "second")
    assert second.cancel()
    gate.set()
    assert first.result(timeout=10)
    assert disk.submit(ran.append, "third").result(timeout=10) is None
    with pytest.raises(CancelledError):
        second.result()
    assert ran == ["third"]


def test_shutdown_finishes_queued_work_then_refuses_more(clock: Clock) -> None:
    made = DiskThreads(clock=clock)
    done: list[int] = []
    futures = [made.submit(done.append, n) for n in range(10)]
    made.shutdown(wait=True)
    assert all(f.done() for f in futures) and done == list(range(10))
    with pytest.raises(RuntimeError, match="after shutdown"):
        made.submit(done.append, 11)


def test_shutdown_can_drop_queued_work(clock: Clock) -> None:
    made = DiskThreads(clock=clock)
    gate = threading.Event()
    running = made.submit(gate.wait, 10)
    queued = made.submit(int, "1")
    made.shutdown(wait=False, cancel_futures=True)
    gate.set()
    assert running.result(timeout=10)
    assert queued.cancelled()


def test_at_least_one_thread() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DiskThreads(max_threads=0)


# -- in a run ---------------------------------------------------------------------------------


class HeldRename(PhotoFiles):
    """Holds the first photo's rename (its save) until the test lets it go."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.released_in_time: bool | None = None

    def replace(self, source: Path, target: Path) -> None:
        if self.released_in_time is None:
            self.released_in_time = self.release.wait(timeout=5)
        super().replace(source, target)


async def test_a_worker_fetches_its_next_photo_while_the_last_one_is_saved(
    server: FakeInatServer,
    tmp_path: Path,
    fast_limits: LimitSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One worker: its second photo is asked for while the first one's save is held."""
    files = HeldRename()
    log_open = server.log.open

    def open_record(record: RequestRecord) -> RequestRecord:
        opened = log_open(record)
        if len(server.log.records("photo")) == 2:  # the second photo is asked for
            files.release.set()
        return opened

    monkeypatch.setattr(server.log, "open", open_record)
    result = await download_species(
        "Apis mellifera",
        observations=3,
        workers=1,
        files=files,
        api_url=server.api_url,
        out_dir=tmp_path / "out",
        limits=fast_limits,
        retry=FAST_RETRY,
    )
    assert files.released_in_time is True
    assert result.ok and result.photos_downloaded >= 2
    assert not server.log.refetched_photos()


async def test_the_disk_threads_end_with_the_run(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    result = await download_species(
        "Apis mellifera",
        observations=5,
        workers=4,
        api_url=server.api_url,
        out_dir=tmp_path / "out",
        limits=fast_limits,
        retry=FAST_RETRY,
    )
    assert result.photos_downloaded > 0
    disk = [t for t in threading.enumerate() if t.name.startswith("inat-async-disk-")]
    for thread in disk:
        thread.join(timeout=5)
    assert not [t for t in disk if t.is_alive()]
