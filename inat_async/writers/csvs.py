"""The CSV writer: a species' ``_metadata.csv`` and ``_photos.csv``, rewritten from the store.

Both files are rewritten whole from the resume store (the source of truth) to a temporary
file renamed into place, so a crash never leaves a half or duplicated row. The pipeline
runs :meth:`CsvWriter.write` in a thread with its own SQLite connection when a species
ends (see :func:`inat_async.writers.write_species`), and skips it when nothing in the
species changed since the files were last written.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StorageError
from ..models import Observation, photo_url_for_size
from ..resume import DONE, PhotoRecord, ResumeStore
from .common import create_temporary, csv_cell

if TYPE_CHECKING:
    from ..layout import Layout

METADATA_COLUMNS = (
    # The original script's columns, in its order.
    "species_name",
    "observation_id",
    "observation_license",
    "observer_login",
    "observation_quality",
    "observation_date",
    "observation_latitude",
    "observation_longitude",
    # Added: enough to cite, filter and join.
    "observation_time",
    "observer_name",
    "taxon_id",
    "taxon_name",
    "taxon_rank",
    "positional_accuracy",
    "obscured",
    "place_guess",
    "observation_uuid",
    "observation_url",
    "photos_kept",
    # Added later, at the end so that older readers keep their column positions.
    "observer_id",
    # Added with the selection filters: what --place, --captive/--wild and --annotation
    # choose on, so a dataset can be checked and split on them.
    "place_ids",
    "captive",
    "annotations",
)

PHOTO_COLUMNS = (
    "photo_id",
    "observation_id",
    "position",
    "file_name",
    "photo_license",
    "attribution",
    "url",
    "width",
    "height",
    "bytes",
    "sha256",
    "status",
    "error",
    # The downloaded file's own pixel size (width and height above are the original's).
    "stored_width",
    "stored_height",
    "observer_id",
)


class CsvWriter:
    """Writes the two CSV files of a species from the store."""

    #: Names this writer's freshness marks in the store; it changes with the columns, so a
    #: dataset written by a version with other columns is rewritten once.
    name = (
        "csv:" + hashlib.sha256(repr((METADATA_COLUMNS, PHOTO_COLUMNS)).encode()).hexdigest()[:12]
    )

    def __init__(self, layout: Layout, size: str) -> None:
        self._layout = layout
        self._size = size

    def outputs(self, species: str) -> tuple[Path, ...]:
        return self._layout.metadata_csv(species), self._layout.photos_csv(species)

    def write(self, store: ResumeStore, species: str) -> None:
        """Rewrite both files of ``species`` from ``store``, atomically, each from one
        consistent state of the store."""
        metadata, photos = self.outputs(species)
        _write_csv(metadata, METADATA_COLUMNS, store.observation_rows(species))
        size = self._size
        _write_csv(
            photos,
            PHOTO_COLUMNS,
            (photo_row(record, size) for record in store.iter_photos(species)),
        )


def metadata_row(species: str, observation: Observation, photos_kept: int) -> dict[str, Any]:
    return {
        "species_name": species,
        "observation_id": observation.id,
        "observation_license": observation.license_code or "none",
        "observer_login": observation.user_login,
        "observation_quality": observation.quality_grade,
        "observation_date": observation.observed_on,
        "observation_latitude": observation.latitude,
        "observation_longitude": observation.longitude,
        "observation_time": observation.time_observed_at,
        "observer_name": observation.user_name,
        "taxon_id": observation.taxon_id,
        "taxon_name": observation.taxon_name,
        "taxon_rank": observation.taxon_rank,
        "positional_accuracy": observation.positional_accuracy,
        "obscured": observation.obscured,
        "place_guess": observation.place_guess,
        "observation_uuid": observation.uuid,
        "observation_url": observation.url,
        "photos_kept": photos_kept,
        "observer_id": observation.user_id,
        # Space-separated ids; "; " between annotations, whose labels hold spaces.
        "place_ids": " ".join(str(p) for p in observation.place_ids),
        "captive": observation.captive,
        "annotations": "; ".join(str(a) for a in observation.annotations),
    }


def photo_row(record: PhotoRecord, size: str) -> dict[str, Any]:
    """One photos.csv row; ``url`` is the URL of the size that was downloaded."""
    return {
        "photo_id": record.photo_id,
        "observation_id": record.observation_id,
        "position": record.position,
        "file_name": record.file_name if record.status == DONE else None,
        "photo_license": record.license or "none",
        "attribution": record.attribution,
        "url": photo_url_for_size(record.url, size),
        "width": record.width,
        "height": record.height,
        "bytes": record.bytes,
        "sha256": record.sha256,
        "status": "missing" if record.missing else record.status,
        "error": record.reason,
        "stored_width": record.stored_width if record.status == DONE else None,
        "stored_height": record.stored_height if record.status == DONE else None,
        "observer_id": record.observer_id,
    }


def _write_csv(path: Path, columns: tuple[str, ...], rows: Iterable[Mapping[str, Any]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = create_temporary(path)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(columns)
                # Lists in the columns' order: a DictWriter costs more per row, and a
                # species can have 150,000 photos. (A row stored by an older version may
                # lack a later column: its cell is empty.)
                writer.writerows([csv_cell(row.get(c)) for c in columns] for row in rows)
            tmp.replace(path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
