"""`status`: a real small run against the fake server, then the report from the stores alone."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from support import FAST_RETRY, expected_files, expected_observations
from typer.testing import CliRunner

from inat_async import download_all
from inat_async.cli import app
from inat_async.errors import StorageError
from inat_async.limits import LimitSettings, default_limits
from inat_async.options import Query
from inat_async.status import DatasetStatus, dataset_status
from inat_async.testing import FakeInatServer, FaultKind

SPECIES = ("Apis mellifera", "Mantis religiosa")


def files_digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (SQLite's transient -wal/-shm aside) and its content."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.endswith(("-wal", "-shm"))
    }


@pytest.fixture
async def dataset_dir(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> tuple[Path, int, int]:
    """A dataset of 10 + 10 observations with one failed and one missing photo."""
    observations = expected_observations(server.dataset, "Apis mellifera", Query(), 10)
    photos = [p for o in observations for p in o.photos if p.placeholder is None]
    failed, missing = photos[0].id, photos[1].id
    server.faults.fail_photo(failed, FaultKind.SERVER_ERROR, times=None)
    server.faults.fail_photo(missing, FaultKind.NOT_FOUND, times=None)
    out = tmp_path / "out"
    result = await download_all(
        SPECIES,
        observations=10,
        out_dir=out,
        api_url=server.api_url,
        limits=fast_limits,
        retry=FAST_RETRY,
    )
    assert result.species[0].photos_failed == 1 and result.species[0].photos_missing == 1
    return out, failed, missing


def test_status_counts_match_the_run(
    dataset_dir: tuple[Path, int, int], server: FakeInatServer, fast_limits: LimitSettings
) -> None:
    out, _, _ = dataset_dir
    before = files_digest(out)
    status = dataset_status(out, fast_limits)
    assert isinstance(status, DatasetStatus)
    assert status.query == {"quality": "research", "license": "any", "size": "medium"}
    by_name = {s.name: s for s in status.species}
    assert set(by_name) == set(SPECIES)
    for name in SPECIES:
        species = by_name[name]
        expected = expected_files(server, name, Query(), 10)
        assert species.observations == 10
        assert species.taxon_id == server.dataset.species(name).id
        assert species.pending == 0
        assert species.done == len(expected) - (2 if name == "Apis mellifera" else 0)
        assert species.bytes == sum(
            p.stat().st_size for p in (out / f"{name.replace(' ', '_')}_images").iterdir()
        )
    assert (by_name["Apis mellifera"].failed, by_name["Apis mellifera"].missing) == (1, 1)
    assert status.failed == 1 and status.missing == 1
    # The budgets come from the limits store the run used.
    assert status.limits is not None
    assert status.limits.requests_day.used >= 4
    assert status.limits.bytes_day.used == status.bytes
    assert files_digest(out) == before, "status changed the dataset"


def test_status_command_renders_the_dataset_and_budgets(
    dataset_dir: tuple[Path, int, int], fast_limits: LimitSettings
) -> None:
    out, _, _ = dataset_dir
    state = fast_limits.state_dir
    assert state is not None
    runner = CliRunner()
    done = runner.invoke(
        app,
        ["status", "--out", str(out), "--state-dir", str(state), "--requests-per-minute", "60"],
        env={"COLUMNS": "80"},
    )
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert all(len(line) <= 80 for line in lines), done.output
    assert lines[0] == f"Dataset in {out}"
    assert lines[1] == "settings: quality research · license any · size medium"
    header = next(line for line in lines if line.startswith("species"))
    assert header.split() == [
        "species",
        "obs",
        "done",
        "pending",
        "failed",
        "missing",
        "bytes",
        "last",
        "id",
    ]
    apis = next(line for line in lines if line.startswith("Apis mellifera"))
    assert apis.split()[2:4] == ["10", apis.split()[3]] and apis.split()[4:7] == ["0", "1", "1"]
    assert "1 photo is pending or failed: rerun the same `inat-async run`" in done.output
    assert "requests, last minute" in done.output and "of 60" in done.output
    assert "photos, last hour" in done.output and "of 4.5 GB" in done.output


def test_status_of_a_folder_without_a_dataset_is_one_line_and_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    runner = CliRunner()
    for folder in (empty, tmp_path / "absent"):
        done = runner.invoke(app, ["status", "--out", str(folder)])
        assert done.exit_code == 2
        lines = [line for line in done.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "no inat-async dataset" in lines[0]
    assert list(empty.iterdir()) == []
    assert not (tmp_path / "absent").exists()
    with pytest.raises(StorageError):
        dataset_status(empty)


def test_status_creates_no_limits_store(dataset_dir: tuple[Path, int, int], tmp_path: Path) -> None:
    out, _, _ = dataset_dir
    nowhere = tmp_path / "no-state-here"
    status = dataset_status(out, LimitSettings(state_dir=nowhere))
    assert status.limits is None and status.state_dir == nowhere
    runner = CliRunner()
    done = runner.invoke(app, ["status", "--out", str(out), "--state-dir", str(nowhere)])
    assert done.exit_code == 0 and "nothing spent yet" in done.output
    assert not nowhere.exists()


def every_file(*folders: Path, skip_shm: bool = False) -> dict[str, tuple[int, int, str]]:
    """Each file's modification time, size and content (SQLite's -shm aside if asked)."""
    return {
        str(path): (
            path.stat().st_mtime_ns,
            path.stat().st_size,
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for folder in folders
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not (skip_shm and path.name.endswith("-shm"))
    }


def test_status_writes_no_file_of_either_store(
    dataset_dir: tuple[Path, int, int], fast_limits: LimitSettings
) -> None:
    """#14.5: status changed the limits store's modification time; it opens both stores
    read-only now, whether a run still has the limits store open or nobody has."""
    out, _, _ = dataset_dir
    state = fast_limits.state_dir
    assert state is not None
    runner = CliRunner()
    args = ["status", "--out", str(out), "--state-dir", str(state)]
    # The run's process-wide limits still hold the store open (its -wal and -shm exist):
    # a read-only reader may take its read lock in the -shm, and changes nothing else.
    before = every_file(out, state, skip_shm=True)
    assert dataset_status(out, fast_limits).limits is not None
    assert runner.invoke(app, args).exit_code == 0
    assert every_file(out, state, skip_shm=True) == before
    # Nobody has them open: not even a -wal or -shm may appear.
    default_limits(fast_limits).close()
    before = every_file(out, state)
    assert not any(name.endswith(("-wal", "-shm")) for name in before)
    status = dataset_status(out, fast_limits)
    assert status.limits is not None and status.limits.bytes_day.used == status.bytes
    done = runner.invoke(app, args)
    assert done.exit_code == 0 and "photos, last hour" in done.output
    assert every_file(out, state) == before
