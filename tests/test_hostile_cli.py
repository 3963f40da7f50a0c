"""Hostile input and folders through the command line, in a subprocess (issue #14)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support import start_cli

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
