"""The pipeline: one producer walks observation pages, a bounded queue feeds a worker pool.

::

    species ─► resolve taxon ─► id_above pages ─► resume store (page + photos, one commit)
                                                        │
                                          bounded queue ▼ (workers x 4)
                                  N workers ─► byte ledger ─► stream .part ─► rename ─► mark done

The worker pool is shared by every species of a run, so it never idles between
species; every task belongs to one ``asyncio.TaskGroup``. Species are walked one
after the other: the API pace (1 request/s) is the bottleneck of a walk, not the
walk's concurrency. A failed photo is recorded and the run goes on; a species that
cannot be walked (unknown name, API down) is reported and the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import aiohttp

from .api import InatClient
from .errors import InatError, LimitsError, StorageError
from .events import (
    EventCallback,
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
from .fetch import (
    SAVED_EXTENSIONS,
    PhotoError,
    PhotoFetcher,
    extension_for,
    part_name,
    remove_stale_parts,
)
from .imageinfo import image_size
from .layout import Layout, metadata_row
from .limits import Limits, LimitSettings
from .models import Observation, Photo, photo_url_for_size, url_extension
from .results import PhotoFailure, RunResult, SpeciesResult
from .resume import DONE, FAILED, PENDING, PhotoRecord, ResumeStore
from .retry import RetryPolicy
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
from .sources import ApiSource, Source, choose_taxon
from .species import SpeciesEntry, normalise_name, species_from_names


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
    session: aiohttp.ClientSession | None = None,
    limits: Limits | LimitSettings | None = None,
    on_event: EventCallback = ignore,
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

    ``session`` is a caller's aiohttp session (left open); ``limits`` the budgets, by
    default the process-wide ones, so concurrent calls share them; ``on_event``
    receives the progress events. A bad or unknown option raises
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
        )
    entry = SpeciesEntry(name=normalise_name(name), start_id=start_id, taxon_id=taxon_id)
    run = await download_all(
        [entry], settings=settings, session=session, limits=limits, on_event=on_event
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
    session: aiohttp.ClientSession | None = None,
    limits: Limits | LimitSettings | None = None,
    on_event: EventCallback = ignore,
) -> RunResult:
    """Download a whole species list with one shared worker pool (what the CLI runs).

    ``species`` holds names or :class:`~inat_async.species.SpeciesEntry` rows (as
    :func:`~inat_async.species.read_species_csv` returns). The other keywords are those
    of :func:`download_species`: the options one by one, or one ``settings`` (not both).

    >>> entries = read_species_csv("species.csv")  # doctest: +SKIP
    >>> result = await download_all(entries, workers=8, size="large")  # doctest: +SKIP
    >>> result = await download_all(entries, settings=Settings.create(workers=8))  # doctest: +SKIP
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
        )
    entries = species_from_names(species)
    shared_limits = resolve_limits(limits, settings.api_url)
    owns_session = session is None
    if session is None:
        session = aiohttp.ClientSession(
            headers={"User-Agent": settings.user_agent},
            connector=aiohttp.TCPConnector(limit=settings.workers + 4, ttl_dns_cache=300),
        )
    try:
        store = ResumeStore.open(settings.out_dir, settings.query)
        try:
            run = _Run(settings, session, shared_limits, store, on_event)
            return await run.run(entries)
        finally:
            store.close()
    finally:
        if owns_session:
            await session.close()


@dataclass(slots=True)
class _Species:
    """A species in flight: its counts, and how many of its photos are still queued."""

    entry: SpeciesEntry
    result: SpeciesResult
    started: float
    outstanding: int = 0
    walked: bool = False
    finished: bool = False

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
    ) -> None:
        self.settings = settings
        self.store = store
        self.layout = Layout(settings.out_dir)
        self.emit = on_event
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
            session,
            limits=limits,
            retry=settings.retry,
            on_event=on_event,
            estimate=TYPICAL_BYTES[settings.query.size],
        )
        self.species: list[_Species] = []
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
            for species in self.species:
                if not species.finished:
                    with contextlib.suppress(InatError):
                        self._finish(species, emit=False)
        result = RunResult([species.result for species in self.species])
        self.emit(RunFinished(result))
        return result

    async def _pool(self, entries: list[SpeciesEntry]) -> None:
        workers = self.settings.workers
        queue: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=workers * 4)
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(self._worker(queue))
            for entry in entries:
                await self._produce(entry, queue)
            for _ in range(workers):
                await queue.put(None)

    # -- producer -----------------------------------------------------------------------------

    async def _produce(self, entry: SpeciesEntry, queue: asyncio.Queue[_Job | None]) -> None:
        species = _Species(entry, SpeciesResult(entry.name), time.monotonic())
        self.species.append(species)
        try:
            await self._walk(species, queue)
        except (StorageError, LimitsError):
            raise  # the folder or the limits store is unusable: no species can go on
        except InatError as exc:
            species.result.error = str(exc)
        finally:
            species.walked = True
            self._maybe_finish(species)

    async def _walk(self, species: _Species, queue: asyncio.Queue[_Job | None]) -> None:
        name, result, query = species.name, species.result, self.settings.query
        choice = await choose_taxon(self.source, species.entry, self.store.species(name))
        taxon, matched_term = choice.taxon, choice.matched_term
        self.store.set_taxon(name, taxon, matched_term)
        result.taxon, result.matched_term = taxon, matched_term
        self.emit(TaxonResolved(name, taxon, matched_term))

        images = self.layout.images_dir(name)
        try:
            images.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {images}: {exc.strerror}") from exc
        remove_stale_parts(images)

        state = self.store.species(name)
        todo = self._resume(species)
        self.emit(SpeciesStarted(name, self.settings.observations, state.observations, len(todo)))
        for record in todo:
            await self._enqueue(queue, species, record)

        remaining = self.settings.observations - state.observations
        expected: int | None = None
        id_above = max(species.entry.start_id, state.watermark)
        if remaining <= 0:
            return
        pages = self.source.observation_pages(taxon.id, query, id_above=id_above, species=name)
        async with contextlib.aclosing(pages):
            async for page in pages:
                if expected is None:
                    # total_results counts what is left above id_above: known on page one.
                    left = page.total_results if page.total_results is not None else remaining
                    expected = state.observations + min(remaining, left)
                taken = page.observations[:remaining]
                rows = [self._screen(species, observation) for observation in taken]
                # Stop the watermark at the last observation taken, so a later run
                # with a larger -o continues right after it.
                cut = len(taken) < len(page.observations)
                watermark = taken[-1].id if cut and taken else (page.last_id or id_above)
                new = self.store.record_page(name, rows, watermark)
                remaining -= len(taken)
                self.emit(PageFetched(name, len(taken), len(new), expected, watermark))
                for record in new:
                    await self._enqueue(queue, species, record)
                if remaining <= 0:
                    break

    def _screen(
        self, species: _Species, observation: Observation
    ) -> tuple[Observation, dict[str, object], list[Photo]]:
        """Keep the photos whose *own* license is wanted; count what was left out and why."""
        kept: list[Photo] = []
        for photo in observation.photos:
            if self.settings.query.accepts_photo_license(photo.license_code):
                kept.append(photo)
            else:
                species.result.skipped_license += 1
                self.emit(PhotoSkipped(species.name, observation.id, photo.id, "license"))
        placeholders = observation.photo_items - len(observation.photos)
        for _ in range(placeholders):
            species.result.skipped_placeholder += 1
            self.emit(PhotoSkipped(species.name, observation.id, None, "placeholder"))
        return observation, metadata_row(species.name, observation, len(kept)), kept

    def _resume(self, species: _Species) -> list[PhotoRecord]:
        """Photos an earlier run left to do: pending, failed for a transient reason, or deleted.

        Done photos are most of a resumed species; they are only counted, never held, so a
        rerun of a huge species costs memory for what is left to do, not for what is done.
        """
        name, result = species.name, species.result
        images = self.layout.images_dir(name)
        on_disk = {entry.name for entry in os.scandir(images) if entry.is_file()}
        todo: list[PhotoRecord] = []
        deleted: list[PhotoRecord] = []
        renamed: list[tuple[PhotoRecord, Path]] = []
        for record in self.store.iter_photos(name):
            if record.status == DONE:
                if record.file_name in on_disk:
                    result.photos_already_done += 1
                else:
                    deleted.append(record)  # the user deleted it: fetch it again
            elif record.status == PENDING:
                path = self._saved_as(name, record, on_disk)
                if path is not None:
                    renamed.append((record, path))
                else:
                    todo.append(record)
            elif record.status == FAILED and not record.missing:
                todo.append(record)
        # The read cursor is used up: the store may be written again.
        for record in deleted:
            self.store.mark_pending(record)
            todo.append(record)
        for record, path in renamed:
            # Renamed into place, then killed before the store heard of it: a final
            # name is only ever complete, so it is done.
            self.store.mark_done(record, path.name, *_size_and_hash(path), image_size(path))
            result.photos_already_done += 1
        return todo

    def _saved_as(self, name: str, record: PhotoRecord, on_disk: set[str]) -> Path | None:
        """The final file of a photo the store still calls pending, if it is on disk."""
        ext = url_extension(record.url)
        # Without an extension in the URL, the content type chose one: try each.
        for candidate in (ext,) if ext else SAVED_EXTENSIONS:
            path = self.layout.photo_path(name, record, candidate)
            if path.name in on_disk:
                return path
        return None

    async def _enqueue(
        self, queue: asyncio.Queue[_Job | None], species: _Species, record: PhotoRecord
    ) -> None:
        species.outstanding += 1
        await queue.put(_Job(species, record))

    # -- workers ------------------------------------------------------------------------------

    async def _worker(self, queue: asyncio.Queue[_Job | None]) -> None:
        while (job := await queue.get()) is not None:
            try:
                await self._download(job)
            finally:
                job.species.outstanding -= 1
            # Only after a photo is settled: a cancelled or failed download leaves its
            # species to the run's own clean-up, which cannot hide the stop or the error.
            self._maybe_finish(job.species)

    async def _download(self, job: _Job) -> None:
        species, record = job.species, job.record
        name, size = species.name, self.settings.query.size
        url = photo_url_for_size(record.url, size)
        ext = url_extension(record.url)
        images = self._images.get(name)
        if images is None:
            images = self._images[name] = self.layout.images_dir(name)
        part = images / part_name(record.observation_id, record.position)

        def target(content_type: str) -> Path:
            return self.layout.photo_path(name, record, ext or extension_for(content_type))

        try:
            fetched = await self.fetcher.download(url, part, target)
        except PhotoError as exc:
            self.store.mark_failed(record, exc.reason, missing=exc.missing)
            self.emit(
                PhotoFailed(
                    name, record.observation_id, record.photo_id, url, exc.reason, exc.missing
                )
            )
            return
        # Reads the header only: cheap enough for the loop (the file is in the page cache).
        dimensions = image_size(fetched.path)
        self.store.mark_done(record, fetched.path.name, fetched.bytes, fetched.sha256, dimensions)
        species.result.photos_downloaded += 1
        species.result.bytes += fetched.bytes
        self.emit(
            PhotoDownloaded(
                name, record.observation_id, record.photo_id, fetched.path, fetched.bytes
            )
        )

    # -- finishing ----------------------------------------------------------------------------

    def _maybe_finish(self, species: _Species) -> None:
        if species.walked and species.outstanding == 0 and not species.finished:
            self._finish(species, emit=True)

    def _finish(self, species: _Species, *, emit: bool) -> None:
        species.finished = True
        name, result = species.name, species.result
        stored = self.store.species(name)
        if stored.taxon is not None:  # a name that never resolved has nothing to write
            self.layout.write_csvs(self.store, name, self.settings.query.size)
        result.observations = stored.observations
        result.failures = [
            PhotoFailure(r.observation_id, r.photo_id, r.url, r.reason or "unknown", r.missing)
            for r in self.store.photos(name, FAILED)
        ]
        result.seconds = time.monotonic() - species.started
        if emit:
            self.emit(SpeciesFinished(name, result))


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


def _size_and_hash(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()
