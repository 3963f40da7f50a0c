"""`inat-async demo` in a subprocess: offline, in seconds, with the live display, real files."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inat_async.cli.demo import DEMO_OBSERVATIONS
from inat_async.testing import DEMO_COUNTS

pytestmark = pytest.mark.timeout(60)


def test_demo_downloads_into_the_given_folder_with_the_live_display(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    user_state = tmp_path / "user-state"
    env = {
        **os.environ,
        "INAT_ASYNC_STATE_DIR": str(user_state),
        # rich draws its live display as on a terminal, though stdout is a pipe.
        "TTY_COMPATIBLE": "1",
        "COLUMNS": "80",
        "LINES": "40",
    }
    env.pop("INAT_API_URL", None)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "inat_async", "demo", "--out", str(out), "--workers", "16"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert took < 20, f"the demo took {took:.1f}s"
    assert "Traceback" not in done.stderr
    for name in DEMO_COUNTS:
        folder = name.replace(" ", "_")
        photos = list((out / f"{folder}_images").iterdir())
        assert photos and all(p.stat().st_size > 0 for p in photos)
        with (out / f"{folder}_metadata.csv").open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert 0 < len(rows) <= DEMO_OBSERVATIONS
        assert (out / f"{folder}_photos.csv").is_file()
    # The live display ran (bars drawn with cursor movements), then the summary.
    assert "\x1b[" in done.stdout and "━" in done.stdout
    assert "all: 3/3 species" in done.stdout or "✓ Martes americana" in done.stdout
    assert "species" in done.stdout and "total" in done.stdout
    assert f"inat-async status --out {out}" in done.stdout
    # The user's real budgets were neither read nor spent.
    assert not user_state.exists()
