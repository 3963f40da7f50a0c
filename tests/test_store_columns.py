"""The store keeps the observer's numeric id and the stored file's own pixel size."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

from support import FAST_RETRY

from inat_async import download_species
from inat_async.limits import LimitSettings
from inat_async.models import Observation
from inat_async.options import Query
from inat_async.resume import STATE_DIR, STATE_FILE, ResumeStore
from inat_async.testing import FakeInatServer

# The schema as version 1 created it: what an old dataset on disk holds.
SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE species (key TEXT PRIMARY KEY, name TEXT NOT NULL, taxon_id INTEGER,
    taxon_name TEXT, matched_term TEXT, watermark INTEGER NOT NULL DEFAULT 0);
CREATE TABLE observations (species TEXT NOT NULL, id INTEGER NOT NULL, row TEXT NOT NULL,
    PRIMARY KEY (species, id));
CREATE TABLE photos (species TEXT NOT NULL, observation_id INTEGER NOT NULL,
    position INTEGER NOT NULL, photo_id INTEGER NOT NULL, url TEXT NOT NULL, login TEXT,
    license TEXT, attribution TEXT, width INTEGER, height INTEGER, file_name TEXT,
    status TEXT NOT NULL DEFAULT 'pending', bytes INTEGER, sha256 TEXT, reason TEXT,
    missing INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (species, observation_id, position));
INSERT INTO photos (species, observation_id, position, photo_id, url, login, status)
    VALUES ('apis mellifera', 5, 0, 50, 'https://h/photos/50/square.jpg', 'alice', 'done'),
           ('apis mellifera', 6, 0, 60, 'https://h/photos/60/square.jpg', 'bob', 'done');
"""


def _observation(obs_id: int, login: str, user_id: int) -> Observation:
    observation = Observation.from_api(
        {
            "id": obs_id,
            "user": {"id": user_id, "login": login},
            "photos": [{"id": obs_id * 10, "url": f"https://h/photos/{obs_id * 10}/square.jpg"}],
        }
    )
    assert observation is not None
    return observation


def test_an_old_store_opens_and_fills_observer_ids_on_its_next_walk(tmp_path: Path) -> None:
    path = tmp_path / STATE_DIR / STATE_FILE
    path.parent.mkdir()
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_1)
    db.close()
    with ResumeStore.open(tmp_path, Query()) as store:
        old = {r.photo_id: r for r in store.iter_photos("Apis mellifera")}
        assert old[50].observer_id is None  # unknown until the observer is seen again
        assert old[50].stored_width is None
        observation = _observation(7, "alice", 4242)
        store.record_page("Apis mellifera", [(observation, {}, observation.photos)], 7)
        rows = {r.photo_id: r for r in store.iter_photos("Apis mellifera")}
    assert rows[50].observer_id == 4242
    assert rows[70].observer_id == 4242
    assert rows[60].observer_id is None  # bob was not seen again: still unknown


async def test_a_run_records_observer_ids_and_stored_dimensions(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    out = tmp_path / "out"
    await download_species(
        "Apis mellifera",
        observations=15,
        size="small",
        api_url=server.api_url,
        out_dir=out,
        limits=fast_limits,
        retry=FAST_RETRY,
    )
    with (out / "Apis_mellifera_photos.csv").open(encoding="utf-8", newline="") as handle:
        photos = [row for row in csv.DictReader(handle) if row["status"] == "done"]
    assert photos
    header = (out / "Apis_mellifera_photos.csv").read_text(encoding="utf-8").splitlines()[0]
    # Existing columns keep their places; the new ones come last.
    assert header.startswith(
        "photo_id,observation_id,position,file_name,photo_license,attribution,url,width,height,"
    )
    assert header.endswith(",stored_width,stored_height,observer_id")
    for row in photos:
        photo = server.dataset.photo(int(row["photo_id"]))
        owner = server.dataset.observation_of_photo(int(row["photo_id"]))
        assert photo is not None and owner is not None
        assert (int(row["width"]), int(row["height"])) == (photo.width, photo.height)
        stored = server.images.dimensions(photo, "small")
        assert (int(row["stored_width"]), int(row["stored_height"])) == stored
        assert max(stored) <= 240
        assert int(row["observer_id"]) == owner.user.id
    with (out / "Apis_mellifera_metadata.csv").open(encoding="utf-8", newline="") as handle:
        observations = list(csv.DictReader(handle))
    for row in observations:
        owner = server.dataset.observation(int(row["observation_id"]))
        assert owner is not None
        assert int(row["observer_id"]) == owner.user.id
