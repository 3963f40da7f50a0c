"""Shared fixtures: an isolated limits state folder per test, fast limits, a fake iNaturalist."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from inat_async.limits import LimitSettings
from inat_async.testing import FakeDataset, FakeInatServer, build_dataset


@pytest.fixture(autouse=True)
def _isolated_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test ever reads or spends the real user's budgets."""
    state = tmp_path / "limits-state"
    monkeypatch.setenv("INAT_ASYNC_STATE_DIR", str(state))
    monkeypatch.delenv("INAT_API_URL", raising=False)
    return state


@pytest.fixture(autouse=True, scope="session")
def _no_implicit_event_loop() -> None:
    """Before any async test has run, looptime's hook would make a loop nobody closes."""
    asyncio.set_event_loop(None)


@pytest.fixture(autouse=True)
def _close_loop_left_by_looptime(request: pytest.FixtureRequest) -> Iterator[None]:
    """looptime's pytest hook calls ``get_event_loop()`` for sync tests too, which makes a
    loop nobody closes; its ResourceWarning then fails whichever test runs the GC next."""
    yield
    if asyncio.iscoroutinefunction(request.function):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            return
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def fast_limits(tmp_path: Path) -> LimitSettings:
    """Limits that never slow a test down (allowed because the fake server is not iNaturalist)."""
    return LimitSettings(
        requests_per_minute=100_000, burst=10_000, state_dir=tmp_path / "fast-limits"
    )


@pytest.fixture
def dataset() -> FakeDataset:
    return build_dataset({"Apis mellifera": 60, "Mantis religiosa": 25}, seed=7)


@pytest.fixture
async def server(dataset: FakeDataset) -> AsyncIterator[FakeInatServer]:
    async with FakeInatServer(dataset) as fake:
        yield fake
