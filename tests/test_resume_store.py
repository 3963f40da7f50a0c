"""The resume store: dataset identity, all-or-nothing pages, photo status transitions."""

from __future__ import annotations

from pathlib import Path

import pytest

from inat_async.errors import OutputConflictError, StorageError
from inat_async.layout import Layout, metadata_row
from inat_async.models import Observation, Taxon
from inat_async.options import Query
from inat_async.resume import DONE, FAILED, PENDING, ResumeStore


def observation(obs_id: int, photos: int = 2, login: str = "ann") -> Observation:
    parsed = Observation.from_api(
        {
            "id": obs_id,
            "license_code": "cc-by",
            "quality_grade": "research",
            "user": {"login": login},
            "photos": [
                {
                    "id": obs_id * 10 + i,
                    "url": f"https://h/photos/{obs_id * 10 + i}/square.jpg?1",
                    "license_code": "cc-by",
                    "attribution": "(c) ann",
                }
                for i in range(photos)
            ],
        }
    )
    assert parsed is not None
    return parsed


def record(store: ResumeStore, species: str, *ids: int) -> list:
    rows = [(o, metadata_row(species, o, len(o.photos)), o.photos) for o in map(observation, ids)]
    return store.record_page(species, rows, max(ids))


def test_store_refuses_a_folder_of_other_settings(tmp_path: Path) -> None:
    ResumeStore.open(tmp_path, Query.parse(size="medium")).close()
    with pytest.raises(OutputConflictError, match=r"size 'medium' before, 'large' now"):
        ResumeStore.open(tmp_path, Query.parse(size="large"))
    # Same settings in another spelling are the same dataset.
    ResumeStore.open(tmp_path, Query.parse(size="MEDIUM", quality=["research"])).close()


def test_pages_are_recorded_once_and_the_watermark_only_moves_up(tmp_path: Path) -> None:
    with ResumeStore.open(tmp_path, Query()) as store:
        store.set_taxon("Apis mellifera", Taxon(1, "Apis mellifera"), None)
        new = record(store, "Apis mellifera", 5, 7)
        assert [(r.observation_id, r.position) for r in new] == [(5, 0), (5, 1), (7, 0), (7, 1)]
        assert record(store, "apis  MELLIFERA", 5, 7) == []  # same species key, nothing new
        store.record_page("Apis mellifera", [], 3)
        state = store.species("Apis mellifera")
        assert (state.watermark, state.observations, state.taxon) == (
            7,
            2,
            Taxon(1, "Apis mellifera"),
        )


def test_photo_status_transitions_survive_reopening(tmp_path: Path) -> None:
    with ResumeStore.open(tmp_path, Query()) as store:
        store.set_taxon("A b", Taxon(1, "A b"), None)
        first, second, third, _ = record(store, "A b", 1, 2)
        store.mark_done(first, "f.jpg", 10, "ab")
        store.mark_failed(second, "HTTP 503", missing=False)
        store.mark_failed(third, "HTTP 404", missing=True)
    with ResumeStore.open(tmp_path, Query()) as store:
        assert [r.status for r in store.photos("A b")] == [DONE, FAILED, FAILED, PENDING]
        assert store.counts("A b") == {PENDING: 1, DONE: 1, FAILED: 1, "missing": 1, "bytes": 10}
        done = store.photos("A b", DONE)[0]
        assert (done.file_name, done.bytes, done.sha256, done.attempts) == ("f.jpg", 10, "ab", 1)
        store.mark_pending(done)
        assert store.photos("A b", DONE) == []


def test_csvs_are_derived_from_the_store(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    with ResumeStore.open(tmp_path, Query()) as store:
        store.set_taxon("A b", Taxon(1, "A b"), None)
        new = record(store, "A b", 2, 1)
        first = next(r for r in new if r.observation_id == 1 and r.position == 0)
        store.mark_done(first, "A-b_ann_cc-by_1_0.jpg", 10, "ab")
        layout.write_csvs(store, "A b", "medium")
        layout.write_csvs(store, "A b", "medium")  # rewriting never duplicates
    metadata = layout.metadata_csv("A b").read_text(encoding="utf-8").splitlines()
    assert metadata[0].startswith(
        "species_name,observation_id,observation_license,observer_login,observation_quality,"
        "observation_date,observation_latitude,observation_longitude"
    )
    assert [line.split(",")[1] for line in metadata[1:]] == ["1", "2"]
    photos = layout.photos_csv("A b").read_text(encoding="utf-8").splitlines()
    assert len(photos) == 1 + 4
    assert photos[1].startswith(
        "10,1,0,A-b_ann_cc-by_1_0.jpg,cc-by,(c) ann,https://h/photos/10/medium.jpg?1,"
    )
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_unwritable_folder_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="cannot create"):
        ResumeStore.open(blocker / "out", Query())
