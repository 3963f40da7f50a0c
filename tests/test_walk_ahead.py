"""The walk runs ahead of the workers: taxa from the start, pages across species, bounded.

A paced in-memory source stands for a slow API (every request takes a slot of the
real shared limits, then ``latency`` seconds of loop time) and downloads take loop
time too, so the whole run is measured on ``looptime``'s virtual clock: no test
sleeps for real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from inat_async import TaxonMatch, TaxonNotFoundError
from inat_async.errors import ApiError
from inat_async.events import (
    Event,
    PageFetched,
    SpeciesFinished,
    SpeciesStarted,
    TaxonResolved,
)
from inat_async.limits import Limits, LimitSettings, LoopClock
from inat_async.models import Observation, ObservationPage, Taxon
from inat_async.options import Query
from inat_async.pipeline import API_LANES, _Job, _Run
from inat_async.plan import plan_run
from inat_async.results import RunResult
from inat_async.resume import ResumeStore
from inat_async.settings import Settings
from inat_async.sources import ObservationCount
from inat_async.species import SpeciesEntry

T0 = 1_000_000.0


@dataclass
class PacedSource:
    """``observations`` per species, ``per_page`` a page, ``photos`` each; every request
    paced by ``limits`` and answered after ``latency`` seconds."""

    limits: Limits
    species: list[str]
    observations: int
    per_page: int = 200
    photos: int = 1
    latency: float = 2.0
    #: Observations of some species, when not ``observations``.
    sizes: dict[str, int] = field(default_factory=dict)
    #: Species whose second page fails (after its retries, as the client would say).
    failing: frozenset[str] = frozenset()
    #: (kind, species, started, finished) of every request.
    requests: list[tuple[str, str, float, float]] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    async def _ask(self, kind: str, species: str) -> None:
        await self.limits.request()
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        self.requests.append((kind, species, started, loop.time()))

    def _taxon(self, name: str) -> Taxon:
        return Taxon(id=1000 + self.species.index(name), name=name)

    async def resolve_taxon(self, name: str) -> TaxonMatch:
        await self._ask("taxon", name)
        if name not in self.species:
            raise TaxonNotFoundError(name, [])
        return TaxonMatch(self._taxon(name), None)

    async def taxon_by_id(self, taxon_id: int, *, species: str | None = None) -> Taxon:
        raise AssertionError("not used")

    async def observation_pages(
        self, taxon_id: int, query: Query, *, id_above: int = 0, species: str | None = None
    ) -> AsyncGenerator[ObservationPage, None]:
        name = self.species[taxon_id - 1000]
        base = taxon_id * 100_000
        count = self.sizes.get(name, self.observations)
        ids = [base + n for n in range(1, count + 1) if base + n > id_above]
        asked = 0
        while True:
            await self._ask("page", name)
            asked += 1
            if name in self.failing and asked == 2:
                raise ApiError("the API failed after 4 attempts: HTTP 503", species=name)
            page, ids = ids[: self.per_page], ids[self.per_page :]
            if not page:
                return
            observations = tuple(self._observation(i) for i in page)
            yield ObservationPage(len(page) + len(ids), observations, page[-1], len(page))

    def _observation(self, obs_id: int) -> Observation:
        photos = [
            {"id": obs_id * 10 + n, "url": f"http://127.0.0.1:9/photos/{obs_id * 10 + n}/s.jpg"}
            for n in range(self.photos)
        ]
        parsed = Observation.from_api({"id": obs_id, "user": {"login": "u"}, "photos": photos})
        assert parsed is not None
        return parsed

    async def count(
        self,
        taxon_id: int,
        query: Query,
        *,
        id_above: int = 0,
        sample: int = 0,
        species: str | None = None,
    ) -> ObservationCount:
        name = self.species[taxon_id - 1000]
        await self._ask("count", name)
        observations = [self._observation(taxon_id * 100_000 + n + 1) for n in range(sample)]
        return ObservationCount(self.sizes.get(name, self.observations), tuple(observations))

    async def suggest(self, name: str, offered: tuple[str, ...]) -> tuple[str, ...]:
        return ()


@pytest.fixture
def limits(tmp_path: Path) -> Iterator[Limits]:
    """iNaturalist's own pace (a burst of 5, then one request a second) on loop time."""
    made = Limits(LimitSettings(state_dir=tmp_path / "state"), clock=LoopClock(epoch=T0))
    yield made
    made.close()


@dataclass
class Downloads:
    """Stands for the photo fetcher: each photo takes ``seconds`` of loop time."""

    seconds: float
    #: Photos waiting for a worker, seen each time a worker takes one.
    waiting: list[int] = field(default_factory=list)


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> Downloads:
    state = Downloads(0.2)

    async def download(self: _Run, job: _Job) -> None:
        # Done and recorded here: nothing is left for the worker to save.
        await asyncio.sleep(state.seconds)
        self.store.mark_done(job.record, f"{job.record.photo_id}.jpg", 1, "0" * 64)
        job.species.result.photos_downloaded += 1

    monkeypatch.setattr(_Run, "_receive", download)
    return state


async def run(
    source: PacedSource,
    limits: Limits,
    out: Path,
    names: list[str],
    *,
    observations: int,
    workers: int = 4,
    lookahead: int | None = None,
    events: list[Event] | None = None,
) -> RunResult:
    settings = Settings.create(out_dir=out, observations=observations, workers=workers)
    async with aiohttp.ClientSession() as session:
        with ResumeStore.open(out, settings.query) as store:
            walk = _Run(
                settings,
                session,
                limits,
                store,
                (events if events is not None else []).append,
                source=source,
            )
            if lookahead is not None:
                walk.lookahead = lookahead
            return await walk.run([SpeciesEntry(name) for name in names])


@pytest.mark.looptime
async def test_many_small_species_on_a_slow_api_take_what_the_pace_needs(
    tmp_path: Path, limits: Limits, downloads: Downloads
) -> None:
    """8 species of 3 observations, answers in 2 s, photos in 0.2 s: 16 requests, of
    which 5 go at once and 11 one a second; the last answer comes 2 s after it left."""
    names = [f"Species {n}" for n in range(8)]
    source = PacedSource(limits, names, observations=3, latency=2.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await run(source, limits, tmp_path / "out", names, observations=3)
    elapsed = loop.time() - started
    assert all(s.ok and s.photos_downloaded == 3 for s in result.species)
    assert len(source.requests) == 16
    pace_needs = (16 - 5) * 1.0 + 2.0
    # One species after the other, the same run took 33 s (issue 9).
    assert elapsed <= 1.2 * pace_needs, elapsed
    assert 2 <= source.most_in_flight <= API_LANES


@pytest.mark.looptime
async def test_the_walk_stays_within_its_look_ahead_and_keeps_the_list_order(
    tmp_path: Path, limits: Limits, downloads: Downloads
) -> None:
    """Slow workers, a quick API: the walk goes ahead by about the look-ahead, no
    further, and species still start, are walked and finish in the list's order."""
    names = [f"Species {n}" for n in range(10)]
    source = PacedSource(limits, names, observations=20, per_page=5, photos=2, latency=0.5)
    downloads.seconds = 1.0
    events: list[Event] = []

    put_sizes: list[int] = []
    original_put = _Run._enqueue

    def watch(self: _Run, backlog, species, records) -> None:  # type: ignore[no-untyped-def]
        original_put(self, backlog, species, records)
        put_sizes.append(len(backlog))

    mp = pytest.MonkeyPatch()
    mp.setattr(_Run, "_enqueue", watch)
    try:
        result = await run(
            source,
            limits,
            tmp_path / "out",
            names,
            observations=20,
            workers=2,
            lookahead=12,
            events=events,
        )
    finally:
        mp.undo()
    assert [s.name for s in result.species] == names
    assert all(s.ok and s.photos_downloaded == 40 for s in result.species)
    page_photos = 5 * 2
    # Ahead by the look-ahead (a page may land on top of it, one per lane at most)...
    assert 12 <= max(put_sizes) < 12 + API_LANES * page_photos
    # ... and in the list's order: a species opens (taxon, start) after the one before
    # it, its pages come after its start, and it finishes after its last page.
    opened = [e.species for e in events if isinstance(e, TaxonResolved)]
    assert opened == names
    for name in names:
        kinds = [type(e) for e in events if getattr(e, "species", None) == name]
        assert kinds[:2] == [TaxonResolved, SpeciesStarted]
        assert kinds[-1] is SpeciesFinished
        assert set(kinds[2:-1]) <= {PageFetched}
        assert kinds.count(PageFetched) == 4
    finished = [e.species for e in events if isinstance(e, SpeciesFinished)]
    assert finished == names


@pytest.mark.looptime
async def test_taxa_are_resolved_from_the_start_and_an_unknown_name_waits_its_turn(
    tmp_path: Path, limits: Limits, downloads: Downloads
) -> None:
    names = [f"Species {n}" for n in range(6)]
    source = PacedSource(limits, names, observations=4, per_page=2, latency=2.0)
    events: list[Event] = []
    listed = [*names[:3], "Nonexistent beastus", *names[3:]]
    result = await run(source, limits, tmp_path / "out", listed, observations=4, events=events)
    taxa = [r for r in source.requests if r[0] == "taxon"]
    # Looked up from the first second, before the first species has all its pages.
    first_pages_done = max(r[3] for r in source.requests if r[:2] == ("page", names[0]))
    assert len(taxa) == 7
    assert min(r[2] for r in taxa) == 0.0
    assert sorted(r[2] for r in taxa)[len(taxa) // 2] < first_pages_done
    unknown = result.species[3]
    assert unknown.name == "Nonexistent beastus" and unknown.error is not None
    assert [s.name for s in result.species] == listed
    assert all(s.ok for n, s in enumerate(result.species) if n != 3)
    finished = [e.species for e in events if isinstance(e, SpeciesFinished)]
    assert sorted(finished, key=listed.index) == listed


@pytest.mark.looptime
async def test_a_species_whose_walk_fails_keeps_what_it_stored_and_the_others_go_on(
    tmp_path: Path, limits: Limits, downloads: Downloads
) -> None:
    names = [f"Species {n}" for n in range(5)]
    source = PacedSource(
        limits,
        names,
        observations=6,
        per_page=2,
        latency=0.5,
        sizes={names[3]: 0},
        failing=frozenset({names[1]}),
    )
    events: list[Event] = []
    listed = [*names, "Unknown"]
    result = await run(source, limits, tmp_path / "out", listed, observations=6, events=events)
    assert [s.name for s in result.species] == listed
    broken, empty, unknown = result.species[1], result.species[3], result.species[5]
    assert broken.error is not None and "503" in broken.error
    assert broken.photos_downloaded == 2  # its first page was stored, then downloaded
    assert broken.observations == 2
    assert empty.ok and empty.observations == 0 and empty.photos_downloaded == 0
    assert unknown.error is not None  # not a known name: reported in its turn
    for n in (0, 2, 4):
        assert result.species[n].ok and result.species[n].photos_downloaded == 6
    finished = [e.species for e in events if isinstance(e, SpeciesFinished)]
    assert sorted(finished) == sorted(listed)


@pytest.mark.looptime
async def test_the_dry_run_asks_about_several_species_at_once(
    tmp_path: Path, limits: Limits
) -> None:
    names = [f"Species {n}" for n in range(8)]
    source = PacedSource(limits, names, observations=30, latency=2.0)
    seen: list[str] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    plan = await plan_run(
        [SpeciesEntry(name) for name in names],
        settings=Settings.create(out_dir=tmp_path / "out", observations=10),
        limits=limits,
        source=source,
        sample_size=5,
        on_species=lambda species: seen.append(species.name),
    )
    elapsed = loop.time() - started
    assert seen == names  # reported in the list's order
    assert [s.observations for s in plan.species] == [10] * 8
    assert len(source.requests) == 16  # a taxon and a count each
    # One species after the other, the 16 answers of 2 s took 32 s.
    assert elapsed <= 1.2 * ((16 - 5) * 1.0 + 2.0), elapsed
