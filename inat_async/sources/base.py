"""The source seam: where a run's taxa, observations and photos come from.

A :class:`Source` answers four questions, and the pipeline (and the dry run) ask
nothing else of it, so they do not know whether the answers come from the API, from
the Open Data tables or from a test double:

* which taxon a name means (:meth:`Source.resolve_taxon`, :meth:`Source.taxon_by_id`);
* the observations above a watermark, in ascending id order, page by page
  (:meth:`Source.observation_pages`);
* how many observations there are above a watermark, with the first few as a sample
  (:meth:`Source.count`, for the dry run);
* close names for a name that means nothing (:meth:`Source.suggest`, for the dry run).

Pages hold :class:`~inat_async.models.Observation` items whose
:class:`~inat_async.models.Photo` items carry the URL the fetcher downloads; a
photo's own license is filtered by the pipeline, not by the source. Errors are
:class:`~inat_async.errors.InatError` subclasses: an unknown name is a
:class:`~inat_async.errors.TaxonNotFoundError`, anything else that stops one
species an :class:`~inat_async.errors.ApiError` (the species is reported, the run
goes on); a :class:`~inat_async.errors.StorageError` or
:class:`~inat_async.errors.LimitsError` stops the run.

:func:`choose_taxon` is the one place that decides which taxon a species means,
for the run and the dry run alike.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

from ..api import TaxonMatch
from ..limits import Limits
from ..models import Observation, ObservationPage, Taxon
from ..options import Query
from ..resume import SpeciesState
from ..species import SpeciesEntry


@dataclass(frozen=True, slots=True)
class ObservationCount:
    """What a walk from a watermark would see: how many, and the first few."""

    total: int
    #: The first observations of the walk (as many as asked, fewer if there are fewer).
    sample: tuple[Observation, ...] = ()


class Source(Protocol):
    """Where observations and photos come from (the API today; the Open Data tables next).

    Every method may be called by several tasks at once (a run walks several species
    side by side); only one walk of a species is ever advanced at a time.
    """

    async def resolve_taxon(self, name: str) -> TaxonMatch:
        """The active taxon named ``name`` (case-insensitive), or the one a synonym or
        common name means (``matched_term`` says which). Raises
        :class:`~inat_async.errors.TaxonNotFoundError` with close names when none."""
        ...

    async def taxon_by_id(self, taxon_id: int, *, species: str | None = None) -> Taxon:
        """The taxon with this id; ``species`` is context for errors."""
        ...

    def observation_pages(
        self, taxon_id: int, query: Query, *, id_above: int = 0, species: str | None = None
    ) -> AsyncGenerator[ObservationPage, None]:
        """The observations of ``taxon_id`` (descendants included) matching ``query``,
        above ``id_above``, in ascending id order, a page at a time until none is left.

        ``ObservationPage.last_id`` is the watermark a later walk continues above;
        ``total_results`` (on the first page at least) counts what is left above
        ``id_above``. An async generator: the run closes it (``aclose``) when it has
        taken enough.
        """
        ...

    async def count(
        self,
        taxon_id: int,
        query: Query,
        *,
        id_above: int = 0,
        sample: int = 0,
        species: str | None = None,
    ) -> ObservationCount:
        """How many observations a walk from ``id_above`` would see, and its first
        ``sample`` observations (none when ``sample`` is 0): one cheap question."""
        ...

    async def suggest(self, name: str, offered: tuple[str, ...]) -> tuple[str, ...]:
        """Close names for ``name``, which means no taxon; ``offered`` are those the
        failed lookup already gave. May be ``()``; never raises for a lookup error."""
        ...


@dataclass(frozen=True, slots=True)
class TaxonChoice:
    """The taxon a species means for a run, and how it was found."""

    taxon: Taxon
    #: The synonym or common name the species name matched, when it is not the taxon's.
    matched_term: str | None
    #: True when the source was asked; False when the dataset's stored taxon was kept.
    asked: bool


async def choose_taxon(
    source: Source, entry: SpeciesEntry, stored: SpeciesState | None
) -> TaxonChoice:
    """The taxon of ``entry``: what a run downloads and what a dry run counts.

    A dataset keeps the taxon it started with (a name whose meaning changes on
    iNaturalist does not switch a half-made dataset to another taxon), unless the
    species list now gives another ``taxon_id``. A ``taxon_id`` skips the name lookup.
    """
    kept = stored.taxon if stored is not None else None
    if entry.taxon_id is not None:
        if kept is not None and kept.id == entry.taxon_id:
            return TaxonChoice(kept, None, asked=False)
        taxon = await source.taxon_by_id(entry.taxon_id, species=entry.name)
        return TaxonChoice(taxon, None, asked=True)
    if kept is not None:
        assert stored is not None
        return TaxonChoice(kept, stored.matched_term, asked=False)
    match = await source.resolve_taxon(entry.name)
    return TaxonChoice(match.taxon, match.matched_term, asked=True)


def origin_of(source: object) -> tuple[tuple[str, str], ...]:
    """What a dataset made from ``source`` records of where it came from, beside its
    query: a source's optional ``origin`` (the Open Data source and its snapshot);
    ``()`` for the API and any source without one."""
    origin = getattr(source, "origin", ())
    return tuple(origin) if isinstance(origin, tuple) else ()


def photo_limits_of(source: object) -> Limits | None:
    """The byte budget a source's photo downloads are charged to: its optional
    ``photo_limits`` (the Open Data bucket's own ledger); None for the run's own."""
    limits = getattr(source, "photo_limits", None)
    return limits if isinstance(limits, Limits) else None
