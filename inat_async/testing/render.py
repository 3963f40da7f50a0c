"""The dataset as the v1 API writes it: observations, taxa, users and photos as JSON.

Field names, nesting and nulls follow the recorded answers in the project's fixtures; the
photo URLs point at the fake server (``base_url`` plus the emulated host prefix).
"""

from __future__ import annotations

import json
from typing import Any

from .catalog import CONTROLLED_TERMS, FAKE_PLACES, FakePlace, FakeTerm
from .data import FakeDataset, FakeObservation, FakePhoto, FakeTaxon, FakeUser

_WWW = "https://www.inaturalist.org"


def dumps(body: object) -> bytes:
    # Like the real API: compact, UTF-8, non-ASCII left as is.
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def photo_json(photo: FakePhoto, base_url: str) -> dict[str, Any]:
    flags: list[dict[str, Any]] = []
    if photo.placeholder is not None:
        flags.append({"id": photo.id + 7, "flag": "copyright infringement", "resolved": False})
    return {
        "id": photo.id,
        "license_code": photo.license_code,
        "url": photo.url(base_url),
        "attribution": photo.attribution,
        "original_dimensions": {"width": photo.width, "height": photo.height},
        "flags": flags,
    }


def default_photo_json(photo: FakePhoto, base_url: str) -> dict[str, Any]:
    data = photo_json(photo, base_url)
    data["square_url"] = photo.url(base_url, "square")
    data["medium_url"] = photo.url(base_url, "medium")
    return data


def user_json(user: FakeUser) -> dict[str, Any]:
    return {
        "id": user.id,
        "login": user.login,
        "spam": False,
        "suspended": False,
        "created_at": user.created_at,
        "site_id": 1,
        "login_autocomplete": user.login,
        "login_exact": user.login,
        "name": user.name,
        "name_autocomplete": user.name,
        "orcid": None,
        "icon": None,
        "observations_count": 10 + user.id % 3000,
        "identifications_count": user.id % 900,
        "journal_posts_count": 0,
        "activity_count": 10 + user.id % 3900,
        "species_count": 1 + user.id % 700,
        "universal_search_rank": 10 + user.id % 3000,
        "roles": [],
        "icon_url": None,
    }


def taxon_json(
    taxon: FakeTaxon,
    dataset: FakeDataset,
    base_url: str,
    *,
    matched_term: str | None = None,
) -> dict[str, Any]:
    photo = dataset.default_photo(taxon.id)
    ancestors = taxon.ancestor_ids[:-1]
    data: dict[str, Any] = {
        "observations_count": dataset.observations_count(taxon.id),
        "taxon_schemes_count": 0,
        "ancestry": "/".join(map(str, ancestors)) or None,
        "is_active": taxon.is_active,
        "flag_counts": {"resolved": 0, "unresolved": 0},
        "wikipedia_url": None,
        "current_synonymous_taxon_ids": (
            list(taxon.current_synonymous_taxon_ids) if taxon.current_synonymous_taxon_ids else None
        ),
        "iconic_taxon_id": taxon.iconic_taxon_id,
        "rank_level": taxon.rank_level,
        "taxon_changes_count": 0 if taxon.is_active else 1,
        "atlas_id": None,
        "complete_species_count": None,
        "parent_id": taxon.parent_id,
        "name": taxon.name,
        "rank": taxon.rank,
        "extinct": False,
        "id": taxon.id,
        "default_photo": None if photo is None else default_photo_json(photo, base_url),
        "ancestor_ids": list(taxon.ancestor_ids),
        "iconic_taxon_name": taxon.iconic_taxon_name,
    }
    if matched_term is not None:
        data["matched_term"] = matched_term
    if taxon.common_name:
        data["preferred_common_name"] = taxon.common_name
    return data


def _details(iso: str | None, *, with_hour: bool = True) -> dict[str, Any] | None:
    if iso is None:
        return None
    year, month, day = (int(part) for part in iso[:10].split("-"))
    details: dict[str, Any] = {"date": iso[:10], "day": day, "month": month, "year": year}
    if with_hour and len(iso) > 13:
        details["hour"] = int(iso[11:13])
    details["week"] = min(53, 1 + (_day_of_year(year, month, day) - 1) // 7)
    return details


def _day_of_year(year: int, month: int, day: int) -> int:
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    return sum(days[: month - 1]) + day


def observation_json(obs: FakeObservation, dataset: FakeDataset, base_url: str) -> dict[str, Any]:
    taxon = dataset.taxa[obs.taxon_id]
    photos = [photo_json(photo, base_url) for photo in obs.photos]
    has_geo = obs.latitude is not None and obs.longitude is not None
    observed_string = None
    if obs.observed_on is not None:
        observed_string = obs.observed_on
        if obs.time_observed_at is not None:
            observed_string = obs.time_observed_at.replace("T", " ")
    return {
        "quality_grade": obs.quality_grade,
        "time_observed_at": obs.time_observed_at,
        "taxon_geoprivacy": None,
        "annotations": [annotation_json(obs, term, value) for term, value in obs.annotations],
        "uuid": obs.uuid,
        "observed_on_details": _details(obs.time_observed_at or obs.observed_on),
        "id": obs.id,
        "cached_votes_total": 0,
        "identifications_most_agree": obs.agreements > 0,
        "created_at_details": _details(obs.created_at),
        "species_guess": taxon.common_name or taxon.name,
        "identifications_most_disagree": False,
        "tags": [],
        "positional_accuracy": obs.positional_accuracy,
        "comments_count": obs.comments_count,
        "site_id": 1,
        "created_time_zone": obs.time_zone,
        "license_code": obs.license_code,
        "observed_time_zone": obs.time_zone,
        "quality_metrics": [],
        "public_positional_accuracy": obs.positional_accuracy,
        "reviewed_by": [obs.user.id],
        "oauth_application_id": None,
        "flags": [],
        "created_at": obs.created_at,
        "description": obs.description,
        "time_zone_offset": obs.time_zone_offset,
        "project_ids_with_curator_id": [],
        "observed_on": obs.observed_on,
        "observed_on_string": observed_string,
        "updated_at": obs.updated_at,
        "sounds": [],
        "place_ids": list(obs.place_ids),
        "captive": obs.captive,
        "taxon": taxon_json(taxon, dataset, base_url),
        "ident_taxon_ids": list(taxon.ancestor_ids),
        "outlinks": [],
        "faves_count": obs.faves_count,
        "ofvs": [],
        "num_identification_agreements": obs.agreements,
        "preferences": {"prefers_community_taxon": None},
        "comments": [],
        "map_scale": None,
        "uri": f"{_WWW}/observations/{obs.id}",
        "project_ids": [],
        "community_taxon_id": obs.taxon_id if obs.agreements else None,
        "geojson": (
            {"type": "Point", "coordinates": [obs.longitude, obs.latitude]} if has_geo else None
        ),
        "owners_identification_from_vision": obs.id % 3 == 0,
        "identifications_count": obs.identifications_count,
        "obscured": obs.obscured,
        "num_identification_disagreements": 0,
        "geoprivacy": "obscured" if obs.obscured else None,
        "location": f"{obs.latitude},{obs.longitude}" if has_geo else None,
        "votes": [],
        "spam": False,
        "user": user_json(obs.user),
        "mappable": has_geo,
        "identifications_some_agree": obs.agreements > 0,
        "project_ids_without_curator_id": [],
        "place_guess": obs.place_guess,
        "identifications": [],
        "project_observations": [],
        "photos": photos,
        "observation_photos": [
            {
                "id": photo.observation_photo_id,
                "position": position,
                "uuid": photo.uuid,
                "photo_id": photo.id,
                "photo": data,
            }
            for position, (photo, data) in enumerate(zip(obs.photos, photos, strict=True))
        ],
        "faves": [],
        "non_owner_ids": [],
    }


def annotation_json(obs: FakeObservation, term_id: int, value_id: int) -> dict[str, Any]:
    """One annotation, as recent recorded answers carry it: ids, and the term and value."""
    term = next(t for t in CONTROLLED_TERMS if t.id == term_id)
    value = next(v for v in _values_json(term) if v["id"] == value_id)
    return {
        "uuid": f"{obs.uuid[:24]}{term_id:04d}{value_id:08d}",
        "controlled_attribute_id": term_id,
        "controlled_value_id": value_id,
        "concatenated_attr_val": f"{term_id}|{value_id}",
        "vote_score": 0,
        "user_id": obs.user.id,
        "votes": [],
        "user": user_json(obs.user),
        "controlled_attribute": _term_json(term),
        "controlled_value": {**value, "is_value": True, "taxon_ids": [1]},
    }


def _values_json(term: FakeTerm) -> list[dict[str, Any]]:
    return [
        {
            "id": value_id,
            "ontology_uri": "",
            "uri": "",
            "blocking": False,
            "uuid": f"{term.uuid[:8]}-value-{value_id}",
            "label": label,
        }
        for value_id, label, _ in term.values
    ]


def _term_json(term: FakeTerm) -> dict[str, Any]:
    return {
        "id": term.id,
        "ontology_uri": "",
        "uri": "",
        "is_value": False,
        "multivalued": term.multivalued,
        "uuid": term.uuid,
        "values": _values_json(term),
        "taxon_ids": [1] if term.id in (1, 9, 17) else [48460],
        "label": term.label,
    }


def controlled_terms_json() -> dict[str, Any]:
    """``GET /v1/controlled_terms``, shaped as the recorded answer."""
    results = [_term_json(term) for term in CONTROLLED_TERMS]
    return {"total_results": len(results), "page": 1, "per_page": 30, "results": results}


def _ancestors(place: FakePlace) -> list[int]:
    by_id = {p.id: p for p in FAKE_PLACES}
    chain: list[int] = []
    at: int | None = place.id
    while at is not None:
        chain.append(at)
        at = by_id[at].parent_id
    return chain[::-1]


def place_json(place: FakePlace, *, full: bool = False) -> dict[str, Any]:
    """A place as ``/places/autocomplete`` writes it, or with its geometry (``/places/<ids>``)."""
    swlat, swlng, nelat, nelng = place.bbox
    ring = [[swlng, swlat], [nelng, swlat], [nelng, nelat], [swlng, nelat], [swlng, swlat]]
    data: dict[str, Any] = {
        "ancestor_place_ids": _ancestors(place),
        "bounding_box_geojson": None,
        "bbox_area": round((nelat - swlat) * (nelng - swlng), 9),
        "admin_level": place.admin_level,
        "place_type": place.place_type,
        "name": place.name,
        "location": f"{(swlat + nelat) / 2:.6f},{(swlng + nelng) / 2:.6f}",
        "id": place.id,
        "display_name": place.display_name,
        "slug": place.display_name.lower().replace(", ", "-").replace(" ", "-"),
        "geometry_geojson": None,
    }
    if full:
        data["uuid"] = f"00000000-0000-4000-8000-{place.id:012d}"
        data["bounding_box_geojson"] = {"type": "Polygon", "coordinates": [ring]}
        data["geometry_geojson"] = {"type": "MultiPolygon", "coordinates": [[ring]]}
    return data


def species_count_json(
    taxon: FakeTaxon, count: int, dataset: FakeDataset, base_url: str
) -> dict[str, Any]:
    return {"count": count, "taxon": taxon_json(taxon, dataset, base_url)}
