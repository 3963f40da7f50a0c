"""The Open Data source: observations selected from the monthly tables, photos from the bucket.

Past one user's API budget, iNaturalist's sanctioned path is its Open Data: monthly
metadata tables of every openly licensed photo, and the photos themselves in a public
S3 bucket. This source answers the pipeline's questions from the tables (see
:mod:`inat_async.sources.tables`) and never calls the API:

* a name resolves through ``taxa`` (active names, any case; an inactive name or a typo
  gets close active names as suggestions; common names are not in the tables);
* a species means its whole subtree (the taxa whose ``ancestry`` holds it);
* observations have no numeric id in the tables: each is named by its
  ``observation_uuid`` and walked in the order of its smallest photo id (photo ids grow
  with time), which is also the watermark a resumed walk continues above, and what
  "the first N observations" means;
* photos are ``URL/photos/<photo_id>/<size>.<extension>`` in the bucket, credited as the
  Open Data README says: "[name or login], no rights reserved (CC0)" or
  "© [name or login], some rights reserved (CC-BY-NC)".

>>> source = OpenDataSource.open("open-data/")  # doctest: +SKIP
>>> await source.prepare(entries, settings.query, limit=settings.observations)  # doctest: +SKIP
>>> await download_all(entries, settings=settings, source=source)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncGenerator, Sequence
from urllib.parse import urlsplit

from ..api import TaxonMatch
from ..errors import TaxonNotFoundError, UsageError
from ..limits import Limits, LimitSettings, default_limits
from ..models import Observation, ObservationPage, Photo, Taxon
from ..options import Query
from ..species import SpeciesEntry
from .base import ObservationCount
from .tables import (
    SelectedObservation,
    SelectedPhoto,
    TableFiles,
    TableFilters,
    Tables,
    TaxonRow,
    Wanted,
)

#: The public bucket of iNaturalist Open Data.
OPEN_DATA_URL = "https://inaturalist-open-data.s3.amazonaws.com"
#: Host of the bucket: its downloads are charged to a byte budget of their own.
OPEN_DATA_HOST = "inaturalist-open-data.s3.amazonaws.com"
#: The sub-folder of the state folder holding the bucket's byte ledger.
BUCKET_LEDGER = "open-data-bucket"
PAGE_SIZE = 200
#: The selection a source makes when nobody said how many observations a run takes.
UNLIMITED = 2**62


def attribution(license_code: str | None, name: str | None, login: str | None) -> str:
    """The credit line the Open Data README gives for a photo.

    >>> attribution("cc-by-nc", None, "bee_watcher")
    '© bee_watcher, some rights reserved (CC-BY-NC)'
    >>> attribution("cc0", "Zoë O'Brien", "zoe")
    "Zoë O'Brien, no rights reserved (CC0)"
    """
    who = name or login or "unknown"
    code = (license_code or "").lower()
    if code == "cc0":
        return f"{who}, no rights reserved (CC0)"
    if code == "pd":
        # Not in the README: iNaturalist's own wording for public-domain photos.
        return f"{who}, no known copyright restrictions (public domain)"
    return f"© {who}, some rights reserved ({code.upper() or 'unknown license'})"


def photo_url(base_url: str, photo_id: int, extension: str, size: str = "square") -> str:
    """``URL/photos/<id>/<size>.<ext>`` (no dot when the table gives no extension)."""
    suffix = f".{extension}" if extension else ""
    return f"{base_url.rstrip('/')}/photos/{photo_id}/{size}{suffix}"


def check_url(url: str) -> str:
    """The bucket URL, validated: http(s), a host, no query."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise UsageError(
            f"the Open Data bucket URL must start with http:// or https://, got {url!r}"
        )
    return url.rstrip("/")


class OpenDataSource:
    """A :class:`~inat_async.sources.Source` over one snapshot of the Open Data tables.

    Open it with :meth:`open` (finds and checks the files: bad input is an
    :class:`~inat_async.errors.OpenDataError` naming the file), then :meth:`prepare` the
    run's species: one scan of the tables chooses every species' first ``limit``
    observations, so that a truncated or malformed table stops the run before anything
    is downloaded or created. Pages then come from that selection. Close it when done.
    """

    def __init__(
        self,
        files: TableFiles,
        *,
        url: str = OPEN_DATA_URL,
        limits: Limits | LimitSettings | None = None,
    ) -> None:
        self.files = files
        self.url = check_url(url)
        self._limits = limits
        self._tables = Tables(files)
        self._lock = asyncio.Lock()
        #: The (taxon id, start) pairs selected, and the filters and limit used.
        self._wanted: set[tuple[int, int]] = set()
        self._selection: tuple[TableFilters, int] | None = None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        url: str = OPEN_DATA_URL,
        limits: Limits | LimitSettings | None = None,
    ) -> OpenDataSource:
        """The tables under ``path`` (a folder, or the bundle), photos from ``url``.

        ``limits`` is the bucket's byte budget (see :func:`bucket_limits`); by default
        the same budgets as iNaturalist's own hosts, in a ledger of the bucket's own.
        """
        return cls(TableFiles.locate(path), url=check_url(url), limits=limits)

    def close(self) -> None:
        self._tables.close()

    @property
    def snapshot(self) -> str:
        return self.files.snapshot

    @property
    def origin(self) -> tuple[tuple[str, str], ...]:
        return (("source", "open-data"), ("snapshot", self.files.snapshot))

    @property
    def photo_limits(self) -> Limits:
        if not isinstance(self._limits, Limits):
            self._limits = bucket_limits(self._limits)
        return self._limits

    # -- taxa -----------------------------------------------------------------------------

    async def resolve_taxon(self, name: str) -> TaxonMatch:
        found = await asyncio.to_thread(self._tables.taxa_named, [name])
        rows = found.get(name.strip().lower(), [])
        active = [row for row in rows if row.active]
        if active:
            # Homonyms across kingdoms: prefer a species, then the smallest id.
            best = min(active, key=lambda row: (row.rank != "species", row.id))
            return TaxonMatch(_taxon(best), None)
        suggestions = await self.suggest(name, ())
        error = TaxonNotFoundError(name, list(suggestions))
        if rows:
            hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
            error.message = (
                f"{name!r} is an inactive name in the Open Data taxa table, which does not "
                f"say what replaced it{hint}"
            )
            error.args = (error.message,)
        raise error

    async def taxon_by_id(self, taxon_id: int, *, species: str | None = None) -> Taxon:
        found = await asyncio.to_thread(self._tables.taxa_by_id, [taxon_id])
        row = found.get(taxon_id)
        if row is None:
            raise UsageError(
                f"taxon {taxon_id} is not in the Open Data taxa table",
                species=species,
            )
        return _taxon(row)

    async def suggest(self, name: str, offered: tuple[str, ...]) -> tuple[str, ...]:
        if offered:
            return offered
        return tuple(await asyncio.to_thread(self._tables.close_names, name))

    # -- observations ------------------------------------------------------------------------

    async def prepare(
        self, entries: Sequence[SpeciesEntry], query: Query, *, limit: int
    ) -> dict[str, TaxonMatch | TaxonNotFoundError]:
        """Resolve every species and select their observations in one scan of the tables.

        Returns each name's taxon match, or the error a name that means nothing gets (the
        run reports those species; the others go on). Raises
        :class:`~inat_async.errors.OpenDataError` when a table cannot be read.
        """
        matches: dict[str, TaxonMatch | TaxonNotFoundError] = {}
        wanted: set[tuple[int, int]] = set()
        for entry in entries:
            try:
                if entry.taxon_id is not None:
                    taxon = await self.taxon_by_id(entry.taxon_id, species=entry.name)
                    matches[entry.name] = TaxonMatch(taxon, None)
                else:
                    matches[entry.name] = await self.resolve_taxon(entry.name)
            except TaxonNotFoundError as error:
                matches[entry.name] = error
                continue
            match = matches[entry.name]
            assert isinstance(match, TaxonMatch)
            wanted.add((match.taxon.id, entry.start_id))
        if query.sampling.per_observer is not None:
            # The run skips observations past an observer's cap: N taken may need more.
            limit = UNLIMITED
        await self._select(wanted, query, limit)
        return matches

    async def _select(self, wanted: set[tuple[int, int]], query: Query, limit: int) -> None:
        selection = (filters_of(query), limit)
        async with self._lock:
            if self._selection == selection and wanted <= self._wanted:
                return
            every = wanted | self._wanted if self._selection == selection else wanted
            await asyncio.to_thread(
                self._tables.select,
                [Wanted(taxon_id, start) for taxon_id, start in sorted(every)],
                selection[0],
                limit=limit,
            )
            self._wanted, self._selection = every, selection

    async def _ensure(self, taxon_id: int, query: Query) -> None:
        """Select for a taxon the run did not prepare (library use without prepare)."""
        selected = {taxon for taxon, _ in self._wanted}
        current = self._selection
        if current is not None and current[0] == filters_of(query) and taxon_id in selected:
            return
        limit = current[1] if current is not None else UNLIMITED
        await self._select({(taxon_id, 0)}, query, limit)

    async def observation_pages(
        self, taxon_id: int, query: Query, *, id_above: int = 0, species: str | None = None
    ) -> AsyncGenerator[ObservationPage, None]:
        await self._ensure(taxon_id, query)
        total = await asyncio.to_thread(self._tables.count, taxon_id, id_above)
        after = id_above
        while True:
            rows = await asyncio.to_thread(self._tables.page, taxon_id, after, PAGE_SIZE)
            if not rows:
                return
            observations = tuple(self._observation(row) for row in rows)
            after = rows[-1].first_photo
            yield ObservationPage(
                total_results=total,
                observations=observations,
                last_id=after,
                size=len(rows),
                cursors=tuple(row.first_photo for row in rows),
            )
            total -= len(rows)

    async def count(
        self,
        taxon_id: int,
        query: Query,
        *,
        id_above: int = 0,
        sample: int = 0,
        species: str | None = None,
    ) -> ObservationCount:
        await self._ensure(taxon_id, query)
        total = await asyncio.to_thread(self._tables.count, taxon_id, id_above)
        rows = (
            await asyncio.to_thread(self._tables.page, taxon_id, id_above, sample) if sample else []
        )
        return ObservationCount(total, tuple(self._observation(row) for row in rows))

    # -- rows to models ---------------------------------------------------------------------

    def _observation(self, row: SelectedObservation) -> Observation:
        photos = tuple(self._photo(row, photo) for photo in row.photos)
        return Observation(
            id=row.uuid,
            uuid=row.uuid,
            quality_grade=(row.quality_grade or "").lower() or None,
            license_code=None,  # the tables have no observation license
            observed_on=row.observed_on,
            time_observed_at=None,
            latitude=row.latitude,
            longitude=row.longitude,
            obscured=None,
            positional_accuracy=row.positional_accuracy,
            place_guess=None,
            taxon_id=row.taxon_id,
            taxon_name=row.taxon_name,
            taxon_rank=row.taxon_rank,
            user_id=row.observer_id,
            user_login=row.login,
            user_name=row.name,
            photos=photos,
            photo_items=len(photos),
        )

    def _photo(self, owner: SelectedObservation, photo: SelectedPhoto) -> Photo:
        license_code = photo.license.strip().lower() if photo.license else None
        return Photo(
            id=photo.photo_id,
            url=photo_url(self.url, photo.photo_id, photo.extension),
            license_code=license_code,
            attribution=attribution(license_code, owner.name, owner.login),
            width=photo.width,
            height=photo.height,
            position=photo.rank,
        )


def bucket_limits(settings: LimitSettings | None = None) -> Limits:
    """The process-wide byte budget of the bucket: a ledger of its own, apart from
    iNaturalist's hosts, in ``<state folder>/open-data-bucket``.

    Nothing documents whether iNaturalist's media limits apply to the bucket, so its
    default budgets are the same as theirs; a user may raise them knowingly.
    """
    settings = settings or LimitSettings()
    if settings.state_dir is None or settings.state_dir.name != BUCKET_LEDGER:
        state = settings.resolved_state_dir() / BUCKET_LEDGER
        settings = dataclasses.replace(settings, state_dir=state)
    return default_limits(settings)


def filters_of(query: Query) -> TableFilters:
    """The part of a run's query the tables can answer; a filter they cannot is refused."""
    filters = query.filters
    if query.sampling.spread:
        raise UsageError(
            "a spread sample picks observations by their ids; the Open Data tables have none"
        )
    if (
        filters.place_ids
        or filters.months
        or filters.years
        or filters.captive is not None
        or filters.annotation
        or filters.without_annotation
        or filters.users
        or filters.extra
    ):
        raise UsageError(
            "the Open Data tables only have quality grade, photo license, observed-on date "
            "and coordinates: place, month, year, captive, annotation, user and extra "
            "search filters cannot be used with them"
        )
    return TableFilters(
        quality=query.quality,
        licenses=query.licenses,
        d1=filters.d1,
        d2=filters.d2,
        bbox=filters.bbox,
    )


def _taxon(row: TaxonRow) -> Taxon:
    return Taxon(id=row.id, name=row.name, rank=row.rank, is_active=row.active)
