"""Species lists from ``/observations/species_counts``, and the lookups made before a run.

:func:`list_species` pages through the counts of a higher taxon and/or a place under the
shared request pace, rolls leaf taxa below the rank asked for (subspecies, varieties) up
into it, and returns one row per taxon, largest first; :func:`write_species_csv` writes
them as a species list that ``run`` reads as it is (``name,taxon_id,observations``)::

    async with api_client(api_url=OFFICIAL_API_URL) as client:
        rows = await list_species(client, taxon="Apidae", query=Query(filters=filters))
    write_species_csv(rows, "bees.csv")

:func:`resolve_selection` turns a :class:`~inat_async.selection.FilterRequest` (and the
taxa a search URL names) into :class:`~inat_async.selection.Filters` and species entries.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from .api import InatClient
from .errors import ApiError, StorageError, TaxonNotFoundError, UsageError
from .events import EventCallback, ignore
from .limits import Limits, LimitSettings
from .models import is_result_page, parse_taxa_page
from .options import Query
from .retry import RetryPolicy
from .selection import FilterRequest, Filters
from .settings import DEFAULT_USER_AGENT, OFFICIAL_API_URL, resolve_limits
from .species import SpeciesEntry, normalise_name

#: ``/observations/species_counts`` answers up to this many taxa a page.
SPECIES_COUNTS_PER_PAGE = 500
#: ``/taxa/<ids>`` lookups are sent this many ids at a time.
TAXA_PER_REQUEST = 30
#: iNaturalist's rank levels (lower is finer), as the API's ``rank_level``.
RANK_LEVELS: dict[str, float] = {
    "kingdom": 70,
    "phylum": 60,
    "subphylum": 57,
    "superclass": 53,
    "class": 50,
    "subclass": 47,
    "superorder": 43,
    "order": 40,
    "suborder": 37,
    "infraorder": 35,
    "superfamily": 33,
    "epifamily": 32,
    "family": 30,
    "subfamily": 27,
    "supertribe": 26,
    "tribe": 25,
    "subtribe": 24,
    "genus": 20,
    "subgenus": 15,
    "section": 13,
    "subsection": 12,
    "complex": 11,
    "species": 10,
    "subspecies": 5,
    "variety": 5,
    "form": 5,
}


@contextlib.asynccontextmanager
async def api_client(
    *,
    api_url: str = OFFICIAL_API_URL,
    user_agent: str = DEFAULT_USER_AGENT,
    limits: Limits | LimitSettings | None = None,
    retry: RetryPolicy | None = None,
    session: aiohttp.ClientSession | None = None,
    on_event: EventCallback = ignore,
) -> AsyncIterator[InatClient]:
    """An API client under the shared limits, on ``session`` or a session of its own."""
    shared = resolve_limits(limits, api_url)
    owns = session is None
    if session is None:
        session = aiohttp.ClientSession(headers={"User-Agent": user_agent})
    try:
        yield InatClient(session, limits=shared, api_url=api_url, retry=retry, on_event=on_event)
    finally:
        if owns:
            await session.close()


async def resolve_selection(
    client: InatClient, request: FilterRequest, *, taxon_ids: Sequence[int] = ()
) -> tuple[Filters, list[SpeciesEntry]]:
    """The filters of ``request`` with names looked up, and an entry per taxon id.

    An unknown place, annotation term or value, or taxon id is a :class:`UsageError`.
    """
    filters = await request.resolve(client)
    entries: list[SpeciesEntry] = []
    for taxon_id in taxon_ids:
        try:
            taxon = await client.taxon_by_id(taxon_id)
        except ApiError as exc:
            if exc.status not in (None, 404, 422):
                raise
            raise UsageError(f"no iNaturalist taxon has id {taxon_id}") from None
        entries.append(SpeciesEntry(normalise_name(taxon.name), taxon_id=taxon.id))
    return filters, entries


@dataclass(frozen=True, slots=True)
class SpeciesCount:
    """One row of a species list: a taxon at the rank asked for and its observations."""

    name: str
    taxon_id: int
    observations: int
    rank: str | None = None
    #: How many leaf taxa (the taxon itself, its subspecies, ...) were rolled into it.
    leaves: int = 1


@dataclass(frozen=True, slots=True)
class _Leaf:
    id: int
    name: str
    rank: str | None
    rank_level: float | None
    ancestors: tuple[int, ...]
    count: int


async def list_species(
    client: InatClient,
    *,
    taxon: str | int | None = None,
    query: Query | None = None,
    rank: str = "species",
    min_observations: int = 1,
    limit: int | None = None,
) -> list[SpeciesCount]:
    """The taxa at ``rank`` under ``taxon`` with observations matching ``query``.

    ``taxon`` is a name (resolved as a run resolves names) or an id; None lists every
    taxon the filters find (give a place then). Leaves below the rank are counted in
    their ancestor at the rank; leaves above it (observations identified only to a
    genus, for species) are left out. Largest first, then by name.
    """
    query = query or Query()
    if rank not in RANK_LEVELS:
        raise UsageError(f"unknown rank {rank!r}; use one of {', '.join(RANK_LEVELS)}")
    if min_observations < 1:
        raise UsageError(f"min_observations must be at least 1, got {min_observations}")
    if limit is not None and limit < 1:
        raise UsageError(f"limit must be at least 1, got {limit}")
    if taxon is None and not query.filters.place_ids and not query.filters.bbox:
        raise UsageError("name a taxon, or a place (or a box) to list every species seen there")
    params: dict[str, str | int] = {**query.filters.params(), "photos": "true"}
    if query.quality_param:
        params["quality_grade"] = query.quality_param
    if query.license_param:
        params["license"] = params["photo_license"] = query.license_param
    if taxon is not None:
        params["taxon_id"] = await _taxon_id(client, taxon)
    leaves = [leaf async for leaf in _leaves(client, params)]
    rows = await _roll_up(client, leaves, rank)
    rows = [row for row in rows if row.observations >= min_observations]
    rows.sort(key=lambda row: (-row.observations, row.name.casefold(), row.taxon_id))
    return rows[:limit] if limit is not None else rows


async def _taxon_id(client: InatClient, taxon: str | int) -> int:
    if isinstance(taxon, int) or taxon.strip().isdigit():
        taxon_id = int(taxon)
        try:
            await client.taxon_by_id(taxon_id)
        except ApiError as exc:
            if exc.status not in (None, 404, 422):
                raise
            raise UsageError(f"no iNaturalist taxon has id {taxon_id}") from None
        return taxon_id
    try:
        match = await client.resolve_taxon(normalise_name(taxon))
    except TaxonNotFoundError as exc:
        raise UsageError(str(exc)) from None
    return match.taxon.id


async def _leaves(client: InatClient, params: Mapping[str, str | int]) -> AsyncIterator[_Leaf]:
    page = 1
    seen = 0
    while True:
        body = await client.get_json(
            "observations/species_counts",
            {**params, "per_page": SPECIES_COUNTS_PER_PAGE, "page": page},
            valid=is_result_page,
            context={"page": page},
        )
        results = [item for item in body["results"] if isinstance(item, Mapping)]
        for item in results:
            leaf = _leaf(item)
            if leaf is not None:
                yield leaf
        seen += len(body["results"])
        total = body.get("total_results")
        if len(body["results"]) < SPECIES_COUNTS_PER_PAGE or (
            isinstance(total, int) and seen >= total
        ):
            return
        page += 1


def _leaf(item: Mapping[str, Any]) -> _Leaf | None:
    taxon, count = item.get("taxon"), item.get("count")
    if not isinstance(taxon, Mapping) or not isinstance(count, int) or isinstance(count, bool):
        return None
    taxon_id, name = taxon.get("id"), taxon.get("name")
    if not isinstance(taxon_id, int) or not isinstance(name, str) or count < 1:
        return None
    level = taxon.get("rank_level")
    rank = taxon.get("rank") if isinstance(taxon.get("rank"), str) else None
    return _Leaf(
        taxon_id,
        name,
        rank,
        float(level) if isinstance(level, int | float) and not isinstance(level, bool) else None,
        _ancestry(taxon.get("ancestry")),
        count,
    )


def _ancestry(value: object) -> tuple[int, ...]:
    """``"48460/1/47120"`` (root first); the open-data tables write ``\\`` too."""
    if not isinstance(value, str):
        return ()
    parts = value.replace("\\", "/").split("/")
    return tuple(int(p) for p in parts if p.strip().isdigit())


def _level(rank: str | None, rank_level: float | None) -> float | None:
    if rank_level is not None:
        return rank_level
    return RANK_LEVELS.get(rank or "")


async def _roll_up(client: InatClient, leaves: list[_Leaf], rank: str) -> list[SpeciesCount]:
    """Sum leaves into their ancestor at ``rank``, looking up ancestors it does not know."""
    target = RANK_LEVELS[rank]
    known: dict[int, tuple[str, str | None]] = {leaf.id: (leaf.name, leaf.rank) for leaf in leaves}
    totals: dict[int, list[int]] = {}
    below: list[_Leaf] = []
    for leaf in leaves:
        level = _level(leaf.rank, leaf.rank_level)
        if leaf.rank == rank:
            totals.setdefault(leaf.id, [0, 0])
            totals[leaf.id][0] += leaf.count
            totals[leaf.id][1] += 1
        elif level is not None and level < target:
            below.append(leaf)
    # Ancestors nearest first; fetch the unknown ones a batch at a time until each leaf
    # reaches an ancestor at the rank (usually its parent: one lookup for all).
    pending = list(below)
    depth = 1
    while pending:
        wanted = {
            leaf.ancestors[-depth]
            for leaf in pending
            if depth <= len(leaf.ancestors) and leaf.ancestors[-depth] not in known
        }
        await _lookup(client, sorted(wanted), known)
        still: list[_Leaf] = []
        for leaf in pending:
            if depth > len(leaf.ancestors):
                continue  # no ancestor at the rank: left out
            ancestor = leaf.ancestors[-depth]
            ancestor_rank = known.get(ancestor, ("", None))[1]
            if ancestor_rank == rank:
                totals.setdefault(ancestor, [0, 0])
                totals[ancestor][0] += leaf.count
                totals[ancestor][1] += 1
            elif ancestor_rank is None or RANK_LEVELS.get(ancestor_rank, 0) < target:
                still.append(leaf)
        pending, depth = still, depth + 1
    return [
        SpeciesCount(known[taxon_id][0], taxon_id, count, rank, leaves)
        for taxon_id, (count, leaves) in totals.items()
    ]


async def _lookup(
    client: InatClient, ids: Sequence[int], known: dict[int, tuple[str, str | None]]
) -> None:
    for start in range(0, len(ids), TAXA_PER_REQUEST):
        batch = ids[start : start + TAXA_PER_REQUEST]
        body = await client.get_json(f"taxa/{','.join(map(str, batch))}", {}, valid=is_result_page)
        for taxon in parse_taxa_page(body):
            known[taxon.id] = (taxon.name, taxon.rank)
        for taxon_id in batch:
            # An id the API does not know is not looked up again.
            known.setdefault(taxon_id, ("", "unknown"))


SPECIES_CSV_COLUMNS = ("name", "taxon_id", "observations")


def species_csv_text(rows: Iterable[SpeciesCount]) -> str:
    """The species list as CSV text: ``name,taxon_id,observations``."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SPECIES_CSV_COLUMNS)
    for row in rows:
        writer.writerow((row.name, row.taxon_id, row.observations))
    return buffer.getvalue()


def write_species_csv(rows: Iterable[SpeciesCount], path: str | os.PathLike[str]) -> Path:
    """Write the species list to ``path`` atomically (a temporary file renamed into place)."""
    target = Path(path)
    text = species_csv_text(rows)
    # A name of our own opened with "x", not mkstemp: the file gets the user's umask.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        try:
            with tmp.open("x", encoding="utf-8", newline="") as handle:
                handle.write(text)
            tmp.replace(target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
    except OSError as exc:
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target
