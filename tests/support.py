"""Helpers shared by the end-to-end tests: what a run must produce, computed from the dataset."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from inat_async.naming import photo_file_name
from inat_async.options import Query
from inat_async.retry import RetryPolicy
from inat_async.testing import FakeDataset, FakeInatServer, FakeObservation, FakePhoto

#: Fast retries: tests exercise the retry paths without waiting for real backoff.
FAST_RETRY = RetryPolicy(attempts=4, base=0.005, cap=0.02)


def expected_observations(
    dataset: FakeDataset, species: str, query: Query, count: int, start_id: int = 0
) -> list[FakeObservation]:
    """What the API returns for a taxon_id search with photos=true, in ascending id order."""
    licenses = set(query.licenses) if query.licenses else None
    found = [
        o
        for o in sorted(dataset.observations_of(species), key=lambda o: o.id)
        if o.id > start_id
        and o.photos
        and (query.quality is None or o.quality_grade in query.quality)
        and (licenses is None or (o.license_code in licenses and o.photo_licenses & licenses))
    ]
    return found[:count]


def expected_files(
    server: FakeInatServer, species: str, query: Query, count: int, start_id: int = 0
) -> dict[str, str]:
    """File name -> sha256 of every photo a run must save, computed from the dataset alone."""
    files: dict[str, str] = {}
    for observation in expected_observations(server.dataset, species, query, count, start_id):
        for photo in observation.photos:
            if photo.placeholder is not None or not query.accepts_photo_license(photo.license_code):
                continue
            name = expected_name(species, [observation], photo)
            body = server.images.render(photo, query.size)
            files[name] = hashlib.sha256(body).hexdigest()
    return files


def saved_files(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.is_file()
    }


def expected_name(species: str, observations: list[FakeObservation], photo: FakePhoto) -> str:
    """The file name a run must give ``photo`` (it belongs to one of ``observations``)."""
    observation = next(o for o in observations if photo in o.photos)
    return photo_file_name(
        species,
        observation.user.login,
        photo.license_code,
        observation.id,
        observation.photos.index(photo),
        photo.extension.lower() or "jpg",
    )


def start_cli(
    *args: str, cwd: Path, state: Path, merge_stderr: bool = False
) -> subprocess.Popen[str]:
    """``python -m inat_async ARGS`` with its own limits state folder and a wide terminal."""
    env = {**os.environ, "INAT_ASYNC_STATE_DIR": str(state), "COLUMNS": "120"}
    env.pop("INAT_API_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "inat_async", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        text=True,
    )
