"""What a run would fetch, and how long the limits make it take, without downloading anything.

:func:`plan_run` resolves every name (as a run would: a resumed dataset keeps its
taxon) and sends **one** observation search per species, ``per_page=SAMPLE_SIZE``: its
``total_results`` gives the count, and its first observations give the photos per
observation after the per-photo license filter (which varies a lot between species and
licenses, so a global guess would be far off). With ``sample_size=0`` the search
is a pure count (``per_page=0``) and a prior is used instead. Photo requests are
never sent; the output folder is only read (an existing dataset is taken into
account: its stored observations and watermark), never created.

>>> entries = read_species_csv("species.csv")  # doctest: +SKIP
>>> plan = await plan_run(entries, settings=Settings.create())  # doctest: +SKIP
>>> plan.photos, plan.seconds  # doctest: +SKIP
(1412, 204.0)
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import aiohttp

from .api import MAX_PER_PAGE, InatClient
from .errors import InatError, StorageError, TaxonNotFoundError
from .events import EventCallback, ignore
from .limits import Limits, LimitSettings
from .models import Taxon
from .options import Query
from .resume import ResumeStore
from .settings import TYPICAL_BYTES, Settings, resolve_limits
from .sources import ApiSource, Source, choose_taxon
from .species import SpeciesEntry
from .status import has_dataset

#: Observations fetched per species to estimate its photos per observation.
SAMPLE_SIZE = 20
#: Photos per observation assumed when no sample is taken (recorded API pages average 2).
PHOTOS_PER_OBSERVATION = 2.0
#: Species planned at once: the requests of a few are in flight together, as in a run.
LANES = 4


@dataclass(frozen=True, slots=True)
class SpeciesPlan:
    """One species: what is available, what a run would take, roughly how much."""

    name: str
    taxon: Taxon | None = None
    #: The synonym or common name the name matched, when it is not the taxon's name.
    matched_term: str | None = None
    #: Why this species cannot be fetched (unknown name, API error); None when it can.
    error: str | None = None
    #: Close names the taxa search offered for an unknown name.
    suggestions: tuple[str, ...] = ()
    #: Observations above the start id (or the dataset's watermark) matching the settings.
    available: int = 0
    #: Observations the output folder already holds for this species.
    already: int = 0
    #: Observations a run would fetch now: ``min(wanted - already, available)``.
    observations: int = 0
    #: Observations in the sample, and the photos a run would keep of them.
    sampled: int = 0
    sampled_photos: int = 0
    photos: int = 0
    bytes: int = 0
    #: API requests a run would send for this species (taxon, observation pages).
    requests: int = 0

    @property
    def photos_per_observation(self) -> float | None:
        return self.sampled_photos / self.sampled if self.sampled else None


@dataclass(frozen=True, slots=True)
class RunPlan:
    query: Query
    #: Observations asked per species (``-o``).
    wanted: int
    species: list[SpeciesPlan]
    limits: LimitSettings
    sample_size: int
    typical_bytes: int
    photos_per_observation_prior: float = PHOTOS_PER_OBSERVATION
    requests: int = 0
    #: Time the API requests take at the pace, and the bytes under the hourly and
    #: daily budgets; a run takes at least the longer of the two.
    request_seconds: float = 0.0
    byte_seconds: float = 0.0

    @property
    def observations(self) -> int:
        return sum(s.observations for s in self.species)

    @property
    def photos(self) -> int:
        return sum(s.photos for s in self.species)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.species)

    @property
    def seconds(self) -> float:
        return max(self.request_seconds, self.byte_seconds)

    @property
    def ok(self) -> bool:
        return all(s.error is None for s in self.species)


async def plan_run(
    species: Iterable[SpeciesEntry],
    *,
    settings: Settings,
    limits: Limits | LimitSettings | None = None,
    session: aiohttp.ClientSession | None = None,
    sample_size: int = SAMPLE_SIZE,
    on_event: EventCallback = ignore,
    on_species: Callable[[SpeciesPlan], None] | None = None,
    source: Source | None = None,
) -> RunPlan:
    """Estimate a run of ``species`` with ``settings``: API requests only, no photos.

    ``on_species`` is called as each species is planned (a display's progress).
    ``source`` is where the run would take its observations (default: the API at
    ``settings.api_url``).
    A name that resolves to nothing is a :class:`SpeciesPlan` with ``error`` and
    ``suggestions``, not an exception.
    """
    if not 0 <= sample_size <= MAX_PER_PAGE:
        raise ValueError(f"sample_size must be within 0..{MAX_PER_PAGE}, got {sample_size}")
    shared = resolve_limits(limits, settings.api_url)
    entries = list(species)
    # Read-only use of an existing dataset; a dataset of other settings is refused
    # exactly as a run would refuse it.
    store = (
        ResumeStore.open(settings.out_dir, settings.query, create=False)
        if has_dataset(settings.out_dir)
        else None
    )
    owns_session = session is None
    if session is None:
        session = aiohttp.ClientSession(headers={"User-Agent": settings.user_agent})
    try:
        if source is None:
            client = InatClient(
                session,
                limits=shared,
                api_url=settings.api_url,
                retry=settings.retry,
                on_event=on_event,
            )
            source = ApiSource(client)
        plans = await _plan_all(source, entries, settings, store, sample_size, on_species)
    finally:
        if store is not None:
            store.close()
        if owns_session:
            await session.close()
    requests = sum(p.requests for p in plans)
    total_bytes = sum(p.bytes for p in plans)
    return RunPlan(
        query=settings.query,
        wanted=settings.observations,
        species=plans,
        limits=shared.settings,
        sample_size=sample_size,
        typical_bytes=TYPICAL_BYTES[settings.query.size],
        requests=requests,
        request_seconds=request_seconds(requests, shared.settings),
        byte_seconds=byte_seconds(total_bytes, shared.settings),
    )


async def _plan_all(
    source: Source,
    entries: list[SpeciesEntry],
    settings: Settings,
    store: ResumeStore | None,
    sample_size: int,
    on_species: Callable[[SpeciesPlan], None] | None,
) -> list[SpeciesPlan]:
    """Every species planned, up to :data:`LANES` at once (each answer may take seconds
    while the pace would allow the next request), reported in the list's order."""
    plans: list[SpeciesPlan | None] = [None] * len(entries)
    reported = 0
    pending = iter(enumerate(entries))

    async def lane() -> None:
        nonlocal reported
        for index, entry in pending:
            plans[index] = await _plan_species(source, entry, settings, store, sample_size)
            while reported < len(plans) and (done := plans[reported]) is not None:
                reported += 1
                if on_species is not None:
                    on_species(done)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(LANES, len(entries))):
                group.create_task(lane())
    except* InatError as errors:
        # A StorageError (the dataset cannot be read): one clear line, as a run gives.
        first = errors.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return [plan for plan in plans if plan is not None]


async def _plan_species(
    source: Source,
    entry: SpeciesEntry,
    settings: Settings,
    store: ResumeStore | None,
    sample_size: int,
) -> SpeciesPlan:
    name, query = entry.name, settings.query
    stored = store.species(name) if store is not None else None
    try:
        # The run's own choice: a resumed dataset keeps the taxon it started with.
        choice = await choose_taxon(source, entry, stored)
    except TaxonNotFoundError as exc:
        suggestions = await source.suggest(name, tuple(exc.suggestions))
        return SpeciesPlan(
            name, error=f"no iNaturalist taxon is named {name!r}", suggestions=suggestions
        )
    except StorageError:
        raise
    except InatError as exc:
        return SpeciesPlan(name, error=str(exc))
    taxon, matched = choice.taxon, choice.matched_term
    requests = 1 if choice.asked else 0
    already = stored.observations if stored is not None else 0
    spread = query.sampling.spread
    # A spread sample draws over the whole range, not above the watermark.
    id_above = max(entry.start_id, stored.watermark if stored is not None and not spread else 0)
    try:
        counted = await source.count(
            taxon.id, query, id_above=id_above, sample=sample_size, species=name
        )
    except InatError as exc:
        return SpeciesPlan(name, taxon, matched, error=str(exc), already=already)
    available, sampled = counted.total, len(counted.sample)
    if spread:
        available = max(0, available - already)
    limit = query.sampling.photos_per_observation
    kept = sum(
        min(
            limit or len(observation.photos),
            sum(1 for p in observation.photos if query.accepts_photo_license(p.license_code)),
        )
        for observation in counted.sample
    )
    remaining = max(0, settings.observations - already)
    take = min(remaining, available)
    if sample_size:
        photos = round(take * kept / sampled) if sampled else 0
    else:
        photos = round(take * PHOTOS_PER_OBSERVATION)
    return SpeciesPlan(
        name,
        taxon,
        matched,
        available=available,
        already=already,
        observations=take,
        sampled=sampled,
        sampled_photos=kept,
        photos=photos,
        bytes=photos * TYPICAL_BYTES[query.size],
        requests=requests
        + (
            _spread_requests(
                take, remaining, fixed=store is not None and bool(store.spread_range(name))
            )
            if spread
            else _walk_requests(take, remaining)
        ),
    )


def _spread_requests(take: int, remaining: int, *, fixed: bool) -> int:
    """A spread sample's searches: the id range (first and last id) unless the dataset
    fixed it already, then one small search per pick (at least: a pick that lands on
    observations already chosen asks again), plus the one that finds nothing left."""
    if remaining <= 0:
        return 0
    return (0 if fixed else 2) + take + (1 if take < remaining else 0)


def _walk_requests(take: int, remaining: int) -> int:
    """Observation pages a run sends: the pages it takes, or the one page that says
    there is nothing (a page that holds all that is left ends the walk: see
    :class:`~inat_async.sources.ApiSource`)."""
    if remaining <= 0:
        return 0
    return max(1, math.ceil(take / MAX_PER_PAGE))


def request_seconds(requests: int, limits: LimitSettings) -> float:
    """How long ``requests`` take at the pace: a burst, then ``requests_per_minute``;
    beyond the daily budget, a whole day per budget."""
    if requests <= 0:
        return 0.0
    days, rest = divmod(requests, limits.requests_per_day)
    if rest == 0:
        days, rest = days - 1, limits.requests_per_day
    interval = limits.minute / limits.requests_per_minute
    return days * limits.day + max(0, rest - limits.burst) * interval


def byte_seconds(nbytes: int, limits: LimitSettings) -> float:
    """How long ``nbytes`` take under the budgets alone: a whole hourly budget at once
    (they are caps), each further one an hour later (or a burst then a steady pace,
    when smoothing is asked for), and a day never takes more than the daily budget."""
    if nbytes <= 0:
        return 0.0
    burst = limits.byte_burst * limits.hourly_bytes
    per_second = limits.hourly_bytes * (1 - limits.byte_burst) / limits.hour
    if per_second <= 0:  # byte_burst 1.0: no pace, only the windows
        per_second = limits.hourly_bytes / limits.hour
    # A day of bytes: the daily budget, or less if the hourly pace cannot reach it.
    per_day = min(limits.daily_bytes, burst + per_second * limits.day)
    days, rest = divmod(nbytes, per_day)
    if rest == 0:
        days, rest = days - 1, per_day
    return days * limits.day + max(0.0, rest - burst) / per_second
