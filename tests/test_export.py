"""End to end: a run against the fake iNaturalist, then export, then load it as users do."""

from __future__ import annotations

import asyncio
import csv
import gc
import io
import json
import os
import tarfile
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image
from support import FAST_RETRY

from inat_async import UsageError, download_all, download_species, verify_dataset
from inat_async.export import ExportOptions, ExportResult, export_dataset
from inat_async.limits import LimitSettings
from inat_async.testing import FakeDataset, FakeInatServer, build_dataset
from inat_async.testing.thread import run_in_thread

#: torchvision.datasets.folder.IMG_EXTENSIONS
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPECIES = ["Apis mellifera", "Gryllus religiosus"]  # the second: a synonym of Mantis religiosa


class Downloaded:
    def __init__(self, out: Path, dataset: FakeDataset) -> None:
        self.out, self.dataset = out, dataset


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory: pytest.TempPathFactory) -> Downloaded:
    """One real run, shared by the tests of this module (they never write into it)."""
    root = tmp_path_factory.mktemp("run")
    dataset = build_dataset({"Apis mellifera": 40, "Mantis religiosa": 25}, seed=7)
    limits = LimitSettings(requests_per_minute=100_000, burst=10_000, state_dir=root / "lim")
    with run_in_thread(dataset) as server:
        result = asyncio.run(
            download_all(
                SPECIES,
                api_url=server.api_url,
                out_dir=root / "out",
                limits=limits,
                retry=FAST_RETRY,
                observations=40,
                size="small",
            )
        )
    assert result.exit_code == 0
    return Downloaded(root / "out", dataset)


def _export(downloaded: Downloaded, dest: Path, **options: object) -> ExportResult:
    return export_dataset(
        dest,
        out_dir=downloaded.out,
        options=ExportOptions.create(**options),  # type: ignore[arg-type]
    )


def _metadata(dest: Path, split: str) -> list[dict[str, str]]:
    with (dest / split / "metadata.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


# datasets 5.2 opens each metadata.csv without closing it: its ResourceWarning is not ours.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_loads_with_hugging_face_datasets_offline(
    downloaded: Downloaded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "ds"
    result = _export(downloaded, dest)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset(
        "imagefolder", data_dir=str(dest), cache_dir=str(tmp_path / "hf-cache")
    )
    hf_names = {"train": "train", "val": "validation", "test": "test"}
    expected = {
        hf_names[split]: sum(c.get(split, 0) for c in result.counts.values())
        for split in ("train", "val", "test")
    }
    assert {name: len(loaded[name]) for name in loaded} == {
        name: n for name, n in expected.items() if n
    }
    assert sum(expected.values()) == result.total > 50
    by_id = {p.id: p for p in downloaded.dataset.photos()}
    for name in loaded:
        split = loaded[name]
        assert {"image", "species", "taxon_id", "license", "attribution", "observer_id"} <= set(
            split.column_names
        )
        for row in split:
            photo = by_id[row["photo_id"]]
            assert row["license"] == (photo.license_code or "none")
            assert row["attribution"] == photo.attribution
            assert row["species"] in ("Apis mellifera", "Mantis religiosa")
            assert row["image"].size == (row["width"], row["height"])
    loaded.cleanup_cache_files()
    del loaded
    gc.collect()  # the leaked handles are reported here, under this test's filters


def test_every_split_folder_passes_torchvision_imagefolder_rules(
    downloaded: Downloaded, tmp_path: Path
) -> None:
    dest = tmp_path / "ds"
    result = _export(downloaded, dest)
    classes_seen: set[str] = set()
    for split in result.splits:
        root = dest / split
        if not root.exists():
            continue
        # torchvision's find_classes: every directory entry is a class, hidden ones too.
        classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
        assert classes, f"{split}: no class folders"
        assert all(not c.startswith(".") for c in classes)
        rows = _metadata(dest, split)
        files = 0
        for name in classes:
            # make_dataset: os.walk(followlinks=True), files kept by extension; an empty
            # class raises FileNotFoundError.
            found = [
                Path(folder, f)
                for folder, _, names in os.walk(root / name, followlinks=True)
                for f in names
            ]
            valid = [f for f in found if f.name.lower().endswith(IMG_EXTENSIONS)]
            assert valid, f"{split}/{name} is an empty class"
            assert valid == found, "a file torchvision would silently skip"
            for path in valid:
                with Image.open(path) as image:
                    image.load()
            files += len(valid)
        assert files == len(rows) == sum(c.get(split, 0) for c in result.counts.values())
        classes_seen |= set(classes)
    # The synonym in species.csv lands under the accepted name.
    assert classes_seen == {"Apis_mellifera", "Mantis_religiosa"}
    # GIFs became PNGs, and the summary says so.
    assert result.converted >= 1
    assert not list(dest.rglob("*.gif"))


def test_credits_card_and_manifest(downloaded: Downloaded, tmp_path: Path) -> None:
    dest = tmp_path / "ds"
    result = _export(downloaded, dest)
    with (dest / "ATTRIBUTION.csv").open(encoding="utf-8", newline="") as handle:
        credits = list(csv.DictReader(handle))
    assert len(credits) == result.total
    for row in credits:
        assert row["title"] and row["author"] and row["license_name"]
        assert row["source"] == f"https://www.inaturalist.org/photos/{row['photo_id']}"
        assert (dest / row["split"] / row["file_name"].split("/", 1)[1]).exists()
        if row["license"] == "cc0":
            assert "no rights reserved" in row["notice"]
        elif row["license"] == "none":
            assert "all rights reserved" in row["notice"] and not row["license_url"]
        else:
            assert row["license_url"].startswith("https://creativecommons.org/")
            assert row["license_name"].endswith(("4.0", "Public Domain Mark 1.0"))
    card = (dest / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlicense:\n")
    yaml = pytest.importorskip("yaml")
    header = yaml.safe_load(card.split("---\n")[1])
    assert "cc-by-nc-4.0" in header["license"] and "other" in header["license"]
    assert header["task_categories"] == ["image-classification"]
    assert header["pretty_name"].startswith("iNaturalist photos: Apis mellifera")
    assert "no commercial use (NC)" in card and "not licensed for reuse" in card
    assert "Cite iNaturalist" in card and "| Apis_mellifera |" in card
    manifest = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["settings"]["seed"] == 0
    assert manifest["settings"]["split_ratios"] == {"train": 0.8, "val": 0.1, "test": 0.1}
    assert manifest["query"]["size"] == "small"
    assert manifest["api_url"].startswith("http://127.0.0.1")
    assert manifest["counts"] == result.counts
    listed = {entry["path"] for entry in manifest["files"]}
    on_disk = {
        p.relative_to(dest).as_posix()
        for p in dest.rglob("*")
        if p.is_file() and ".inat-async" not in p.parts and p.name != "manifest.json"
    }
    assert listed == on_disk
    # Hard links where possible: the photo bytes are not stored twice.
    assert result.placed.get("hard-linked", 0) + result.converted == result.total
    linked = [p for p in dest.glob("train/*/*") if p.suffix == ".jpg"]
    assert linked and all(p.stat().st_nlink >= 2 for p in linked)


def test_webdataset_shards_and_parquet(downloaded: Downloaded, tmp_path: Path) -> None:
    dest = tmp_path / "ds"
    result = _export(downloaded, dest, formats="webdataset,parquet", shard_size="100kB")
    assert not (dest / "train").exists()
    classes = (dest / "webdataset" / "classes.txt").read_text(encoding="utf-8").split()
    assert classes == ["Apis_mellifera", "Mantis_religiosa"]  # numbered as torchvision does
    shards = sorted((dest / "webdataset").glob("*.tar"))
    assert len(shards) > 3  # 100 kB shards: several per split
    samples: dict[str, dict[str, bytes]] = defaultdict(dict)
    for shard in shards:
        split = shard.name.rsplit("-", 1)[0]
        with tarfile.open(shard) as tar:
            for member in tar:
                key, ext = member.name.split(".", 1)
                handle = tar.extractfile(member)
                assert handle is not None
                samples[key][ext] = handle.read()
                samples[key]["split"] = split.encode()
    assert len(samples) == result.total
    for key, parts in samples.items():
        images = [ext for ext in parts if ext in ("jpg", "jpeg", "png")]
        assert len(images) == 1 and "json" in parts and "cls" in parts
        row = json.loads(parts["json"])
        assert row["photo_id"] == int(key) and row["split"] == parts["split"].decode()
        assert classes[int(parts["cls"])] == row["file_name"].split("/")[0]
        with Image.open(io.BytesIO(parts[images[0]])) as image:
            image.load()
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(dest / "metadata.parquet")
    assert table.num_rows == result.total
    assert {"license", "attribution", "observer_id", "split", "class_index"} <= set(
        table.column_names
    )
    # API observation ids stay numbers (Open Data's UUIDs are text: test_opendata_fetch).
    assert str(table.schema.field("observation_id").type) == "int64"


def test_refuses_dest_inside_out_foreign_folders_and_other_settings(
    downloaded: Downloaded, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="inside the dataset folder"):
        _export(downloaded, downloaded.out / "export")
    assert not (downloaded.out / "export").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        _export(downloaded, foreign)
    dest = tmp_path / "ds"
    _export(downloaded, dest, seed=1)
    with pytest.raises(UsageError, match="seed 1 before, 2 now"):
        _export(downloaded, dest, seed=2)
    with pytest.raises(UsageError, match="split"):
        _export(downloaded, dest, seed=1, split="train=0.5,test=0.5")
    again = _export(downloaded, dest, seed=1)
    assert again.added == 0 and again.already == again.total


def test_license_filter_keeps_only_those_licenses(downloaded: Downloaded, tmp_path: Path) -> None:
    dest = tmp_path / "ds"
    result = _export(downloaded, dest, license="cc-by,cc0")
    assert result.skipped["license"] > 0
    licenses = {row["license"] for split in ("train", "val", "test") if (dest / split).exists()
                for row in _metadata(dest, split)}  # fmt: skip
    assert licenses <= {"cc-by", "cc0"} and licenses


async def test_reexport_after_run_grew_the_dataset_changes_nothing_exported(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    out, dest = tmp_path / "out", tmp_path / "ds"
    options = {"api_url": server.api_url, "out_dir": out, "limits": fast_limits}
    await download_species("Apis mellifera", observations=12, retry=FAST_RETRY, **options)
    first = export_dataset(dest, out_dir=out)
    before = {
        p.relative_to(dest): (p.stat().st_ino, p.read_bytes())
        for p in dest.glob("*/*/*")
        if p.is_file()
    }
    # The run goes on: more observations of the same species, some by the same observers.
    await download_species("Apis mellifera", observations=30, retry=FAST_RETRY, **options)
    grown = export_dataset(dest, out_dir=out)
    assert grown.already == first.total and grown.added > 0
    assert grown.total == first.total + grown.added
    after = {p.relative_to(dest): p for p in dest.glob("*/*/*") if p.is_file()}
    for relative, (inode, data) in before.items():
        assert after[relative].stat().st_ino == inode and after[relative].read_bytes() == data
    assert verify_dataset(dest).ok
