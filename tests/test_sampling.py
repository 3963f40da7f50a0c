"""Sampling end to end: caps per observer and per observation, and seeded spread samples.

The expected selections are computed from the fake dataset alone.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support import FAST_RETRY

from inat_async import Settings, download_all, plan_run
from inat_async.errors import OutputConflictError, UsageError
from inat_async.events import Event, PageFetched
from inat_async.limits import LimitSettings
from inat_async.sampling import targets
from inat_async.selection import Sampling
from inat_async.species import SpeciesEntry
from inat_async.testing import FakeDataset, FakeInatServer, FakeObservation, build_dataset

SPECIES = "Apis mellifera"


@pytest.fixture(scope="module")
def dataset() -> FakeDataset:
    return build_dataset({SPECIES: 160, "Mantis religiosa": 40}, seed=13)


@pytest.fixture
async def fake(dataset: FakeDataset) -> AsyncIterator[FakeInatServer]:
    async with FakeInatServer(dataset) as server:
        yield server


def candidates(dataset: FakeDataset) -> list[FakeObservation]:
    """What the walk sees: research grade, with photos, ascending ids."""
    return [
        o for o in dataset.observations_of(SPECIES) if o.photos and o.quality_grade == "research"
    ]


def rows(out: Path, kind: str = "metadata") -> list[dict[str, str]]:
    with (out / f"Apis_mellifera_{kind}.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def ids(out: Path) -> list[int]:
    return [int(row["observation_id"]) for row in rows(out)]


async def run(
    fake: FakeInatServer, out: Path, limits: LimitSettings, observations: int, **options: Any
) -> None:
    await download_all(
        [SPECIES],
        observations=observations,
        out_dir=out,
        api_url=fake.api_url,
        limits=limits,
        retry=FAST_RETRY,
        size="small",
        **options,
    )


def test_sampling_is_validated() -> None:
    for bad in (
        {"sample": "newest"},
        {"per_observer": 0},
        {"photos_per_observation": -1},
        {"seed": -3},
    ):
        with pytest.raises(UsageError):
            Sampling(**bad)
    assert Sampling().describe() == {}, "the default keeps older datasets' identity"
    assert Sampling("spread", 4, 2, 1).describe() == {
        "sample": "spread",
        "seed": "4",
        "per_observer": "2",
        "photos_per_observation": "1",
    }


def test_targets_fill_the_range_evenly_and_extend_without_change() -> None:
    first = list(zip(range(40), targets(7, 1000, 1999), strict=False))
    again = list(zip(range(60), targets(7, 1000, 1999), strict=False))
    assert again[:40] == first
    points = sorted(t for _, t in first)
    assert all(999 <= t <= 1999 for t in points)
    # 40 points in 1000 ids: no gap wider than a few times the mean gap.
    assert max(b - a for a, b in itertools.pairwise(points)) < 3 * 1000 / 40
    assert list(zip(range(5), targets(8, 1000, 1999), strict=False)) != first[:5]


async def test_per_observer_cap(
    fake: FakeInatServer, dataset: FakeDataset, fast_limits: LimitSettings, tmp_path: Path
) -> None:
    await run(fake, tmp_path, fast_limits, 40, sampling=Sampling(per_observer=2))

    def capped(count: int) -> list[int]:
        taken: list[int] = []
        seen: dict[int, int] = {}
        for obs in candidates(dataset):
            if len(taken) == count:
                break
            if seen.get(obs.user.id, 0) < 2:
                seen[obs.user.id] = seen.get(obs.user.id, 0) + 1
                taken.append(obs.id)
        return taken

    oldest = candidates(dataset)[:40]
    assert any(sum(o.user == p.user for o in oldest) > 2 for p in oldest), "the cap must bite"
    assert ids(tmp_path) == capped(40)
    # A larger -o continues under the same cap, counting what the dataset holds.
    await run(fake, tmp_path, fast_limits, 70, sampling=Sampling(per_observer=2))
    assert ids(tmp_path) == capped(70)
    by_observer: dict[str, int] = {}
    for row in rows(tmp_path):
        by_observer[row["observer_id"]] = by_observer.get(row["observer_id"], 0) + 1
    assert max(by_observer.values()) == 2
    with pytest.raises(OutputConflictError, match="per_observer '2' before, '3' now"):
        await run(fake, tmp_path, fast_limits, 60, sampling=Sampling(per_observer=3))


async def test_photos_per_observation(
    fake: FakeInatServer, dataset: FakeDataset, fast_limits: LimitSettings, tmp_path: Path
) -> None:
    await run(fake, tmp_path, fast_limits, 30, sampling=Sampling(photos_per_observation=1))
    photos = rows(tmp_path, "photos")
    by_observation: dict[int, list[int]] = {}
    for row in photos:
        by_observation.setdefault(int(row["observation_id"]), []).append(int(row["position"]))
    chosen = candidates(dataset)[:30]
    assert any(len(o.real_photos) > 1 for o in chosen), "the cap must bite"
    for obs in chosen:
        first = next((i for i, p in enumerate(obs.photos) if p.placeholder is None), None)
        assert by_observation.get(obs.id, []) == ([] if first is None else [first])
    files = list((tmp_path / "Apis_mellifera_images").iterdir())
    assert len(files) == len(photos)


def spread_range(dataset: FakeDataset) -> tuple[int, int]:
    found = candidates(dataset)
    return found[0].id, found[-1].id


async def test_spread_covers_the_range_and_is_reproducible(
    fake: FakeInatServer, dataset: FakeDataset, fast_limits: LimitSettings, tmp_path: Path
) -> None:
    spread = Sampling("spread", seed=3)
    await run(fake, tmp_path / "a", fast_limits, 12, sampling=spread)
    chosen = ids(tmp_path / "a")
    oldest = [o.id for o in candidates(dataset)]
    low, high = spread_range(dataset)
    assert len(chosen) == 12 and set(chosen) <= set(oldest)
    assert chosen != oldest[:12]
    # Spread over the whole range: every quarter of it holds some of the sample.
    quarters = {min(3, (i - low) * 4 // (high - low + 1)) for i in chosen}
    assert quarters == {0, 1, 2, 3}
    # Same seed, same sample; another seed, another one.
    await run(fake, tmp_path / "b", fast_limits, 12, sampling=spread)
    assert ids(tmp_path / "b") == chosen
    await run(fake, tmp_path / "c", fast_limits, 12, sampling=Sampling("spread", seed=4))
    assert ids(tmp_path / "c") != chosen
    # A larger -o keeps the sample and extends it, as a fresh run of that size picks.
    await run(fake, tmp_path / "a", fast_limits, 20, sampling=spread)
    await run(fake, tmp_path / "d", fast_limits, 20, sampling=spread)
    assert set(chosen) < set(ids(tmp_path / "a")) and ids(tmp_path / "a") == ids(tmp_path / "d")
    # Everything there is, and no more: the sample ends when the species does.
    await run(fake, tmp_path / "e", fast_limits, 1000, sampling=spread)
    assert ids(tmp_path / "e") == oldest


async def test_spread_survives_a_kill(
    fake: FakeInatServer, fast_limits: LimitSettings, tmp_path: Path
) -> None:
    spread = Sampling("spread", seed=9, per_observer=3)
    await run(fake, tmp_path / "whole", fast_limits, 25, sampling=spread)
    task: asyncio.Task[Any] | None = None
    picks = 0

    def on_event(event: Event) -> None:
        nonlocal picks
        if isinstance(event, PageFetched):
            picks += 1
            if picks == 7 and task is not None:
                task.cancel()

    task = asyncio.create_task(
        download_all(
            [SPECIES],
            observations=25,
            out_dir=tmp_path / "killed",
            api_url=fake.api_url,
            limits=fast_limits,
            retry=FAST_RETRY,
            size="small",
            sampling=spread,
            on_event=on_event,
        )
    )
    with pytest.raises(asyncio.CancelledError):
        await task
    stopped = ids(tmp_path / "killed")
    assert 0 < len(stopped) < 25
    await run(fake, tmp_path / "killed", fast_limits, 25, sampling=spread)
    assert ids(tmp_path / "killed") == ids(tmp_path / "whole")
    counts: dict[str, int] = {}
    for row in rows(tmp_path / "killed"):
        counts[row["observer_id"]] = counts.get(row["observer_id"], 0) + 1
    assert max(counts.values()) <= 3


async def test_dry_run_counts_what_a_spread_costs(
    fake: FakeInatServer, fast_limits: LimitSettings, tmp_path: Path
) -> None:
    settings = Settings.create(
        observations=15,
        out_dir=tmp_path,
        api_url=fake.api_url,
        retry=FAST_RETRY,
        sampling=Sampling("spread", seed=1),
    )
    oldest = Settings.create(observations=15, out_dir=tmp_path, api_url=fake.api_url)
    entries = [SpeciesEntry(SPECIES)]
    plan = await plan_run(entries, settings=settings, limits=fast_limits)
    cheap = await plan_run(entries, settings=oldest, limits=fast_limits)
    assert plan.species[0].requests == 1 + 2 + 15  # taxon, id range, one search per pick
    assert cheap.species[0].requests == 1 + 1
    fake.log.clear()
    await download_all(entries, settings=settings, limits=fast_limits)
    sent = [r for r in fake.log.records() if r.path.startswith("/v1/")]
    assert len(sent) >= plan.species[0].requests
    assert not (tmp_path / "never").exists()
