"""Samples that are not the oldest observations: a seeded spread over a species' id range.

A spread sample of N observations is the first N picks of an endless, seeded sequence
of target ids spread evenly over the species' id range (an additive recurrence on the
golden ratio: each new target falls in the largest gap the earlier ones left). Each
target picks the first matching observation above it that is not already chosen and
whose observer is under the ``per_observer`` cap (wrapping round to the start of the
range). Hence:

- the same seed gives the same selection, and N picks are always the first N of a
  larger -o: a larger -o, or a rerun after a kill, continues the sequence where the
  store stands (the k-th target is picked once the first k-1 picks are stored);
- the range is fixed on the first run and kept in the dataset, so observations added
  to iNaturalist later do not move the targets;
- a pick costs one small search (``per_page`` :data:`PICK_PAGE`), more when it lands on
  observations already chosen: about N requests, where the oldest N cost N/200.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from typing import Any, Protocol

from .errors import UsageError
from .models import Observation, ObservationPage
from .options import Query
from .sources.base import Source

#: Observations asked per pick: room to step over a few that are already chosen.
PICK_PAGE = 10
_GOLDEN = (math.sqrt(5) - 1) / 2


class _LastId(Protocol):
    async def last_id(
        self, taxon_id: int, query: Query, *, species: str | None = None
    ) -> int | None: ...


def observer_key(observation: Observation) -> str:
    """Who made an observation: the user id, or the login when no id is known."""
    if observation.user_id is not None:
        return f"id:{observation.user_id}"
    return f"login:{observation.user_login or ''}"


def row_observer_key(row: Mapping[str, Any]) -> str:
    """:func:`observer_key` of a stored metadata row."""
    user_id = row.get("observer_id")
    if isinstance(user_id, int):
        return f"id:{user_id}"
    return f"login:{row.get('observer_login') or ''}"


def targets(seed: int, low: int, high: int, start: int = 0) -> Iterable[int]:
    """The ids above which picks ``start``, ``start + 1``, ... look, within ``low..high``."""
    offset = random.Random(f"spread:{seed}").random()
    width = high - low + 1
    k = start
    while True:
        fraction = (offset + k * _GOLDEN) % 1.0
        yield low - 1 + math.floor(fraction * width)
        k += 1


def numeric_id(observation: Observation) -> int:
    """A spread sample walks observation ids: a source without numeric ids cannot take part."""
    if not isinstance(observation.id, int):
        raise UsageError("a spread sample needs numeric observation ids; this source has none")
    return observation.id


async def id_range(
    source: Source, taxon_id: int, query: Query, *, id_above: int, species: str
) -> tuple[int, int] | None:
    """The lowest and highest ids of the matching observations above ``id_above``
    (None when there are none): two requests with the API source, else a search."""
    first = await source.count(taxon_id, query, id_above=id_above, sample=1, species=species)
    if not first.sample:
        return None
    low = numeric_id(first.sample[0])
    last_id = getattr(source, "last_id", None)
    if last_id is not None:
        finder: _LastId = source  # type: ignore[assignment]
        high = await finder.last_id(taxon_id, query, species=species)
        return (low, high) if high is not None and high >= low else (low, low)
    return low, await _highest(source, taxon_id, query, low, species)


async def _highest(source: Source, taxon_id: int, query: Query, low: int, species: str) -> int:
    """The highest id, by counting what lies above: for sources that cannot sort newest
    first (about 2 log2(range) cheap counts, once per dataset)."""

    async def any_above(value: int) -> bool:
        return (await source.count(taxon_id, query, id_above=value, species=species)).total > 0

    step = 1
    while await any_above(low + step):
        step *= 2
    lo, hi = low + step // 2, low + step  # something above lo (or lo == low), none above hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if await any_above(mid):
            lo = mid
        else:
            hi = mid
    return hi if hi > low and await any_above(hi - 1) else lo


async def spread_pages(
    source: Source,
    taxon_id: int,
    query: Query,
    *,
    id_range: tuple[int, int],
    chosen: set[int],
    observers: dict[str, int],
    species: str,
) -> AsyncGenerator[ObservationPage, None]:
    """One page per pick, continuing the sequence after the ``len(chosen)`` picks made.

    ``chosen`` and ``observers`` (observations per observer) describe what the dataset
    holds; both are updated as picks are made. Ends when no observation is left to pick.
    """
    low, high = id_range
    cap = query.sampling.per_observer
    seed = query.sampling.seed

    def wanted(observation: Observation) -> bool:
        if numeric_id(observation) in chosen or numeric_id(observation) < low:
            return False
        return cap is None or observers.get(observer_key(observation), 0) < cap

    for target in targets(seed, low, high, start=len(chosen)):
        picked = await _pick(source, taxon_id, query, target, id_range, wanted, species)
        if picked is None:
            return
        chosen.add(numeric_id(picked))
        key = observer_key(picked)
        observers[key] = observers.get(key, 0) + 1
        yield ObservationPage(
            total_results=None, observations=(picked,), last_id=numeric_id(picked), size=1
        )


async def _pick(
    source: Source,
    taxon_id: int,
    query: Query,
    target: int,
    id_range: tuple[int, int],
    wanted: Callable[[Observation], bool],
    species: str,
) -> Observation | None:
    """The first wanted observation above ``target``, wrapping round once to the start."""
    low, high = id_range
    above, wrapped = target, False
    while True:
        found = await source.count(
            taxon_id, query, id_above=above, sample=PICK_PAGE, species=species
        )
        at_end = len(found.sample) < PICK_PAGE
        for observation in found.sample:
            if wrapped and numeric_id(observation) > target:
                return None  # round the whole range: nothing left to pick
            if numeric_id(observation) > high:
                at_end = True  # newer than the range: the end of it
                break
            if wanted(observation):
                return observation
        if not at_end:
            above = numeric_id(found.sample[-1])
        elif wrapped:
            return None
        else:
            above, wrapped = low - 1, True
