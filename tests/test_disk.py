"""The disk threads: one thread, more only when work waits long (a slow disk)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError

import pytest

from inat_async.disk import DiskThreads


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
