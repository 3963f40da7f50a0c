"""Hostile input and folders through the command line, in a subprocess (issue #14)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import start_cli

from inat_async.testing import build_dataset, run_in_thread

pytestmark = pytest.mark.timeout(120)


def run_cli(*args: str, cwd: Path, state: Path) -> subprocess.CompletedProcess[str]:
    process = start_cli(*args, cwd=cwd, state=state)
    stdout, stderr = process.communicate(timeout=90)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://[::1", "not a valid URL"),
        ("http://annie7:s3cret@[::1", "not a valid URL"),
        ("http://h:99999/v1", "not a valid URL"),
        ("http://h/v1#part", "fragment"),
    ],
)
def test_an_api_url_that_cannot_work_is_exit_2_and_creates_nothing(
    tmp_path: Path, url: str, message: str
) -> None:
    (tmp_path / "species.csv").write_text("name\nApis mellifera\n", encoding="utf-8")
    done = run_cli("run", "--api-url", url, "--out", "out", cwd=tmp_path, state=tmp_path / "s")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert message in lines[0]
    assert "s3cret" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "out").exists()


def test_a_second_run_into_a_busy_folder_exits_2_status_still_reads_and_a_kill_frees_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "species.csv").write_text("name\nApis mellifera\n", encoding="utf-8")
    dataset = build_dataset({"Apis mellifera": 40}, seed=5)
    state = tmp_path / "s"
    with run_in_thread(dataset, photo_latency=0.2) as server:
        args = ("run", "--api-url", server.api_url, "--out", "out", "-o", "30", "-w", "2")
        first = start_cli(*args, "--plain", cwd=tmp_path, state=state)
        try:
            deadline = time.monotonic() + 60
            while not any(r.kind == "photo" for r in server.log.records()):
                assert first.poll() is None, first.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.05)
            second = run_cli(*args, cwd=tmp_path, state=state)
            assert second.returncode == 2, second.stderr
            lines = [line for line in second.stderr.splitlines() if line.strip()]
            assert len(lines) == 1, second.stderr
            assert f"another inat-async run (process {first.pid})" in lines[0]
            assert "--out" in lines[0]
            # status only reads: it works while the run holds the folder.
            report = run_cli("status", "--out", "out", cwd=tmp_path, state=state)
            assert report.returncode == 0, report.stderr
            assert "Apis mellifera" in report.stdout
        finally:
            first.kill()  # kill -9: no clean-up at all
            first.communicate()
        # The OS dropped the lock with the process: the rerun resumes.
        server.settings.photo_latency = 0.0
        again = run_cli(*args, cwd=tmp_path, state=state)
        assert again.returncode == 0, again.stderr


@pytest.mark.skipif(shutil.which("bash") is None or os.name != "posix", reason="needs bash ulimit")
@pytest.mark.parametrize(("soft", "hard"), [(128, 128), (128, 4096)])
def test_many_workers_fit_in_the_open_file_limit(tmp_path: Path, soft: int, hard: int) -> None:
    """-w 250 under a limit of 128 open files: the run raises the soft limit where it may,
    else runs fewer workers and says so, instead of dying of "Too many open files"."""
    (tmp_path / "species.csv").write_text("name\nApis mellifera\n", encoding="utf-8")
    dataset = build_dataset({"Apis mellifera": 150}, seed=5)
    with run_in_thread(dataset, photo_latency=0.2) as server:
        args = ["run", "--api-url", server.api_url, "--out", "out", "-o", "120", "-q", "any"]
        args += ["-w", "250"]
        command = shlex.join([sys.executable, "-m", "inat_async", *args, "--plain"])
        env = {**os.environ, "INAT_ASYNC_STATE_DIR": str(tmp_path / "s"), "COLUMNS": "200"}
        env.pop("INAT_API_URL", None)
        done = subprocess.run(
            ["bash", "-c", f"ulimit -S -n {soft} && ulimit -H -n {hard} && exec {command}"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        photos = len([r for r in server.log.records() if r.kind == "photo"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Too many open files" not in done.stdout + done.stderr
    assert photos > 128  # more than the limit allows at once: they could not all overlap
    capped = [line for line in done.stdout.splitlines() if "of the 250 asked for" in line]
    if soft == hard:
        assert len(capped) == 1, done.stdout
        assert "may open 128 files at once (ulimit -n, hard limit 128)" in capped[0]
    else:
        assert not capped, done.stdout  # raised toward the hard limit: all 250 run
