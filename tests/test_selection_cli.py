"""The selection options in a subprocess: bad input, --from-url, and the species command."""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import start_cli

from inat_async.testing import FakeInatServer, FakeSpecies, build_dataset, run_in_thread

pytestmark = pytest.mark.timeout(120)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    process = start_cli(*args, cwd=cwd, state=cwd / "state")
    stdout, stderr = process.communicate(timeout=90)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeInatServer]:
    dataset = build_dataset(
        [
            FakeSpecies(
                "Apis mellifera", 60, subspecies=("Apis mellifera carnica",), family="Apidae"
            ),
            FakeSpecies("Xylocopa violacea", 25, family="Apidae"),
        ],
        seed=5,
    )
    with run_in_thread(dataset) as server:
        yield server


def fast(server: FakeInatServer) -> list[str]:
    return ["--api-url", server.api_url, "--requests-per-minute", "100000"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--place", "Springfield"], "several places are named 'Springfield'"),
        (["--place", "Atlantis"], "no iNaturalist place is named 'Atlantis'"),
        (["--annotation", "Life Stage=Grown"], "'Life Stage' has no value 'Grown'"),
        (["--annotation", "Mood=Happy"], "no annotation term 'Mood'"),
        (["--d1", "2021-02-30"], "--d1 '2021-02-30' is not a real day"),
        (["--param", "taxon_id=1"], "the tool sets taxon_id"),
        (["--seed", "3"], "--seed chooses a spread sample"),
        (["--per-observer", "0"], "--per-observer must be a whole number of at least 1"),
        (["--from-url", "https://www.inaturalist.org/taxa/47219"], "is not an observations search"),
    ],
)
def test_bad_input_is_exit_2_and_creates_nothing(
    fake: FakeInatServer, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "species.csv").write_text("name\nApis mellifera\n")
    done = run_cli("run", "species.csv", "--out", "out", *args, *fast(fake), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_from_url_gives_the_same_dataset_as_the_flags(fake: FakeInatServer, tmp_path: Path) -> None:
    apis = fake.dataset.species("Apis mellifera")
    (tmp_path / "species.csv").write_text(f"name,taxon_id\nApis mellifera,{apis.id}\n")
    flags = run_cli(
        "run",
        "species.csv",
        "--out",
        "flags",
        "-o",
        "15",
        "-s",
        "small",
        "--wild",
        "--annotation",
        "Life Stage=Adult",
        "--year",
        "2017,2018",
        "--silent",
        *fast(fake),
        cwd=tmp_path,
    )
    assert flags.returncode == 0, flags.stderr
    url = (
        f"https://www.inaturalist.org/observations?taxon_id={apis.id}&captive=false"
        "&term_id=1&term_value_id=2&year=2017,2018&quality_grade=research&subview=grid"
    )
    from_url = run_cli(
        "run", "--from-url", url, "--out", "url", "-o", "15", "-s", "small", "--silent",
        *fast(fake), cwd=tmp_path,
    )  # fmt: skip
    assert from_url.returncode == 0, from_url.stderr
    name = "Apis_mellifera_metadata.csv"
    assert _rows(tmp_path / "url" / name) == _rows(tmp_path / "flags" / name)
    assert sorted(p.name for p in (tmp_path / "url" / "Apis_mellifera_images").iterdir()) == sorted(
        p.name for p in (tmp_path / "flags" / "Apis_mellifera_images").iterdir()
    )
    # One dataset: the URL's run resumes the flags' folder; other filters are refused.
    again = run_cli(
        "run", "--from-url", url, "--out", "flags", "-o", "15", "-s", "small", "--silent",
        *fast(fake), cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    other = run_cli(
        "run", "species.csv", "--out", "flags", "-o", "15", "-s", "small", "--silent",
        *fast(fake), cwd=tmp_path,
    )  # fmt: skip
    assert other.returncode == 2
    assert "captive 'false' before, not set now" in other.stderr
    status = run_cli("status", "--out", "flags", cwd=tmp_path)
    assert "captive false" in status.stdout and "term_value_id 2" in status.stdout


def test_species_command_writes_a_list_run_reads(fake: FakeInatServer, tmp_path: Path) -> None:
    listed = run_cli("species", "Apidae", "--output", "bees.csv", *fast(fake), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = _rows(tmp_path / "bees.csv")
    assert [r["name"] for r in rows] == ["Apis mellifera", "Xylocopa violacea"]
    assert int(rows[0]["observations"]) >= int(rows[1]["observations"])
    printed = run_cli("species", "Apidae", "--limit", "1", *fast(fake), cwd=tmp_path)
    assert printed.stdout.splitlines() == ["name,taxon_id,observations", ",".join(rows[0].values())]
    planned = run_cli("run", "bees.csv", "--dry-run", "--plain", *fast(fake), cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert "Xylocopa violacea" in planned.stdout
    nothing = run_cli("species", *fast(fake), cwd=tmp_path)
    assert nothing.returncode == 2 and "give --place or --bbox" in nothing.stderr
