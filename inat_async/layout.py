"""Where things go in the output folder.

::

    OUT/
      Apis_mellifera_images/Apis-mellifera_<login>_<license>_<obs id>_<position>.<ext>
      Apis_mellifera_metadata.csv   one row per observation (the original's columns first)
      Apis_mellifera_photos.csv     one row per photo: its own license and attribution
      .inat-async/state.sqlite3     the resume store (the source of truth)

The CSV files are written by :mod:`inat_async.writers.csvs`, whose names are re-exported
here for the modules that read them from the layout.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import StorageError
from .fetch import SAVED_EXTENSIONS
from .models import url_extension
from .naming import photo_file_name, species_dir_name
from .resume import PhotoRecord, ResumeStore
from .writers.csvs import METADATA_COLUMNS, PHOTO_COLUMNS, CsvWriter, metadata_row, photo_row

__all__ = ["METADATA_COLUMNS", "PHOTO_COLUMNS", "Layout", "metadata_row", "photo_row"]


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

    def saved_paths(self, species: str, record: PhotoRecord) -> tuple[Path, ...]:
        """Where a photo's finished file may be: with its URL's extension, or, when the URL
        has none, with any extension a content type may have chosen."""
        ext = url_extension(record.url)
        return tuple(
            self.photo_path(species, record, candidate)
            for candidate in ((ext,) if ext else SAVED_EXTENSIONS)
        )

    def write_csvs(self, store: ResumeStore, species: str, size: str) -> None:
        """Rewrite both CSV files of ``species`` from the store, atomically (on the calling
        thread: the pipeline runs :class:`~inat_async.writers.csvs.CsvWriter` off the loop)."""
        CsvWriter(self, size).write(store, species)
