"""verify: every recorded file re-hashed; the export and verify commands' exit codes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import start_cli

from inat_async import UsageError
from inat_async.export import ExportOptions, export_dataset
from inat_async.testing.stores import generate_run_folder
from inat_async.verify import verify_dataset
from inat_async.writers.manifest import iter_manifest_files


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    process = start_cli(*args, cwd=cwd, state=cwd / "limits")
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    generate_run_folder(tmp_path / "results", photos=60, seed=3)
    # Copies: flipping a byte in the export must not touch the run folder's file.
    export_dataset(tmp_path / "ds", out_dir=tmp_path / "results", options=ExportOptions.create(
        link="copy", formats="imagefolder,webdataset"))  # fmt: skip
    return tmp_path / "ds"


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_fresh_export_and_run_folder_verify(exported: Path) -> None:
    result = verify_dataset(exported)
    assert result.ok and result.kind == "export"
    assert result.checked == len(list(iter_manifest_files(exported / "manifest.json")))
    run = verify_dataset(exported.parent / "results")
    assert run.ok and run.kind == "run" and run.checked == 60


def test_one_flipped_byte_and_one_deleted_file_are_found(exported: Path) -> None:
    photos = sorted(exported.glob("train/*/*.jpg"))
    _flip_one_byte(photos[0])
    photos[1].unlink()
    _flip_one_byte(next(exported.glob("webdataset/*.tar")))
    seen: list[str] = []
    result = verify_dataset(exported, on_problem=lambda p: seen.append(p.path))
    assert not result.ok
    assert (result.missing, result.changed) == (1, 2)
    relative = {p.relative_to(exported).as_posix() for p in photos[:2]}
    assert relative <= set(seen)
    # The run folder's own photos were not touched (the export copied them)...
    assert verify_dataset(exported.parent / "results").ok
    # ...and a change there is found against the resume store's sha256s.
    _flip_one_byte(next((exported.parent / "results").glob("*_images/*.jpg")))
    assert verify_dataset(exported.parent / "results").changed == 1


def test_a_manifest_rewritten_in_another_layout_still_verifies(exported: Path) -> None:
    manifest = exported / "manifest.json"
    document = json.loads(manifest.read_text(encoding="utf-8"))
    manifest.write_text(json.dumps(document, sort_keys=True), encoding="utf-8")  # one line
    assert verify_dataset(exported).checked == len(document["files"])
    document["files"].append({"path": "../outside.txt", "size": 1, "sha256": "0" * 64})
    manifest.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(UsageError, match="outside the export"):
        verify_dataset(exported)


def test_neither_export_nor_run_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="neither an export"):
        verify_dataset(tmp_path)


@pytest.mark.slow
def test_cli_exit_codes(tmp_path: Path) -> None:
    generate_run_folder(tmp_path / "results", photos=40, seed=5)
    done = cli("export", "ds", "--link", "copy", "--seed", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Apis_mellifera" in done.stdout and "ATTRIBUTION.csv" in done.stdout
    assert cli("verify", "ds", cwd=tmp_path).returncode == 0
    assert cli("verify", "results", cwd=tmp_path).returncode == 0
    victim = next((tmp_path / "ds").glob("train/*/*.jpg"))
    _flip_one_byte(victim)
    failed = cli("verify", "ds", cwd=tmp_path)
    assert failed.returncode == 1
    assert victim.relative_to(tmp_path / "ds").as_posix() in failed.stderr
    assert "Traceback" not in failed.stderr
    for args in (
        ("export", "results/inside"),  # DEST inside --out
        ("export", "ds", "--seed", "4"),  # other settings than the earlier export
        ("verify", "nowhere"),
    ):
        refused = cli(*args, cwd=tmp_path)
        assert refused.returncode == 2, (args, refused.stderr)
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), refused.stderr


def test_parquet_without_pyarrow_is_one_line_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_run_folder(tmp_path / "results", photos=5, seed=1)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(UsageError, match=r"pip install 'inat-async\[parquet\]'"):
        export_dataset(
            tmp_path / "ds",
            out_dir=tmp_path / "results",
            options=ExportOptions.create(formats="imagefolder,parquet"),
        )
    assert not (tmp_path / "ds").exists()  # refused before anything was written


def test_exported_files_are_readable_by_others_as_the_umask_allows(exported: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    expected = 0o666 & ~umask
    for name in ("ATTRIBUTION.csv", "README.md", "manifest.json", "train/metadata.csv"):
        assert (exported / name).stat().st_mode & 0o777 == expected, name
    shard = next(exported.glob("webdataset/*.tar"))
    assert shard.stat().st_mode & 0o777 == expected


def test_reexport_puts_back_a_deleted_photo_with_the_same_bytes(exported: Path) -> None:
    victim = sorted(exported.glob("train/*/*.jpg"))[0]
    victim.unlink()
    assert verify_dataset(exported).missing == 1
    again = export_dataset(
        exported,
        out_dir=exported.parent / "results",
        options=ExportOptions.create(link="copy", formats="imagefolder,webdataset"),
    )
    assert again.restored == 1 and again.added == 0
    assert verify_dataset(exported).ok


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"split": "train=0.9"}, "add up to 1"),
        ({"split": "train=0.8,valid=0.1,val=0.1"}, "the same split"),
        ({"split": "train=0.8,holdout=0.2"}, "unknown split name"),
        ({"split": "train"}, "cannot read"),
        ({"formats": "zip"}, "unknown format"),
        ({"group_by": "user"}, "observer or observation"),
        ({"link": "reflink"}, "unknown link"),
        ({"license": "cc-by-x"}, "unknown license"),
        ({"shard_size": "lots"}, "cannot read"),
    ],
)
def test_bad_export_options_are_usage_errors(options: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ExportOptions.create(**options)  # type: ignore[arg-type]


def test_duplicate_bytes_are_exported_once_and_conflicts_are_listed(tmp_path: Path) -> None:
    made = generate_run_folder(
        tmp_path / "results", photos=300, seed=4, duplicates=15, cross_species_duplicates=10
    )
    result = export_dataset(tmp_path / "ds", out_dir=tmp_path / "results")
    distinct = {m.sha256 for m in made}
    assert result.total == len(distinct)  # every distinct photo once, and only once
    assert result.duplicates == len(made) - len(distinct) and result.conflicts > 0
    exported = [
        entry.sha256
        for entry in iter_manifest_files(tmp_path / "ds" / "manifest.json")
        if entry.path.endswith(".jpg")
    ]
    assert len(exported) == len(set(exported)) == len(distinct)  # never under two labels
    with (tmp_path / "ds" / "duplicates.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == result.duplicates
    conflicts = [row for row in rows if row["conflict"] == "true"]
    assert len(conflicts) == result.conflicts
    species_of = {str(m.photo_id): m.species for m in made}
    for row in conflicts:
        assert row["species"] != row["kept_species"]
        assert species_of[row["photo_id"]] == row["species"]
        assert species_of[row["kept_photo_id"]] == row["kept_species"]
    assert {(c.photo_id, c.kept_photo_id) for c in result.conflict_examples} <= {
        (int(row["photo_id"]), int(row["kept_photo_id"])) for row in conflicts
    }
