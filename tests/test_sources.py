"""The source seam: one taxon choice for run and dry run; the pipeline takes any Source."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path

import aiohttp
import pytest
from support import FAST_RETRY, expected_files, expected_observations, saved_files

from inat_async import TaxonMatch, TaxonNotFoundError, download_species
from inat_async.errors import ApiError
from inat_async.limits import LimitSettings
from inat_async.models import Observation, ObservationPage, Taxon
from inat_async.options import Query
from inat_async.pipeline import _Run
from inat_async.plan import plan_run
from inat_async.resume import ResumeStore, SpeciesState
from inat_async.settings import Settings, resolve_limits
from inat_async.sources import ApiSource, ObservationCount, Source, choose_taxon
from inat_async.species import SpeciesEntry
from inat_async.testing import FakeInatServer
from inat_async.testing.render import observation_json

SPECIES = "Apis mellifera"
BEE = Taxon(id=47219, name="Apis mellifera")
OTHER = Taxon(id=1, name="Apis cerana")


class MemorySource:
    """A source with no HTTP: taxa and pages from memory (what a test double, or a
    table-backed source, looks like to the pipeline)."""

    def __init__(
        self, taxa: dict[str, TaxonMatch], observations: list[Observation], per_page: int = 4
    ) -> None:
        self.taxa = taxa
        self.observations = observations
        self.per_page = per_page
        self.asked: list[str] = []

    async def resolve_taxon(self, name: str) -> TaxonMatch:
        self.asked.append(f"name {name}")
        found = self.taxa.get(name.casefold())
        if found is None:
            raise TaxonNotFoundError(name, [])
        return found

    async def taxon_by_id(self, taxon_id: int, *, species: str | None = None) -> Taxon:
        self.asked.append(f"id {taxon_id}")
        for match in self.taxa.values():
            if match.taxon.id == taxon_id:
                return match.taxon
        raise ApiError(f"no taxon has id {taxon_id}", species=species)

    async def observation_pages(
        self, taxon_id: int, query: Query, *, id_above: int = 0, species: str | None = None
    ) -> AsyncGenerator[ObservationPage, None]:
        left = [o for o in self.observations if o.id > id_above]
        total = len(left)
        while left:
            page, left = left[: self.per_page], left[self.per_page :]
            yield ObservationPage(total, tuple(page), page[-1].id, len(page))
            total = len(left)

    async def count(
        self,
        taxon_id: int,
        query: Query,
        *,
        id_above: int = 0,
        sample: int = 0,
        species: str | None = None,
    ) -> ObservationCount:
        left = [o for o in self.observations if o.id > id_above]
        return ObservationCount(len(left), tuple(left[:sample]))

    async def suggest(self, name: str, offered: tuple[str, ...]) -> tuple[str, ...]:
        return ("Apis mellifera",)


def memory_source(server: FakeInatServer, count: int) -> MemorySource:
    """The fake server's observations of SPECIES, parsed as the API source would."""
    wanted = expected_observations(server.dataset, SPECIES, Query(), count)
    observations = [
        parsed
        for o in wanted
        if (parsed := Observation.from_api(observation_json(o, server.dataset, server.base_url)))
    ]
    taxon = server.dataset.species(SPECIES)
    return MemorySource(
        {SPECIES.casefold(): TaxonMatch(Taxon(id=taxon.id, name=taxon.name), None)}, observations
    )


def stored(taxon: Taxon | None, matched: str | None = None) -> SpeciesState:
    return SpeciesState(SPECIES, taxon, matched, watermark=0, observations=0)


@pytest.mark.parametrize(
    ("entry", "state", "expected", "asked"),
    [
        # A new species: its name is looked up; a synonym hit is reported.
        (SpeciesEntry("apis mellifica"), None, (BEE, "Apis mellifica"), ["name apis mellifica"]),
        # A resumed dataset keeps the taxon (and the matched term) it started with.
        (SpeciesEntry(SPECIES), stored(OTHER, "x"), (OTHER, "x"), []),
        # A taxon_id skips the name; the stored taxon is kept when it is the same.
        (SpeciesEntry(SPECIES, taxon_id=BEE.id), stored(BEE, "x"), (BEE, None), []),
        (SpeciesEntry(SPECIES, taxon_id=BEE.id), stored(OTHER), (BEE, None), [f"id {BEE.id}"]),
        (SpeciesEntry(SPECIES, taxon_id=BEE.id), None, (BEE, None), [f"id {BEE.id}"]),
        # A species the store knows by name only (it never resolved): asked again.
        (SpeciesEntry(SPECIES), stored(None), (BEE, None), [f"name {SPECIES}"]),
    ],
)
async def test_the_taxon_choice(
    entry: SpeciesEntry,
    state: SpeciesState | None,
    expected: tuple[Taxon, str | None],
    asked: list[str],
) -> None:
    source = MemorySource(
        {
            SPECIES.casefold(): TaxonMatch(BEE, None),
            "apis mellifica": TaxonMatch(BEE, "Apis mellifica"),
        },
        [],
    )
    choice = await choose_taxon(source, entry, state)
    assert (choice.taxon, choice.matched_term) == expected
    assert source.asked == asked
    assert choice.asked == bool(asked)


async def test_an_unknown_name_is_the_sources_error() -> None:
    with pytest.raises(TaxonNotFoundError):
        await choose_taxon(MemorySource({}, []), SpeciesEntry("Apis melifera"), None)


async def test_run_and_dry_run_choose_the_same_taxon_for_a_resumed_dataset(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    """A dataset keeps its taxon, in the run and in the dry run alike."""
    out = tmp_path / "out"
    options = {"api_url": server.api_url, "out_dir": out, "retry": FAST_RETRY}
    first = await download_species(SPECIES, observations=2, limits=fast_limits, **options)
    assert first.taxon is not None
    mantis = server.dataset.species("Mantis religiosa")
    with ResumeStore.open(out) as store:
        # As if the dataset had started on another taxon (say the name meant it then).
        store.set_taxon(SPECIES, Taxon(id=mantis.id, name=mantis.name), "then")
    plan = await plan_run(
        [SpeciesEntry(SPECIES)],
        settings=Settings.create(observations=4, **options),  # type: ignore[arg-type]
        limits=fast_limits,
    )
    (planned,) = plan.species
    assert planned.taxon is not None and planned.taxon.id == mantis.id
    assert planned.matched_term == "then" and planned.requests == 1  # no taxon request
    again = await download_species(SPECIES, observations=4, limits=fast_limits, **options)
    assert again.taxon is not None and again.taxon.id == mantis.id
    assert again.matched_term == "then"


async def test_the_pipeline_downloads_from_any_source(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    """No API request: the taxon and the pages come from the source, photos by their URL."""
    out = tmp_path / "out"
    source = memory_source(server, 10)
    settings = Settings.create(
        api_url=server.api_url, out_dir=out, observations=10, workers=3, retry=FAST_RETRY
    )
    limits = resolve_limits(fast_limits, settings.api_url)
    async with aiohttp.ClientSession() as session:
        with ResumeStore.open(out, settings.query) as store:
            run = _Run(settings, session, limits, store, lambda event: None, source=source)
            result = await run.run([SpeciesEntry(SPECIES)])
    (species,) = result.species
    assert species.ok and species.observations == 10
    assert server.log.records("api") == []
    assert saved_files(out / "Apis_mellifera_images") == expected_files(
        server, SPECIES, Query(), 10
    )


async def test_the_dry_run_counts_from_any_source(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    source = memory_source(server, 10)
    settings = Settings.create(api_url=server.api_url, out_dir=tmp_path / "out", observations=6)
    plan = await plan_run(
        [SpeciesEntry(SPECIES), SpeciesEntry("Apis melifera")],
        settings=settings,
        limits=fast_limits,
        source=source,
    )
    found, unknown = plan.species
    assert found.available == 10 and found.observations == 6
    assert found.photos == len(expected_files(server, SPECIES, Query(), 6))
    assert unknown.error is not None and unknown.suggestions == ("Apis mellifera",)
    assert server.log.records("api") == []


async def test_the_api_source_counts_with_and_without_a_sample(
    server: FakeInatServer, fast_limits: LimitSettings
) -> None:
    from inat_async.api import InatClient

    limits = resolve_limits(fast_limits, server.api_url)
    available = expected_observations(server.dataset, SPECIES, Query(), 10**9)
    async with aiohttp.ClientSession() as session:
        source: Source = ApiSource(InatClient(session, limits=limits, api_url=server.api_url))
        taxon = (await source.resolve_taxon(SPECIES)).taxon
        counted = await source.count(taxon.id, Query(), sample=5, species=SPECIES)
        only = await source.count(taxon.id, Query(), id_above=available[2].id)
        assert await source.suggest("Apis melifera", ()) == ("Apis mellifera",)
        assert await source.suggest("Apis melifera", ("x",)) == ("x",)
    assert counted.total == len(available)
    assert [o.id for o in counted.sample] == [o.id for o in available[:5]]
    assert only == ObservationCount(len(available) - 3)


async def test_a_species_smaller_than_asked_costs_two_requests_as_the_dry_run_says(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    """Its one page holds all that is left (total_results says so): no empty page after it."""
    name = "Mantis religiosa"
    available = len(expected_observations(server.dataset, name, Query(), 10**9))
    assert 0 < available < 100
    options = {"api_url": server.api_url, "out_dir": tmp_path / "out", "retry": FAST_RETRY}
    plan = await plan_run(
        [SpeciesEntry(name)],
        settings=Settings.create(observations=100, **options),  # type: ignore[arg-type]
        limits=fast_limits,
    )
    server.log.clear()
    result = await download_species(name, observations=100, limits=fast_limits, **options)
    assert result.ok and result.observations == available
    assert [r.path for r in server.log.records("api")] == ["/v1/taxa", "/v1/observations"]
    assert plan.species[0].requests == 2
