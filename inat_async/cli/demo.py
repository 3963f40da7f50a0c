"""The offline demo: the built-in fake iNaturalist on loopback, and a small real run against it.

``inat-async demo`` uses :func:`demo_environment` to start the fake server (the
three species of the original tool's example, with a little photo latency so the
live display can be watched for a few seconds) and throwaway limits (a temporary
state folder, so the user's real budgets are neither read nor spent), then runs
the ordinary pipeline against it. Nothing leaves the machine.

>>> async with demo_environment() as demo:  # doctest: +SKIP
...     result = await download_all(demo.species, settings=demo.settings(out), limits=demo.limits)
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from ..limits import Limits, LimitSettings
from ..settings import DEFAULT_WORKERS, Settings
from ..species import SpeciesEntry
from ..testing import DEMO_COUNTS, FakeInatServer, demo_dataset

#: Observations per species: about 200 photos in all, a few seconds with the latency below.
DEMO_OBSERVATIONS = 30
#: Seconds each photo answer waits, as a far-away photo host would.
DEMO_PHOTO_LATENCY = 0.25
#: Small budgets, so that the budget bars visibly move; no pace within the hour (the
#: whole demo fits in the burst), the real request pace (60 a minute).
DEMO_LIMITS = LimitSettings(hourly_bytes=20_000_000, daily_bytes=80_000_000, byte_burst=1.0)


@dataclass(frozen=True, slots=True)
class Demo:
    api_url: str
    limits: Limits
    species: tuple[SpeciesEntry, ...]

    def settings(self, out_dir: Path, *, workers: int = DEFAULT_WORKERS) -> Settings:
        return Settings.create(
            observations=DEMO_OBSERVATIONS,
            quality="research",
            license="any",
            size="medium",
            out_dir=out_dir,
            workers=workers,
            api_url=self.api_url,
        )


@asynccontextmanager
async def demo_environment(photo_latency: float = DEMO_PHOTO_LATENCY) -> AsyncIterator[Demo]:
    """A running fake iNaturalist and limits in a temporary state folder, both removed after."""
    with tempfile.TemporaryDirectory(prefix="inat-async-demo-limits-") as state:
        limits = Limits(dataclasses.replace(DEMO_LIMITS, state_dir=Path(state)))
        try:
            async with FakeInatServer(demo_dataset(), photo_latency=photo_latency) as server:
                yield Demo(
                    server.api_url, limits, tuple(SpeciesEntry(name) for name in DEMO_COUNTS)
                )
        finally:
            limits.close()
