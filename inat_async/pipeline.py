"""The pipeline: the walk runs ahead of a worker pool, across species, within a look-ahead.

::

    species ─► resolve taxa (from the start) ─► id_above pages, several species at once
                                                   │  resume store: page + photos, one commit
                          backlog, species order ◄─┘  (LOOKAHEAD_PHOTOS ahead of the workers)
                                  N workers ─► byte ledger ─► stream .part ─► rename ─► mark done

The walk keeps up to :data:`API_LANES` requests in flight: the shared limits pace
how often requests start, and while one answer takes seconds the next requests are
already under way. Taxa are resolved from the start of the run, one after the
other (more at once when nothing else is to be asked); pages are asked while fewer
than :data:`LOOKAHEAD_PHOTOS` photos wait for a worker, for the earliest species
that can be walked (a species' pages are asked one after the other: each starts
above the last). Species open (``TaxonResolved``, ``SpeciesStarted``) in the
species list's order, and the workers take the earliest species' photos first, so
species finish in about the list's order, each with its CSV files written.

The worker pool is shared by every species; every task belongs to a
``asyncio.TaskGroup``. A failed photo is recorded and the run goes on; a species
that cannot be walked (unknown name, API down) is reported and the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections import Counter
from collections.abc import AsyncGenerator, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import aiohttp

from .api import InatClient
from .backlog import Backlog
from .disk import DiskThreads
from .errors import InatError, LimitsError, StorageError, redact
from .events import (
    EventCallback,
    ObservationSkipped,
    PageFetched,
    PhotoDownloaded,
    PhotoFailed,
    PhotoSkipped,
    RunFinished,
    RunStarted,
    SpeciesFinished,
    SpeciesStarted,
    TaxonResolved,
    ignore,
)
from .fdlimit import fit_workers
from .fetch import (
    MAX_PHOTO_BYTES,
    PhotoError,
    PhotoFetcher,
    PhotoFiles,
    Received,
    extension_for,
    part_name,
)
from .guard import DatasetLock, check_store_not_lost
from .layout import Layout, metadata_row
from .limits import Limits, LimitSettings
from .models import Observation, ObservationPage, Photo, photo_url_for_size, url_extension
from .results import PhotoFailure, RunResult, SpeciesResult
from .resume import (
    FAILED,
    PhotoRecord,
    ResumeStore,
    StatusBatch,
    StatusChange,
    done_change,
    failed_change,
    reconcile,
)
from .retry import RetryPolicy
from .sampling import id_range, observer_key, spread_pages
from .selection import Filters, Sampling
from .settings import (
    DEFAULT_LICENSE,
    DEFAULT_OBSERVATIONS,
    DEFAULT_OUT_DIR,
    DEFAULT_QUALITY,
    DEFAULT_SIZE,
    DEFAULT_WORKERS,
    TYPICAL_BYTES,
    Settings,
    resolve_limits,
    settings_or_options,
)
from .sources import ApiSource, Source, TaxonChoice, choose_taxon
from .sources.base import origin_of, photo_limits_of
from .species import SpeciesEntry, normalise_name, species_from_names
from .urls import photo_session
from .writers.csvs import CsvWriter
from .writers.species import SpeciesWriter, write_species


@settings_or_options
async def download_species(
    name: str,
    *,
    start_id: int = 0,
    taxon_id: int | None = None,
    settings: Settings | None = None,
    observations: int = DEFAULT_OBSERVATIONS,
    quality: str | Sequence[str] = DEFAULT_QUALITY,
    license: str | Sequence[str] = DEFAULT_LICENSE,
    size: str = DEFAULT_SIZE,
    out_dir: str | os.PathLike[str] = DEFAULT_OUT_DIR,
    workers: int = DEFAULT_WORKERS,
    api_url: str | None = None,
    user_agent: str | None = None,
    retry: RetryPolicy | None = None,
    filters: Filters | None = None,
    sampling: Sampling | None = None,
    session: aiohttp.ClientSession | None = None,
    limits: Limits | LimitSettings | None = None,
    on_event: EventCallback = ignore,
    files: PhotoFiles | None = None,
) -> SpeciesResult:
    """Download the photos and metadata of one species; returns its counts.

    ``name`` is a scientific or common name; ``start_id`` fetches only observations
    above that id, ``taxon_id`` skips the name lookup. The run's options are those of
    :meth:`Settings.create`, given one by one or as ``settings`` (not both):

    - ``observations``: the first N observations by id;
    - ``quality``, ``license``: a comma string or a sequence, or ``"any"``; each photo
      is kept on its *own* license;
    - ``size``: ``small``, ``medium``, ``large`` or ``original``;
    - ``out_dir``: the dataset folder (rerun to resume); ``workers``: photos at once;
    - ``api_url`` (default ``$INAT_API_URL``, else iNaturalist's), ``user_agent``,
      ``retry``: where and how requests are sent.
    - ``filters``: place, dates, annotations and other search filters, resolved
      (:class:`~inat_async.selection.Filters`; see :class:`~inat_async.selection.FilterRequest`
      to look names up); part of the dataset's identity.
    - ``sampling``: ``spread`` instead of the oldest observations, caps per observer
      and per observation (:class:`~inat_async.selection.Sampling`); part of the identity.

    ``session`` is a caller's aiohttp session (left open); ``limits`` the budgets, by
    default the process-wide ones, so concurrent calls share them; ``on_event``
    receives the progress events; ``files`` is where photo bytes are written (a
    :class:`~inat_async.fetch.PhotoFiles`: the local disk unless a test injects a full
    one). A bad or unknown option raises
    :class:`~inat_async.errors.UsageError` before anything is created.

    >>> result = await download_species("Apis mellifera", observations=50)  # doctest: +SKIP
    >>> result.photos_downloaded  # doctest: +SKIP
    143
    >>> settings = Settings.create(size="large", license="cc0,cc-by")  # doctest: +SKIP
    >>> await download_species("Mantis religiosa", settings=settings)  # doctest: +SKIP
    """
    if settings is None:
        settings = Settings.create(
            observations=observations,
            quality=quality,
            license=license,
            size=size,
            out_dir=out_dir,
            workers=workers,
            api_url=api_url,
            user_agent=user_agent,
            retry=retry,
            filters=filters,
            sampling=sampling,
        )
    entry = SpeciesEntry(name=normalise_name(name), start_id=start_id, taxon_id=taxon_id)
    run = await download_all(
        [entry],
        settings=settings,
        session=session,
        limits=limits,
        on_event=on_event,
        files=files,
    )
    return run.species[0]


@settings_or_options
async def download_all(
    species: Iterable[SpeciesEntry | str],
    *,
    settings: Settings | None = None,
    observations: int = DEFAULT_OBSERVATIONS,
    quality: str | Sequence[str] = DEFAULT_QUALITY,
    license: str | Sequence[str] = DEFAULT_LICENSE,
    size: str = DEFAULT_SIZE,
    out_dir: str | os.PathLike[str] = DEFAULT_OUT_DIR,
    workers: int = DEFAULT_WORKERS,
    api_url: str | None = None,
    user_agent: str | None = None,
    retry: RetryPolicy | None = None,
    filters: Filters | None = None,
    sampling: Sampling | None = None,
    session: aiohttp.ClientSession | None = None,
    limits: Limits | LimitSettings | None = None,
    on_event: EventCallback = ignore,
    files: PhotoFiles | None = None,
    source: Source | None = None,
) -> RunResult:
    """Download a whole species list with one shared worker pool (what the CLI runs).

    ``species`` holds names or :class:`~inat_async.species.SpeciesEntry` rows (as
    :func:`~inat_async.species.read_species_csv` returns). The other keywords are those
    of :func:`download_species`: the options one by one, or one ``settings`` (not both).

    >>> entries = read_species_csv("species.csv")  # doctest: +SKIP
    >>> result = await download_all(entries, workers=8, size="large")  # doctest: +SKIP
    >>> result = await download_all(entries, settings=Settings.create(workers=8))  # doctest: +SKIP

    ``source`` is where observations come from (default: the API at ``api_url``), e.g. an
    :class:`~inat_async.sources.opendata.OpenDataSource`; the dataset records its origin.
    """
    if settings is None:
        settings = Settings.create(
            observations=observations,
            quality=quality,
            license=license,
            size=size,
            out_dir=out_dir,
            workers=workers,
            api_url=api_url,
            user_agent=user_agent,
            retry=retry,
            filters=filters,
            sampling=sampling,
        )
    entries = species_from_names(species)
    if origin_of(source):
        query = dataclasses.replace(settings.query, origin=origin_of(source))
        settings = dataclasses.replace(settings, query=query)
    shared_limits = resolve_limits(limits, settings.api_url)
    # No more workers than the process may open files for ("Too many open files").
    fitted, limited = fit_workers(settings.workers)
    if limited is not None:
        on_event(limited)
        settings = dataclasses.replace(settings, workers=fitted)
    owns_session = session is None
    if session is None:
        session = aiohttp.ClientSession(
            headers={"User-Agent": settings.user_agent},
            # A connection for each worker and for each API request the walk keeps open.
            connector=aiohttp.TCPConnector(limit=settings.workers + API_LANES, ttl_dns_cache=300),
        )
    # A caller's session may carry credentials for the API: photo hosts get none of them.
    photos = session if owns_session else photo_session(session)
    try:
        # One run at a time writes to a folder (a second one is refused, not queued).
        with DatasetLock(settings.out_dir):
            check_store_not_lost(settings.out_dir)
            store = ResumeStore.open(settings.out_dir, settings.query)
            try:
                # For exports' manifests and cards: never with the URL's credentials.
                store.note_api_url(redact(settings.api_url))
                run = _Run(
                    settings,
                    session,
                    shared_limits,
                    store,
                    on_event,
                    source,
                    files=files,
                    photos=photos,
                )
                return await run.run(entries)
            finally:
                store.close()
    finally:
        if photos is not session:
            await photos.close()
        if owns_session:
            await session.close()


#: Photos queued ahead of the workers: the walk asks for a page only while fewer wait
#: (a page adds its photos on top). A few pages' worth: the workers never run dry
#: while an answer takes seconds, and memory does not grow with the dataset.
LOOKAHEAD_PHOTOS = 1000
#: API requests the walk keeps in flight at most.
API_LANES = 4


@dataclass(slots=True)
class _Species:
    """A species of the run: its counts, its walk, and how many of its photos are queued."""

    rank: int
    entry: SpeciesEntry
    result: SpeciesResult
    started: float = 0.0
    #: The taxon choice, or why there is none, once resolved.
    choice: TaxonChoice | None = None
    error: InatError | None = None
    #: The walk, once the species is open: pages, and a page request in flight.
    pages: AsyncGenerator[ObservationPage, None] | None = None
    fetching: bool = False
    remaining: int = 0
    stored: int = 0
    expected: int | None = None
    id_above: int = 0
    outstanding: int = 0
    walked: bool = False
    finished: bool = False
    #: Observations per observer, with --per-observer (see :mod:`inat_async.sampling`).
    observers: dict[str, int] = field(default_factory=dict)

    @property
    def resolved(self) -> bool:
        return self.choice is not None or self.error is not None

    @property
    def name(self) -> str:
        return self.entry.name


@dataclass(frozen=True, slots=True)
class _Job:
    species: _Species
    record: PhotoRecord


class _Run:
    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        limits: Limits,
        store: ResumeStore,
        on_event: EventCallback,
        source: Source | None = None,
        files: PhotoFiles | None = None,
        *,
        photos: aiohttp.ClientSession | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.layout = Layout(settings.out_dir)
        self.emit = on_event
        #: The threads of the photos' file work, this run's own (see :mod:`.disk`).
        self.disk = DiskThreads()
        self.source: Source = source or ApiSource(
            InatClient(
                session,
                limits=limits,
                api_url=settings.api_url,
                retry=settings.retry,
                on_event=on_event,
            )
        )
        self.fetcher = PhotoFetcher(
            photos or session,
            # Photos from another host (the Open Data bucket) have a byte budget of their own.
            limits=photo_limits_of(self.source) or limits,
            retry=settings.retry,
            on_event=on_event,
            estimate=TYPICAL_BYTES[settings.query.size],
            files=files,
            max_bytes=MAX_PHOTO_BYTES[settings.query.size],
            executor=self.disk,
        )
        #: The species opened so far, in the list's order.
        self.species: list[_Species] = []
        self._all: list[_Species] = []
        self.lookahead = LOOKAHEAD_PHOTOS
        self.lanes = API_LANES
        self._finishing = asyncio.Lock()
        #: Per-photo status changes, committed in batches.
        self.statuses = StatusBatch(store)
        #: What is written from the store when a species ends.
        self.writers: list[SpeciesWriter] = [CsvWriter(self.layout, settings.query.size)]
        #: Each species' image folder, computed once (sanitising a name is not free).
        self._images: dict[str, Path] = {}

    async def run(self, entries: list[SpeciesEntry]) -> RunResult:
        settings = self.settings
        self.emit(RunStarted(tuple(e.name for e in entries), settings.workers, settings.out_dir))
        # The pool runs in a task of its own: a cancel of *this* task then only ever
        # comes from outside (Ctrl-C), never from the TaskGroup aborting its parent,
        # so `cancelling()` below tells a stop from a failure (on 3.11 a TaskGroup can
        # leave its parent's cancel count raised after an abort).
        pool = asyncio.create_task(self._pool(entries))
        try:
            await pool
        except* InatError as group_error:
            # Anything else in the group (a bug) is not caught here: it propagates as is.
            _raise_deliberate(group_error)
        finally:
            # Whatever happened (done, Ctrl-C, disk full), the CSVs match the store.
            with contextlib.suppress(InatError):
                await self.statuses.flush()
            for species in self.species:
                if not species.finished:
                    with contextlib.suppress(InatError):
                        await self._finish(species, emit=False)
            # Every save was awaited (a cancelled one waits for its thread's work):
            # the threads are idle and end at once.
            self.disk.shutdown(wait=False)
        result = RunResult([species.result for species in self.species])
        self.emit(RunFinished(result))
        return result

    async def _pool(self, entries: list[SpeciesEntry]) -> None:
        self._all = [_Species(n, e, SpeciesResult(e.name)) for n, e in enumerate(entries)]
        self._wake = asyncio.Event()
        self._next_resolve = self._next_open = 0
        self._resolving = 0
        #: Open species with pages still to ask (a handful: one per lane at most).
        self._walking: list[_Species] = []
        backlog: Backlog[_Job] = Backlog(self.lookahead, on_low=self._wake.set)
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.settings.workers):
                    group.create_task(self._worker(backlog))
                async with asyncio.TaskGroup() as walk:
                    for _ in range(self.lanes):
                        walk.create_task(self._lane(backlog))
                backlog.close()
        finally:
            for species in self._walking:
                if species.pages is not None:
                    with contextlib.suppress(Exception):
                        await species.pages.aclose()

    # -- the walk -----------------------------------------------------------------------------

    async def _lane(self, backlog: Backlog[_Job]) -> None:
        """One API request at a time, the most useful one first, until every species is walked."""
        while True:
            work = self._pick(backlog)
            if work is not None:
                try:
                    await work
                finally:
                    self._wake.set()  # what this request settled may be work for others
                # A stored taxon costs no request: 10,000 of them must not hold the loop.
                await asyncio.sleep(0)
                continue
            if self._next_open == len(self._all) and not self._walking:
                return  # a lane still at work takes whatever its request opens
            self._wake.clear()
            await self._wake.wait()

    def _pick(self, backlog: Backlog[_Job]) -> Coroutine[Any, Any, None] | None:
        """What this lane asks next: keep one taxon lookup going from the start; then a
        page while the backlog is short (of the earliest species that can be walked, or
        the next species to open); else more lookups; else nothing (wait)."""
        pending = self._next_resolve < len(self._all)
        if pending and not self._resolving:
            return self._resolve(self._take_resolve())
        if len(backlog) < self.lookahead:
            for species in self._walking:
                if not species.fetching:
                    species.fetching = True
                    return self._fetch(species, backlog)
            if self._next_open < len(self._all) and self._all[self._next_open].resolved:
                species = self._all[self._next_open]
                self._next_open += 1
                species.fetching = True
                return self._open(species, backlog)
        if pending:
            return self._resolve(self._take_resolve())
        return None

    def _take_resolve(self) -> _Species:
        species = self._all[self._next_resolve]
        self._next_resolve += 1
        self._resolving += 1
        return species

    async def _resolve(self, species: _Species) -> None:
        try:
            species.choice = await choose_taxon(
                self.source, species.entry, self.store.species(species.name)
            )
        except (StorageError, LimitsError):
            raise  # the folder or the limits store is unusable: no species can go on
        except InatError as exc:
            species.error = exc  # reported when the species' turn comes
        except Exception as exc:
            species.error = _internal(exc)
        finally:
            self._resolving -= 1

    async def _open(self, species: _Species, backlog: Backlog[_Job]) -> None:
        """The species' turn: its taxon is stored and reported, what an earlier run left
        to do is queued, and its first page is asked."""
        species.started = time.monotonic()
        self.species.append(species)
        try:
            await self._start(species, backlog)
        except (StorageError, LimitsError):
            raise
        except InatError as exc:
            species.result.error = str(exc)
            species.walked = True
        except Exception as exc:
            species.result.error = str(_internal(exc))
            species.walked = True
        if species.walked:
            species.fetching = False
            await self._maybe_finish(species)
        else:
            self._walking.append(species)
            await self._fetch(species, backlog)

    async def _start(self, species: _Species, backlog: Backlog[_Job]) -> None:
        if species.error is not None:
            raise species.error
        assert species.choice is not None
        name, result = species.name, species.result
        taxon, matched_term = species.choice.taxon, species.choice.matched_term
        self.store.set_taxon(name, taxon, matched_term)
        result.taxon, result.matched_term = taxon, matched_term
        self.emit(TaxonResolved(name, taxon, matched_term))

        self.layout.make_images_dir(name)

        state = self.store.species(name)
        todo = await self._resume(species)
        self.emit(SpeciesStarted(name, self.settings.observations, state.observations, len(todo)))
        self._enqueue(backlog, species, todo)

        species.stored = state.observations
        species.remaining = self.settings.observations - state.observations
        species.id_above = max(species.entry.start_id, state.watermark)
        if species.remaining <= 0:
            species.walked = True
            return
        sampling = self.settings.query.sampling
        if sampling.per_observer is not None or sampling.spread:
            species.observers = self.store.observer_counts(name)
        if sampling.spread:
            species.pages = self._spread(species, taxon.id)
            return
        species.pages = self.source.observation_pages(
            taxon.id, self.settings.query, id_above=species.id_above, species=name
        )

    async def _spread(
        self, species: _Species, taxon_id: int
    ) -> AsyncGenerator[ObservationPage, None]:
        """A spread sample's picks, one page each, over the range fixed on the first run."""
        name, query = species.name, self.settings.query
        fixed = self.store.spread_range(name)
        if fixed is None:
            fixed = await id_range(
                self.source, taxon_id, query, id_above=species.entry.start_id, species=name
            )
            if fixed is None:
                return
            self.store.set_spread_range(name, *fixed)
        pages = spread_pages(
            self.source,
            taxon_id,
            query,
            id_range=fixed,
            chosen=self.store.observation_ids(name),
            observers=species.observers,
            species=name,
        )
        async with contextlib.aclosing(pages):
            async for page in pages:
                yield page

    async def _fetch(self, species: _Species, backlog: Backlog[_Job]) -> None:
        """Ask a species' next page; store it with its photos, then queue them."""
        assert species.pages is not None
        try:
            try:
                page = await anext(species.pages)
            except StopAsyncIteration:
                species.walked = True
            else:
                self._take(species, page, backlog)
        except (StorageError, LimitsError):
            raise
        except InatError as exc:
            species.result.error = str(exc)
            species.walked = True
        except Exception as exc:
            species.result.error = str(_internal(exc))
            species.walked = True
        finally:
            species.fetching = False
        if species.walked:
            self._walking.remove(species)
            pages, species.pages = species.pages, None
            await pages.aclose()
            await self._maybe_finish(species)

    def _take(self, species: _Species, page: ObservationPage, backlog: Backlog[_Job]) -> None:
        name, remaining = species.name, species.remaining
        for reason in page.rejected:
            species.result.skipped_observations += 1
            self.emit(ObservationSkipped(name, reason))
        if species.expected is None:
            # total_results counts what is left above id_above: known on page one.
            left = page.total_results if page.total_results is not None else remaining
            species.expected = species.stored + min(remaining, left)
        taken, considered = self._choose(species, page.observations, remaining)
        screened = [self._screen(species, observation) for observation in taken]
        rows = [(observation, row, kept) for observation, row, kept, _ in screened]
        # Stop the watermark at the last observation considered, so a later run
        # with a larger -o continues right after it.
        cut = considered < len(page.observations)
        after = page.cursor_after(considered) if cut else None
        watermark = after if after is not None else (page.last_id or species.id_above)
        new = self.store.record_page(
            name,
            rows,
            watermark,
            skipped=[skips for *_, skips in screened],
            dropped={"dropped": len(page.rejected)} if page.rejected else None,
        )
        species.remaining -= len(taken)
        self.emit(PageFetched(name, len(taken), len(new), species.expected, watermark))
        self._enqueue(backlog, species, new)
        if species.remaining <= 0:
            species.walked = True

    def _choose(
        self, species: _Species, observations: Sequence[Observation], remaining: int
    ) -> tuple[list[Observation], int]:
        """The observations a page gives (at most ``remaining``), skipping observers at
        their --per-observer cap, and how many of the page were considered."""
        cap = self.settings.query.sampling.per_observer
        if cap is None or self.settings.query.sampling.spread:
            # A spread walk applies the cap itself, as it picks.
            first = list(observations[:remaining])
            return first, len(first)
        taken: list[Observation] = []
        considered = 0
        for observation in observations:
            if len(taken) >= remaining:
                break
            considered += 1
            key = observer_key(observation)
            if species.observers.get(key, 0) >= cap:
                continue
            species.observers[key] = species.observers.get(key, 0) + 1
            taken.append(observation)
        return taken, considered

    def _screen(
        self, species: _Species, observation: Observation
    ) -> tuple[Observation, dict[str, object], list[Photo], Counter[str]]:
        """Keep the photos whose *own* license is wanted; count what was left out and why
        (the counts are stored with the page, so a resumed species still knows them)."""
        kept: list[Photo] = []
        skips: Counter[str] = Counter()
        for photo in observation.photos:
            if self.settings.query.accepts_photo_license(photo.license_code):
                kept.append(photo)
            else:
                species.result.skipped_license += 1
                skips["license"] += 1
                self.emit(PhotoSkipped(species.name, observation.id, photo.id, "license"))
        limit = self.settings.query.sampling.photos_per_observation
        if limit is not None and len(kept) > limit:
            # The first photos by position: an observation's first photo is its best.
            kept = sorted(kept, key=lambda photo: photo.position)[:limit]
        for _ in range(observation.placeholders):
            species.result.skipped_placeholder += 1
            skips["placeholder"] += 1
            self.emit(PhotoSkipped(species.name, observation.id, None, "placeholder"))
        for reason, detail in observation.rejected:
            if reason == "too_many":
                species.result.skipped_too_many += 1
                skips["too_many"] += 1
            else:
                species.result.skipped_invalid += 1
                skips["invalid"] += 1
            self.emit(PhotoSkipped(species.name, observation.id, None, reason, detail))
        return observation, metadata_row(species.name, observation, len(kept)), kept, skips

    async def _resume(self, species: _Species) -> list[PhotoRecord]:
        """What an earlier run left to do, found off the loop (see :func:`reconcile`)."""
        name, layout = species.name, self.layout
        await self.statuses.flush()  # the thread reads the store: make it current
        found = await reconcile(
            self.store,
            name,
            layout.images_dir(name),
            lambda record: layout.saved_paths(name, record),
        )
        species.result.photos_already_done += found.already_done
        return found.todo

    def _enqueue(
        self, backlog: Backlog[_Job], species: _Species, records: Iterable[PhotoRecord]
    ) -> None:
        jobs = [_Job(species, record) for record in records]
        species.outstanding += len(jobs)
        backlog.put(species.rank, jobs)

    # -- workers ------------------------------------------------------------------------------

    async def _worker(self, backlog: Backlog[_Job]) -> None:
        """Fetch photo after photo; each one goes to disk while the next one downloads, so
        that the file work (a hop to a thread: milliseconds when the disk or the GIL is
        busy) never leaves the connection idle. One save at a time per worker: memory
        holds at most one waiting body per worker."""
        async with asyncio.TaskGroup() as saves:
            saving: asyncio.Task[None] | None = None
            while (job := await backlog.get()) is not None:
                received: Received | None = None
                try:
                    received = await self._receive(job)
                finally:
                    if received is None:  # failed (and recorded), or the run stops
                        job.species.outstanding -= 1
                if saving is not None:
                    await saving
                    saving = None
                if received is None:
                    await self._maybe_finish(job.species)
                else:
                    saving = saves.create_task(self._save(job, received))

    async def _receive(self, job: _Job) -> Received | None:
        """The photo's checked body, or None when it failed (recorded as such)."""
        species, record = job.species, job.record
        name = species.name
        url = photo_url_for_size(record.url, self.settings.query.size)
        ext = url_extension(record.url)
        images = self._images.get(name)
        if images is None:
            images = self._images[name] = self.layout.images_dir(name)
        part = images / part_name(record.observation_id, record.position)

        def target(content_type: str) -> Path:
            return self.layout.photo_path(name, record, ext or extension_for(content_type))

        try:
            return await self.fetcher.receive(url, part, target)
        except PhotoError as exc:
            await self._failed(job, url, exc)
        return None

    async def _save(self, job: _Job, received: Received) -> None:
        try:
            await self._saved(job, received)
        finally:
            job.species.outstanding -= 1
        # Only after a photo is settled: a cancelled or failed download leaves its
        # species to the run's own clean-up, which cannot hide the stop or the error.
        await self._maybe_finish(job.species)

    async def _saved(self, job: _Job, received: Received) -> None:
        """Save the photo, then record it as done (or as failed)."""
        species, record = job.species, job.record
        try:
            fetched = await received.save()
        except PhotoError as exc:
            await self._failed(job, photo_url_for_size(record.url, self.settings.query.size), exc)
            return
        name, nbytes = fetched.path.name, fetched.bytes
        await self._record(done_change(record, name, nbytes, fetched.sha256, fetched.dimensions))
        species.result.photos_downloaded += 1
        species.result.bytes += fetched.bytes
        self.emit(
            PhotoDownloaded(
                species.name, record.observation_id, record.photo_id, fetched.path, fetched.bytes
            )
        )

    async def _failed(self, job: _Job, url: str, exc: PhotoError) -> None:
        record = job.record
        await self._record(failed_change(record, exc.reason, missing=exc.missing))
        self.emit(
            PhotoFailed(
                job.species.name,
                record.observation_id,
                record.photo_id,
                url,
                exc.reason,
                exc.missing,
            )
        )

    async def _record(self, change: StatusChange) -> None:
        """One photo's status, committed with its batch."""
        self.statuses.add(change)
        if self.statuses.due:
            await self.statuses.flush()

    # -- finishing ----------------------------------------------------------------------------

    async def _maybe_finish(self, species: _Species) -> None:
        if species.walked and species.outstanding == 0 and not species.finished:
            await self._finish(species, emit=True)

    async def _finish(self, species: _Species, *, emit: bool) -> None:
        species.finished = True
        # One at a time, in the order species finish (the lock is fair): their events
        # keep that order while the files are written off the loop.
        async with self._finishing:
            await self._write_outputs(species, emit=emit)

    async def _write_outputs(self, species: _Species, *, emit: bool) -> None:
        name, result = species.name, species.result
        await self.statuses.flush()
        stored = self.store.species(name)
        if stored.taxon is not None:  # a name that never resolved has nothing to write
            # In a thread with its own connection; skipped when the species did not change.
            await write_species(self.store.path, name, self.writers)
        result.observations = stored.observations
        _record_skipped(result, self.store.skipped(name))
        result.failures = [
            PhotoFailure(r.observation_id, r.photo_id, r.url, r.reason or "unknown", r.missing)
            for r in self.store.photos(name, FAILED)
        ]
        result.seconds = time.monotonic() - species.started
        if emit:
            self.emit(SpeciesFinished(name, result))


def _record_skipped(result: SpeciesResult, totals: Mapping[str, int]) -> None:
    """A species' skips as every walk of it counted them, earlier runs included, so a
    resumed species reports what an uninterrupted run would. A store written before
    skips were kept has no totals: the counts of this run stand."""
    if not totals:
        return
    result.skipped_license = totals.get("license", 0)
    result.skipped_placeholder = totals.get("placeholder", 0)
    result.skipped_too_many = totals.get("too_many", 0)
    result.skipped_invalid = totals.get("invalid", 0)
    result.skipped_observations = totals.get("dropped", 0)


def _raise_deliberate(group: BaseExceptionGroup[InatError]) -> NoReturn:
    """The run's deliberate errors as themselves (one clear line), or the stop that caused them.

    A run stopped from outside (Ctrl-C cancels it) may meet errors while its workers
    finish (a full disk while writing a species' CSVs): the stop is what happened, so
    it wins, and the CLI still exits 130. Otherwise the first error is raised, with the
    others attached as notes.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from group
    errors = _leaves(group)
    first = errors[0]
    for other in errors[1:]:
        first.add_note(f"also: {other}")
    raise first from None


def _leaves(group: BaseExceptionGroup[InatError]) -> list[InatError]:
    leaves: list[InatError] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            leaves.extend(_leaves(error))
        else:
            leaves.append(error)
    return leaves


def _internal(exc: Exception) -> InatError:
    """A bug met in one species' data, as that species' error: the others go on."""
    return InatError(f"internal error: {type(exc).__name__}: {exc}")
