"""Observations as heavy as the real API sends them: identifications, ancestries, users.

A real observation search result carries, besides what a downloader reads, every
identification (each with its identifier's user object and its taxon with the whole
ancestry as full taxon objects), the same again for the identifications by others
(``non_owner_ids``), and the comments: 15-60 KB an observation in the recorded
answers (``pyinaturalist__v1_get_observations_page*.json``), several MB a page of 200.
:func:`heavy_observation_json` adds those parts to :func:`.render.observation_json`,
in the recorded shape, so that the client parses, and the tests and the benchmark
pay for, what users' runs do. It is opt-in (``FakeInatServer(heavy_pages=True)``):
most tests do not need megabytes of JSON.
"""

from __future__ import annotations

from typing import Any

from .data import FakeDataset, FakeObservation, FakeTaxon, FakeUser
from .render import _details, observation_json, taxon_json, user_json

_CATEGORIES = ("improving", "supporting", "leading", "supporting")


def full_taxon_json(
    taxon: FakeTaxon, dataset: FakeDataset, base_url: str, *, ancestors: bool = True
) -> dict[str, Any]:
    """A taxon as identifications carry it: the search fields plus its ancestors, whole."""
    data = taxon_json(taxon, dataset, base_url)
    lineage = [a for i in taxon.ancestor_ids[:-1] if (a := dataset.taxon(i)) is not None]
    data.update(
        {
            "photos_locked": False,
            "min_species_ancestry": ",".join(map(str, taxon.ancestor_ids)),
            "wikipedia_url": f"http://en.wikipedia.org/wiki/{taxon.name.replace(' ', '_')}",
            "created_at": "2008-10-26T20:24:33+00:00",
            "universal_search_rank": data["observations_count"],
            "min_species_taxon_id": taxon.id,
            "conservation_status": None,
        }
    )
    if ancestors:
        data["ancestors"] = [
            {
                **taxon_json(ancestor, dataset, base_url),
                "complete_rank": "species",
                "wikipedia_url": f"http://en.wikipedia.org/wiki/{ancestor.name}",
            }
            for ancestor in lineage
        ]
    return data


def _identifier(obs: FakeObservation, dataset: FakeDataset, n: int) -> FakeUser:
    """The owner first, then other users of the dataset, chosen by the observation's id."""
    if n == 0:
        return obs.user
    others = dataset.observations
    return others[(obs.id * 7919 + n * 104_729) % len(others)].user


def identification_json(
    obs: FakeObservation, dataset: FakeDataset, base_url: str, n: int
) -> dict[str, Any]:
    taxon = dataset.taxa[obs.taxon_id]
    # Every third identification is a coarser one (the parent), as "leading" IDs are.
    coarse = n % 3 == 2 and taxon.parent_id is not None and dataset.taxon(taxon.parent_id)
    ident_taxon = coarse if isinstance(coarse, FakeTaxon) else taxon
    user = _identifier(obs, dataset, n)
    return {
        "id": obs.id * 10 + n,
        "uuid": f"{obs.uuid[:-4]}{n:04d}",
        "user": user_json(user),
        "created_at": obs.created_at,
        "created_at_details": _details(obs.created_at),
        "body": None,
        "category": _CATEGORIES[n % len(_CATEGORIES)],
        "current": True,
        "flags": [],
        "own_observation": user.id == obs.user.id,
        "taxon_change": None,
        "vision": n % 2 == 0,
        "disagreement": None,
        "previous_observation_taxon_id": obs.taxon_id,
        "spam": False,
        "taxon_id": ident_taxon.id,
        "hidden": False,
        "moderator_actions": [],
        "taxon": full_taxon_json(ident_taxon, dataset, base_url),
        "previous_observation_taxon": full_taxon_json(taxon, dataset, base_url, ancestors=False),
    }


def comment_json(obs: FakeObservation, dataset: FakeDataset, n: int) -> dict[str, Any]:
    return {
        "moderator_actions": [],
        "hidden": False,
        "flags": [],
        "created_at": obs.updated_at,
        "id": obs.id * 10 + n,
        "created_at_details": _details(obs.updated_at),
        "body": "Nice find! The pattern on the thorax is clear in the second photo.",
        "uuid": f"{obs.uuid[:-4]}c{n:03d}",
        "user": user_json(_identifier(obs, dataset, n + 1)),
    }


def heavy_observation_json(
    obs: FakeObservation, dataset: FakeDataset, base_url: str
) -> dict[str, Any]:
    """:func:`observation_json` with its identifications, comments and ancestries filled in."""
    data = observation_json(obs, dataset, base_url)
    identifications = [
        identification_json(obs, dataset, base_url, n)
        for n in range(max(1, obs.identifications_count))
    ]
    data["identifications"] = identifications
    data["non_owner_ids"] = [i for i in identifications if not i["own_observation"]]
    data["comments"] = [comment_json(obs, dataset, n) for n in range(obs.comments_count)]
    return data
