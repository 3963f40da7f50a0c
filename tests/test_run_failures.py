"""How a run's failures surface: errors as themselves, bugs never hidden, a stop stays a stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support import FAST_RETRY

from inat_async import StorageError, download_all
from inat_async.limits import LimitSettings
from inat_async.pipeline import _Job, _Run
from inat_async.testing import FakeInatServer
from inat_async.writers.csvs import CsvWriter

SPECIES = "Apis mellifera"


def options(server: FakeInatServer, out: Path, limits: LimitSettings, **extra: object) -> dict:
    return {
        "api_url": server.api_url,
        "out_dir": out,
        "limits": limits,
        "retry": FAST_RETRY,
        **extra,
    }


async def test_a_bug_raised_beside_a_deliberate_error_is_not_dropped(
    server: FakeInatServer,
    tmp_path: Path,
    fast_limits: LimitSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One worker hits a full disk; another, stopping, hits a bug: both reach the caller."""
    second_started = asyncio.Event()
    calls = 0

    async def broken(self: _Run, job: _Job) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await second_started.wait()
            raise StorageError("cannot write: No space left on device")
        second_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("a bug in the clean-up") from None

    monkeypatch.setattr(_Run, "_receive", broken)
    with pytest.raises(BaseExceptionGroup) as caught:
        await download_all(
            [SPECIES], observations=10, workers=2, **options(server, tmp_path / "out", fast_limits)
        )
    assert caught.group_contains(RuntimeError, match="a bug in the clean-up")
    assert caught.group_contains(StorageError)


async def test_several_deliberate_errors_raise_the_first_as_itself(
    server: FakeInatServer,
    tmp_path: Path,
    fast_limits: LimitSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    both_started = asyncio.Barrier(2)

    async def full(self: _Run, job: _Job) -> None:
        try:
            await both_started.wait()
        except asyncio.CancelledError:
            raise StorageError(f"cannot write photo {job.record.photo_id}") from None
        raise StorageError("cannot write: No space left on device")

    monkeypatch.setattr(_Run, "_receive", full)
    with pytest.raises(StorageError, match="No space left") as caught:
        await download_all(
            [SPECIES], observations=10, workers=2, **options(server, tmp_path / "out", fast_limits)
        )
    notes = getattr(caught.value, "__notes__", [])
    assert len(notes) == 1 and notes[0].startswith("also: cannot write")


async def test_a_storage_error_while_stopping_does_not_hide_the_stop(
    server: FakeInatServer,
    tmp_path: Path,
    fast_limits: LimitSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C arrives as a worker finishes a species on a full disk: still a stop (exit 130)."""
    main: asyncio.Task[object] | None = None
    writes = 0

    loop = asyncio.get_running_loop()

    def full_while_stopping(self: CsvWriter, *args: object, **kwargs: object) -> None:
        nonlocal writes
        writes += 1
        assert main is not None
        # The CLI's SIGINT handler does exactly this (the CSVs are written in a thread).
        loop.call_soon_threadsafe(main.cancel)
        raise StorageError("cannot write the CSV files: No space left on device")

    monkeypatch.setattr(CsvWriter, "write", full_while_stopping)
    main = asyncio.create_task(
        download_all(
            [SPECIES], observations=10, workers=2, **options(server, tmp_path / "out", fast_limits)
        )
    )
    with pytest.raises(asyncio.CancelledError):
        await main
    assert writes >= 1
