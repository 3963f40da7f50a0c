"""Run folders made directly, without a server, for export tests and benchmarks.

:func:`generate_run_folder` writes what ``run`` would leave behind (the resume store
with species, observations and done photos, and the photo files) from a seed, fast
enough for 100,000 photos. Observers, observations per observer and photos per
observation vary; duplicate bytes (the same photo uploaded twice, or under two species)
can be asked for.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ..layout import Layout, metadata_row
from ..models import Observation, Photo, Taxon
from ..options import Query
from ..resume import ResumeStore

LICENSES = ("cc-by", "cc-by-nc", "cc0", "cc-by-sa", None)


@dataclass(frozen=True, slots=True)
class GeneratedPhoto:
    species: str
    observation_id: int
    observer_id: int
    photo_id: int
    file_name: str
    sha256: str


def generate_run_folder(
    out: Path,
    *,
    photos: int,
    species: Sequence[str] = ("Apis mellifera", "Mantis religiosa", "Martes americana"),
    observers: int = 50,
    seed: int = 0,
    duplicates: int = 0,
    cross_species_duplicates: int = 0,
    real_images: bool = False,
    first_observation_id: int = 1,
    first_photo_id: int = 1,
) -> list[GeneratedPhoto]:
    """Add ``photos`` done photos to the run folder ``out`` (created or grown).

    ``duplicates`` photos repeat the bytes of an earlier photo of the same species,
    ``cross_species_duplicates`` of an earlier photo of another species. Ids start at
    the given values, so a second call with higher ones grows the same dataset.
    """
    rng = random.Random(seed)
    layout = Layout(out)
    made: list[GeneratedPhoto] = []
    bodies: dict[int, bytes] = {}
    obs_id, photo_id = first_observation_id, first_photo_id
    with ResumeStore.open(out, Query.parse(quality="research", license="any")) as store:
        for index, name in enumerate(species):
            store.set_taxon(name, Taxon(id=1000 + index, name=name), None)
            layout.images_dir(name).mkdir(parents=True, exist_ok=True)
        Page = list[tuple[Observation, dict[str, Any], tuple[Photo, ...]]]

        def flush(name: str, page: Page) -> None:
            new = store.record_page(name, page, int(page[-1][0].id))
            observers_of = {o.id: o.user_id or 0 for o, _, _ in page}
            with store._write():  # one commit per page, not per photo: 100,000 in seconds
                for record in new:
                    body = _body(record.photo_id, real_images)
                    if made and duplicates and rng.random() < duplicates / max(photos, 1):
                        same = [m for m in made if m.species == name]
                        if same:
                            body = bodies[rng.choice(same).photo_id]
                    elif (
                        made
                        and cross_species_duplicates
                        and rng.random() < cross_species_duplicates / max(photos, 1)
                    ):
                        other = [m for m in made if m.species != name]
                        if other:
                            body = bodies[rng.choice(other).photo_id]
                    path = layout.photo_path(name, record, "jpg")
                    path.write_bytes(body)
                    digest = hashlib.sha256(body).hexdigest()
                    store.mark_done(record, path.name, len(body), digest, (8, 6))
                    if duplicates or cross_species_duplicates:
                        bodies[record.photo_id] = body
                    made.append(
                        GeneratedPhoto(
                            name,
                            int(record.observation_id),
                            observers_of[record.observation_id],
                            record.photo_id,
                            path.name,
                            digest,
                        )
                    )

        # Observations of all species interleave; each species' are stored a page of 200
        # at a time, as ``run`` stores them.
        pages: dict[str, Page] = {name: [] for name in species}
        left = photos
        while left > 0:
            name = species[rng.randrange(len(species))]
            observer = rng.randrange(1, observers + 1)
            count = min(left, rng.choice((1, 1, 1, 2, 3, 4)))
            observation = _observation(rng, name, species, obs_id, photo_id, count, observer)
            pages[name].append(
                (observation, metadata_row(name, observation, count), observation.photos)
            )
            if len(pages[name]) == 200:
                flush(name, pages[name])
                pages[name] = []
            left -= count
            obs_id += rng.randrange(1, 4)
            photo_id += count + rng.randrange(0, 3)
        for name, page in pages.items():
            if page:
                flush(name, page)
        for name in species:
            layout.write_csvs(store, name, "medium")
    return made


def _observation(
    rng: random.Random,
    name: str,
    species: Sequence[str],
    obs_id: int,
    photo_id: int,
    count: int,
    observer: int,
) -> Observation:
    raw = {
        "id": obs_id,
        "quality_grade": "research",
        "observed_on": f"2020-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        "geojson": {"coordinates": [rng.uniform(-180, 180), rng.uniform(-80, 80)]},
        "taxon": {"id": 1000 + species.index(name), "name": name, "rank": "species"},
        "user": {"id": observer, "login": f"user{observer}", "name": None},
        "photos": [
            {
                "id": photo_id + i,
                "url": f"https://h/photos/{photo_id + i}/square.jpg",
                "license_code": (code := LICENSES[(photo_id + i) % len(LICENSES)]),
                "attribution": f"(c) user{observer}, "
                + ("all rights reserved" if code is None else "some rights reserved"),
                "original_dimensions": {"width": 2048, "height": 1536},
            }
            for i in range(count)
        ],
    }
    observation = Observation.from_api(raw)
    assert observation is not None
    return observation


def _body(photo_id: int, real: bool) -> bytes:
    if not real:
        return f"inat-async generated photo {photo_id}\n".encode()
    buffer = io.BytesIO()
    shade = photo_id % 256
    Image.new("RGB", (8, 6), (shade, 255 - shade, 90)).save(
        buffer, "JPEG", comment=str(photo_id).encode()
    )
    return buffer.getvalue()
