"""Where things go in the output folder, and the CSV files derived from the resume store.

::

    OUT/
      Apis_mellifera_images/Apis-mellifera_<login>_<license>_<obs id>_<position>.<ext>
      Apis_mellifera_metadata.csv   one row per observation (the original's columns first)
      Apis_mellifera_photos.csv     one row per photo: its own license and attribution
      .inat-async/state.sqlite3     the resume store (the source of truth)

CSV files are rewritten whole from the store, to a temporary file renamed into
place, so a crash never leaves a half or duplicated row.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import StorageError
from .models import Observation, photo_url_for_size
from .naming import photo_file_name, species_dir_name
from .resume import DONE, PhotoRecord, ResumeStore

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


class Layout:
    """Paths of one output folder."""

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = Path(out_dir)

    def images_dir(self, species: str) -> Path:
        return self.out_dir / f"{species_dir_name(species)}_images"

    def make_images_dir(self, species: str) -> Path:
        """Create the image folder of ``species``. A link there is refused: the photos
        would land outside the output folder, which the tool promises never to write."""
        images = self.images_dir(species)
        if images.is_symlink():
            raise StorageError(
                f"{images} is a symbolic link: photos would be written outside {self.out_dir}; "
                "replace it with a real folder or choose another out_dir",
                options=("out_dir",),
            )
        try:
            images.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {images}: {exc.strerror}") from exc
        return images

    def metadata_csv(self, species: str) -> Path:
        return self.out_dir / f"{species_dir_name(species)}_metadata.csv"

    def photos_csv(self, species: str) -> Path:
        return self.out_dir / f"{species_dir_name(species)}_photos.csv"

    def photo_path(self, species: str, record: PhotoRecord, ext: str) -> Path:
        name = photo_file_name(
            species, record.login, record.license, record.observation_id, record.position, ext
        )
        return self.images_dir(species) / name

    def write_csvs(self, store: ResumeStore, species: str, size: str) -> None:
        """Rewrite both CSV files of ``species`` from the store, atomically."""
        _write_csv(
            self.metadata_csv(species),
            METADATA_COLUMNS,
            store.observation_rows(species),
        )
        _write_csv(
            self.photos_csv(species),
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


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _write_csv(path: Path, columns: tuple[str, ...], rows: Iterable[Mapping[str, Any]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
                writer.writeheader()
                writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
            Path(tmp).replace(path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                Path(tmp).unlink()
            raise
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
