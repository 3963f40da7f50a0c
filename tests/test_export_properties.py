"""Properties of export splits: no leakage, nothing moves as the dataset grows, reproducible."""

from __future__ import annotations

import csv
import sqlite3
import tempfile
from collections import defaultdict
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from inat_async.export import ExportOptions, export_dataset
from inat_async.splits import parse_split, split_of
from inat_async.testing.stores import generate_run_folder
from inat_async.writers.manifest import iter_manifest_files

SPLITS = ("train", "val", "test")
FEW = settings(max_examples=6, deadline=None)


def _rows(dest: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for split in SPLITS:
        if (dest / split / "metadata.csv").exists():
            with (dest / split / "metadata.csv").open(encoding="utf-8", newline="") as handle:
                rows.extend(csv.DictReader(handle))
    return rows


def _placement(dest: Path) -> dict[str, tuple[str, str]]:
    """photo id -> (split, file name) of every exported photo."""
    return {row["photo_id"]: (row["split"], row["file_name"]) for row in _rows(dest)}


@FEW
@given(
    photos=st.integers(5, 60),
    observers=st.integers(1, 12),
    seed=st.integers(0, 2**32),
    group_by=st.sampled_from(["observer", "observation"]),
    split=st.sampled_from(["train=0.8,val=0.1,test=0.1", "train=0.5,val=0.25,test=0.25"]),
)
def test_no_group_is_in_two_splits_of_one_species(
    photos: int, observers: int, seed: int, group_by: str, split: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_run_folder(root / "out", photos=photos, observers=observers, seed=seed)
        options = ExportOptions.create(split=split, group_by=group_by, seed=seed, link="copy")
        result = export_dataset(root / "ds", out_dir=root / "out", options=options)
        rows = _rows(root / "ds")
        assert len(rows) == photos
        column = "observer_id" if group_by == "observer" else "observation_id"
        for thin in result.thin:  # named with how many groups it really has
            species = thin.species.replace("_", " ")
            groups = {row[column] for row in rows if row["species"] == species}
            assert thin.groups == len(groups)
            assert set(thin.empty_splits).isdisjoint(
                row["split"] for row in rows if row["species"] == species
            )
        splits_of: dict[tuple[str, str], set[str]] = defaultdict(set)
        observer_splits: dict[tuple[str, str], set[str]] = defaultdict(set)
        for row in rows:
            splits_of[row["species"], row["observation_id"]].add(row["split"])
            observer_splits[row["species"], row["observer_id"]].add(row["split"])
        # Photos of one observation never straddle splits, whatever the grouping...
        assert all(len(s) == 1 for s in splits_of.values())
        # ...and with the default grouping, neither do an observer's.
        if group_by == "observer":
            assert all(len(s) == 1 for s in observer_splits.values())


@FEW
@given(
    first=st.integers(3, 40),
    more=st.integers(1, 40),
    seed=st.integers(0, 2**32),
    group_by=st.sampled_from(["observer", "observation"]),
)
def test_growing_the_dataset_moves_no_photo(
    first: int, more: int, seed: int, group_by: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out, dest = root / "out", root / "ds"
        generate_run_folder(out, photos=first, observers=8, seed=seed)
        options = ExportOptions.create(group_by=group_by, seed=seed % 1000, link="copy")
        export_dataset(dest, out_dir=out, options=options)
        before = _placement(dest)
        files_before = {e.path: e.sha256 for e in iter_manifest_files(dest / "manifest.json")}
        # The same observers come back with new observations and photos.
        generate_run_folder(
            out,
            photos=more,
            observers=8,
            seed=seed + 1,
            first_observation_id=100_000,
            first_photo_id=100_000,
        )
        grown = export_dataset(dest, out_dir=out, options=options)
        after = _placement(dest)
        assert grown.added == more and grown.already == first
        assert {k: after[k] for k in before} == before
        files_after = {e.path: e.sha256 for e in iter_manifest_files(dest / "manifest.json")}
        for path, digest in files_before.items():
            if path.endswith((".jpg", ".png")):
                assert files_after[path] == digest
        # A fresh export of the grown dataset agrees with the incremental one.
        export_dataset(root / "fresh", out_dir=out, options=options)
        assert _placement(root / "fresh") == after


@FEW
@given(photos=st.integers(1, 40), seed=st.integers(0, 2**32), export_seed=st.integers(0, 99))
def test_the_same_seed_gives_the_same_export(photos: int, seed: int, export_seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_run_folder(root / "out", photos=photos, seed=seed)
        options = ExportOptions.create(
            seed=export_seed, link="copy", formats="imagefolder,webdataset"
        )
        export_dataset(root / "a", out_dir=root / "out", options=options)
        export_dataset(root / "b", out_dir=root / "out", options=options)
        manifests = [
            [(e.path, e.sha256) for e in iter_manifest_files(root / name / "manifest.json")]
            for name in ("a", "b")
        ]
        assert manifests[0] == manifests[1]


@given(
    seed=st.integers(0, 2**63),
    species=st.text(min_size=1, max_size=8),
    group=st.text(min_size=1, max_size=8),
)
def test_split_of_is_a_pure_function_within_the_ratios(seed: int, species: str, group: str) -> None:
    ratios = parse_split("train=0.6,val=0.4,test=0")
    first = split_of(ratios, seed=seed, species=species, group=group)
    assert first == split_of(ratios, seed=seed, species=species, group=group)
    assert first in ("train", "val")  # a split of ratio 0 gets nothing


def test_observers_without_a_known_id_keep_one_split_once_their_id_is_known(
    tmp_path: Path,
) -> None:
    out, dest = tmp_path / "out", tmp_path / "ds"
    generate_run_folder(out, photos=80, observers=6, seed=1)
    # A dataset stored before observer ids were kept: only logins.
    with sqlite3.connect(out / ".inat-async" / "state.sqlite3") as db:
        db.execute("UPDATE photos SET observer_id = NULL")
    db.close()
    options = ExportOptions.create(link="copy", split="train=0.5,val=0.25,test=0.25")
    export_dataset(dest, out_dir=out, options=options)
    assert {row["observer_id"] for row in _rows(dest)} == {""}  # unknown, said so
    # The next walk meets the same observers again, with their ids.
    generate_run_folder(
        out, photos=80, observers=6, seed=2, first_observation_id=10**6, first_photo_id=10**6
    )
    export_dataset(dest, out_dir=out, options=options)
    splits: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in _rows(dest):
        splits[row["species"], row["observer_login"]].add(row["split"])
    assert len(splits) > 6 and all(len(s) == 1 for s in splits.values())
