"""The API source: taxa and observation pages from the iNaturalist v1 API (or a mirror).

A thin adapter over :class:`~inat_async.api.InatClient`: every request it sends is
paced by the client's shared limits and retried by its policy; requests of several
species may be in flight together (the limits pace how often requests start, not how
many are open).
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import AsyncGenerator

from ..api import InatClient, TaxonMatch
from ..errors import InatError
from ..models import ObservationPage, Taxon, is_result_page, parse_taxa_page
from ..options import Query
from .base import ObservationCount


class ApiSource:
    """Observations and photos as the v1 API gives them.

    >>> source = ApiSource(InatClient(session, limits=default_limits()))  # doctest: +SKIP
    >>> choice = await choose_taxon(source, SpeciesEntry("Apis mellifera"), None)  # doctest: +SKIP
    """

    def __init__(self, client: InatClient) -> None:
        self.client = client

    async def resolve_taxon(self, name: str) -> TaxonMatch:
        return await self.client.resolve_taxon(name)

    async def taxon_by_id(self, taxon_id: int, *, species: str | None = None) -> Taxon:
        return await self.client.taxon_by_id(taxon_id, species=species)

    async def observation_pages(
        self, taxon_id: int, query: Query, *, id_above: int = 0, species: str | None = None
    ) -> AsyncGenerator[ObservationPage, None]:
        pages = self.client.observation_pages(taxon_id, query, id_above=id_above, species=species)
        async with contextlib.aclosing(pages):
            async for page in pages:
                yield page
                if page.total_results is not None and page.size >= page.total_results:
                    # total_results counts what was left above this page's id_above: it
                    # held them all, and the empty page that would say so costs a request
                    # (a third of a small species' requests).
                    return

    async def count(
        self,
        taxon_id: int,
        query: Query,
        *,
        id_above: int = 0,
        sample: int = 0,
        species: str | None = None,
    ) -> ObservationCount:
        if not sample:
            total = await self.client.count_observations(
                taxon_id, query, id_above=id_above, species=species
            )
            return ObservationCount(total)
        # One search answers both: its total_results and its first `sample` results.
        params = InatClient.search_params(taxon_id, query, id_above)
        params["per_page"] = sample
        page = await self.client.observation_page(params, context={"species": species})
        total = page.total_results if page.total_results is not None else page.size
        return ObservationCount(total, page.observations)

    async def last_id(
        self, taxon_id: int, query: Query, *, species: str | None = None
    ) -> int | None:
        """The highest id of the matching observations (one request, newest first)."""
        params = InatClient.search_params(taxon_id, query, 0)
        params.update({"order": "desc", "per_page": 1})
        page = await self.client.observation_page(params, context={"species": species})
        return page.last_id

    async def suggest(self, name: str, offered: tuple[str, ...]) -> tuple[str, ...]:
        """What the failed search offered; else names under the first word of ``name``
        (the genus of a misspelt species) that look alike."""
        if offered:
            return offered
        first = name.split()[0]
        try:
            body = await self.client.get_json(
                "taxa",
                {"q": first, "per_page": 100},
                valid=is_result_page,
                context={"species": name},
            )
        except InatError:
            return ()
        names = {taxon.name for taxon in parse_taxa_page(body) if taxon.is_active}
        return tuple(difflib.get_close_matches(name, names, n=3, cutoff=0.75))
