"""Processes opening the same fresh store at the same instant all succeed.

SQLite does not call the busy handler while it switches a file to WAL, so without a
retry one of two runs started together with a new state folder failed with "database
is locked" (seen about once in eight rounds of four openers).
"""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from inat_async.limitstore import FILENAME, LimitStore
from inat_async.resume import ResumeStore

OPENERS = 4
ROUNDS = 40


def _open_limits(path: str, barrier: Barrier) -> None:
    barrier.wait()
    LimitStore(path).close()


def _open_resume(path: str, barrier: Barrier) -> None:
    barrier.wait()
    ResumeStore.open(Path(path)).close()


@pytest.mark.parametrize("opener", [_open_limits, _open_resume], ids=["limits", "resume"])
def test_concurrent_opens_of_a_fresh_store_all_succeed(tmp_path: Path, opener: object) -> None:
    ctx = multiprocessing.get_context("fork")
    started = time.monotonic()
    for round_ in range(ROUNDS):
        folder = tmp_path / str(round_)
        folder.mkdir()
        path = folder / FILENAME if opener is _open_limits else folder
        barrier = ctx.Barrier(OPENERS)
        processes = [
            ctx.Process(target=opener, args=(str(path), barrier))  # type: ignore[arg-type]
            for _ in range(OPENERS)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(10)
        assert [p.exitcode for p in processes] == [0] * OPENERS, f"round {round_}"
        if time.monotonic() - started > 4:  # keep the suite fast on a loaded machine
            break
