"""The command line in a subprocess: usage errors, real runs, kill -9 and Ctrl-C, then resume."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import expected_files, saved_files, start_cli

from inat_async.options import Query
from inat_async.testing import FakeInatServer, build_dataset, run_in_thread

pytestmark = pytest.mark.timeout(120)

SPECIES = ("Apis mellifera", "Mantis religiosa")


def run_cli(*args: str, cwd: Path, state: Path) -> subprocess.CompletedProcess[str]:
    process = start_cli(*args, cwd=cwd, state=state)
    stdout, stderr = process.communicate(timeout=90)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeInatServer]:
    dataset = build_dataset({"Apis mellifera": 70, "Mantis religiosa": 40}, seed=3)
    with run_in_thread(dataset) as server:
        yield server


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "species.csv").write_text("name,start_id\n" + "".join(f"{s},0\n" for s in SPECIES))
    return tmp_path


def fast(server: FakeInatServer) -> list[str]:
    return ["--api-url", server.api_url, "--requests-per-minute", "100000", "--plain"]


def test_version_and_help(tmp_path: Path) -> None:
    version = run_cli("--version", cwd=tmp_path, state=tmp_path / "s")
    assert version.returncode == 0 and version.stdout.startswith("inat-async ")
    helped = run_cli("run", "--help", cwd=tmp_path, state=tmp_path / "s")
    assert helped.returncode == 0
    for option in ("--observations", "--quality", "--license", "--size", "--workers", "--out"):
        assert option in helped.stdout


@pytest.mark.parametrize(
    ("csv_text", "args", "message"),
    [
        (None, [], "species.csv"),
        ("species\nApis mellifera\n", [], "name"),
        ("name,start_id\nApis mellifera,-3\n", [], "start_id"),
        ("name,start_id\nApis mellifera,abc\n", [], "start_id"),
        ("name,start_id\n\n", [], "no species"),
        ("name\nApis mellifera\n", ["-l", "cc-by,gpl"], "gpl"),
        ("name\nApis mellifera\n", ["-q", "great"], "great"),
        ("name\nApis mellifera\n", ["-s", "huge"], "huge"),
        ("name\nApis mellifera\n", ["-w", "0"], "workers"),
        ("name\nApis mellifera\n", ["-o", "0"], "observations"),
        ("name\nApis mellifera\n", ["--hourly-limit", "lots"], "lots"),
        ("name\nApis mellifera\n", ["--requests-per-minute", "100"], "60"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_anything_is_created(
    tmp_path: Path, csv_text: str | None, args: list[str], message: str
) -> None:
    if csv_text is not None:
        (tmp_path / "species.csv").write_text(csv_text, encoding="utf-8")
    # An unreachable API proves nothing was even tried.
    done = run_cli(
        "run",
        *args,
        "--api-url",
        "https://api.inaturalist.org/v1",
        "--out",
        "out",
        cwd=tmp_path,
        state=tmp_path / "s",
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert message.lower() in lines[0].lower()
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "out").exists()


def test_a_run_writes_the_layout_and_an_unknown_name_exits_1(
    fake: FakeInatServer, workdir: Path
) -> None:
    (workdir / "species.csv").write_text("name\nApis mellifera\nUnknownus nameus\n")
    done = run_cli("run", "-o", "12", "-s", "small", *fast(fake), cwd=workdir, state=workdir / "s")
    assert done.returncode == 1
    assert "Unknownus nameus" in done.stderr and "Traceback" not in done.stderr
    expected = expected_files(fake, "Apis mellifera", Query.parse(size="small"), 12)
    assert saved_files(workdir / "results" / "Apis_mellifera_images") == expected
    assert (workdir / "results" / "Apis_mellifera_metadata.csv").is_file()
    assert (workdir / "results" / "Apis_mellifera_photos.csv").is_file()


def test_the_api_url_can_come_from_the_environment(fake: FakeInatServer, workdir: Path) -> None:
    (workdir / "species.csv").write_text("name\nMantis religiosa\n")
    env = {**os.environ, "INAT_API_URL": fake.api_url, "INAT_ASYNC_STATE_DIR": str(workdir / "s")}
    done = subprocess.run(
        [sys.executable, "-m", "inat_async", "run", "-o", "3", "--requests-per-minute", "1000"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert any((workdir / "results" / "Mantis_religiosa_images").iterdir())


def folder_snapshot(out: Path) -> dict[str, bytes]:
    """Every file a user sees (the hidden state folder aside), by relative path."""
    return {
        str(path.relative_to(out)): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file() and ".inat-async" not in path.parts
    }


def wait_for_files(folder: Path, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (
            folder.is_dir()
            and sum(1 for p in folder.iterdir() if not p.name.startswith(".")) >= count
        ):
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError(f"{folder} never held {count} photos")


def saved_photo_ids(out: Path) -> set[int]:
    """Photos whose file is in place: done in the store, or renamed into place while their
    status batch had not committed yet (a rerun adopts them; it must not fetch them again)."""
    saved = {
        tuple(int(n) for n in path.stem.split("_")[-2:])
        for path in (out / "Apis_mellifera_images").iterdir()
        if not path.name.startswith(".")
    }
    with sqlite3.connect(out / ".inat-async" / "state.sqlite3") as db:
        rows = db.execute("SELECT photo_id, observation_id, position, status FROM photos")
        return {
            photo_id
            for photo_id, obs_id, position, status in rows
            if status == "done" or (obs_id, position) in saved
        }


@pytest.mark.parametrize("how", ["kill", "interrupt", "terminate"])
def test_stopped_runs_resume_to_the_same_folder_without_refetching(
    fake: FakeInatServer, workdir: Path, how: str
) -> None:
    args = ("run", "-o", "40", "-w", "2", *fast(fake))
    reference = run_cli(*args, "--out", "reference", cwd=workdir, state=workdir / "s")
    assert reference.returncode == 0, reference.stderr
    # Plain mode (no terminal): a finished species is announced as done.
    assert "Apis mellifera: done" in reference.stdout + reference.stderr

    fake.settings.photo_latency = 0.03
    try:
        process = start_cli(*args, cwd=workdir, state=workdir / "s")
        wait_for_files(workdir / "results" / "Apis_mellifera_images", 10, process)
        started = time.monotonic()
        process.send_signal(
            {"kill": signal.SIGKILL, "interrupt": signal.SIGINT, "terminate": signal.SIGTERM}[how]
        )
        stdout, stderr = process.communicate(timeout=30)
        stopped_in = time.monotonic() - started
    finally:
        fake.settings.photo_latency = 0.0
    out = workdir / "results"
    if how == "kill":
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == {"interrupt": 130, "terminate": 143}[how]
        assert "rerun" in stderr and "Traceback" not in stderr
        assert stopped_in < 5
        assert not list(out.rglob("*.part")), "a clean stop removes its temporary files"
        # The species was stopped mid-way: no display may call it done.
        shown = stdout + stderr
        assert "Apis mellifera: done" not in shown and "✓" not in shown, shown
    done_before = saved_photo_ids(out)
    assert done_before
    delivered_before = fake.log.delivered_photos()

    again = run_cli(*args, cwd=workdir, state=workdir / "s")
    assert again.returncode == 0, again.stderr
    assert not list(out.rglob("*.part"))
    assert folder_snapshot(out) == folder_snapshot(workdir / "reference")
    delivered_after = fake.log.delivered_photos()
    refetched = {
        photo_id
        for (photo_id, size), n in delivered_after.items()
        if photo_id in done_before and n > delivered_before.get((photo_id, size), 0)
    }
    assert not refetched, "photos finished before the stop were downloaded again"


def test_rerun_with_other_settings_is_explained(fake: FakeInatServer, workdir: Path) -> None:
    first = run_cli("run", "-o", "2", *fast(fake), cwd=workdir, state=workdir / "s")
    assert first.returncode == 0, first.stderr
    other = run_cli("run", "-o", "2", "-s", "large", *fast(fake), cwd=workdir, state=workdir / "s")
    assert other.returncode == 2
    assert "size 'medium' before, 'large' now" in other.stderr
    assert "--out" in other.stderr and "Traceback" not in other.stderr
