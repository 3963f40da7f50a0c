"""`run --dry-run`: the estimate against the fake server matches its dataset; nothing is created."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import FAST_RETRY, expected_files, expected_observations
from typer.testing import CliRunner

from inat_async import download_all
from inat_async.cli import app
from inat_async.errors import OutputConflictError
from inat_async.limits import LimitSettings
from inat_async.plan import byte_seconds, plan_run, request_seconds
from inat_async.settings import TYPICAL_BYTES, Settings
from inat_async.species import SpeciesEntry
from inat_async.testing import FakeDataset, FakeInatServer, build_dataset, run_in_thread

ALL = 10**9


def settings(server: FakeInatServer, out: Path, **options: object) -> Settings:
    return Settings.create(
        api_url=server.api_url,
        out_dir=out,
        retry=FAST_RETRY,
        **options,  # type: ignore[arg-type]
    )


async def test_counts_names_and_photos_match_the_dataset(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    out = tmp_path / "out"
    config = settings(server, out, observations=20)
    entries = [
        SpeciesEntry("Apis mellifera"),
        SpeciesEntry("Apis mellifica"),  # a synonym
        SpeciesEntry("Western Honey Bee"),  # the common name
        SpeciesEntry("Mantis religiosa", start_id=0),
        SpeciesEntry("Apis melifera"),  # misspelt
    ]
    seen: list[str] = []
    plan = await plan_run(
        entries, settings=config, limits=fast_limits, on_species=lambda s: seen.append(s.name)
    )
    assert seen == [e.name for e in entries]
    by_name = {s.name: s for s in plan.species}
    query = config.query
    for name, species in (
        ("Apis mellifera", "Apis mellifera"),
        ("Apis mellifica", "Apis mellifera"),
        ("Western Honey Bee", "Apis mellifera"),
        ("Mantis religiosa", "Mantis religiosa"),
    ):
        found = by_name[name]
        assert found.error is None
        assert found.taxon is not None and found.taxon.name == species
        available = len(expected_observations(server.dataset, species, query, ALL))
        assert found.available == available
        assert found.observations == min(20, available)
        # The sample is the 20 observations a run takes: the photo estimate is exact.
        assert found.photos == len(expected_files(server, species, query, 20))
        assert found.bytes == found.photos * TYPICAL_BYTES["medium"]
    assert by_name["Apis mellifera"].matched_term is None
    assert by_name["Apis mellifica"].matched_term == "Apis mellifica"
    assert by_name["Western Honey Bee"].matched_term == "Western Honey Bee"
    misspelt = by_name["Apis melifera"]
    assert misspelt.error is not None and "Apis melifera" in misspelt.error
    assert "Apis mellifera" in misspelt.suggestions
    assert not plan.ok
    assert plan.photos == sum(s.photos for s in plan.species)
    # Nothing downloaded, nothing created.
    assert not out.exists()
    assert server.log.photo_requests() == []


async def test_photo_licenses_are_filtered_and_counts_only_mode(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    config = settings(server, tmp_path / "out", observations=15, license="cc-by,cc0", size="large")
    plan = await plan_run([SpeciesEntry("Apis mellifera")], settings=config, limits=fast_limits)
    (apis,) = plan.species
    assert apis.photos == len(expected_files(server, "Apis mellifera", config.query, 15))
    assert apis.bytes == apis.photos * TYPICAL_BYTES["large"]

    counts_only = await plan_run(
        [SpeciesEntry("Apis mellifera")], settings=config, limits=fast_limits, sample_size=0
    )
    (apis,) = counts_only.species
    assert apis.sampled == 0 and apis.photos == round(apis.observations * 2.0)
    last = server.log.api_requests("/v1/observations")[-1]
    assert last.params["per_page"] == "0"


async def test_an_existing_dataset_is_taken_into_account_and_left_alone(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    out = tmp_path / "out"
    await download_all(
        ["Apis mellifera"],
        observations=10,
        out_dir=out,
        api_url=server.api_url,
        limits=fast_limits,
        retry=FAST_RETRY,
    )
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    requests = len(server.log.api_requests("/v1/taxa"))
    plan = await plan_run(
        [SpeciesEntry("Apis mellifera")],
        settings=settings(server, out, observations=25),
        limits=fast_limits,
    )
    (apis,) = plan.species
    all_of_them = expected_observations(
        server.dataset, "Apis mellifera", Settings.create().query, ALL
    )
    assert apis.already == 10
    assert apis.available == len(all_of_them) - 10
    assert apis.observations == min(15, len(all_of_them) - 10)
    # A resumed dataset keeps its taxon: no name lookup.
    assert len(server.log.api_requests("/v1/taxa")) == requests
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before

    with pytest.raises(OutputConflictError):
        await plan_run(
            [SpeciesEntry("Apis mellifera")],
            settings=settings(server, out, size="large"),
            limits=fast_limits,
        )


def test_time_under_the_limits() -> None:
    limits = LimitSettings()
    assert request_seconds(0, limits) == 0
    assert request_seconds(5, limits) == 0  # the burst
    assert request_seconds(65, limits) == pytest.approx(60.0)
    # Beyond the daily budget, a day per budget.
    assert request_seconds(9_500 + 65, limits) == pytest.approx(86_400 + 60.0)
    hourly = limits.hourly_bytes
    assert byte_seconds(0, limits) == 0
    # The budgets are caps: a whole hour's budget goes at link speed, the next one when
    # the first has left the window.
    assert byte_seconds(hourly, limits) == 0
    assert byte_seconds(2 * hourly, limits) == pytest.approx(3600.0)
    # 22 GB a day: the hourly budget would allow more, the daily budget stops it.
    assert byte_seconds(22_000_000_000 + hourly, limits) == pytest.approx(86_400)
    smoothed = LimitSettings(byte_burst=0.05)  # the opt-in pace
    assert byte_seconds(int(hourly * 0.05), smoothed) == 0  # the burst
    assert byte_seconds(hourly, smoothed) == pytest.approx(3600.0)
    assert byte_seconds(22_000_000_000 + hourly, smoothed) == pytest.approx(86_400 + 3600.0)


# -- the command -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def threaded() -> Iterator[FakeInatServer]:
    dataset: FakeDataset = build_dataset({"Apis mellifera": 40, "Mantis religiosa": 12}, seed=5)
    with run_in_thread(dataset) as server:
        yield server


def test_dry_run_command_prints_the_estimate_and_creates_nothing(
    threaded: FakeInatServer, tmp_path: Path
) -> None:
    (tmp_path / "species.csv").write_text("name\nApis mellifica\nMantis religiosa\nApis melifera\n")
    out = tmp_path / "out"
    done = CliRunner().invoke(
        app,
        [
            "run",
            str(tmp_path / "species.csv"),
            "--dry-run",
            "-o",
            "30",
            "--out",
            str(out),
            "--api-url",
            threaded.api_url,
            "--requests-per-minute",
            "100000",
            "--plain",
        ],
        env={"COLUMNS": "80", "INAT_ASYNC_STATE_DIR": str(tmp_path / "state")},
    )
    assert done.exit_code == 1, done.output  # one name found nothing
    text = done.output
    assert "Dry run: nothing was downloaded" in text
    table = text[text.index("species ") :]
    assert all(len(line) <= 80 for line in table.splitlines()), table
    mantis = next(line for line in table.splitlines() if line.startswith("Mantis religiosa"))
    available = len(
        expected_observations(threaded.dataset, "Mantis religiosa", Settings.create().query, ALL)
    )
    assert f"{available}" in mantis.split()
    assert "Apis mellifica: a synonym or other name; taxon" in text
    assert "did you mean: Apis mellifera?" in text
    assert "A run would take at least" in text
    assert not out.exists()
    assert threaded.log.photo_requests() == []
