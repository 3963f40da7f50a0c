"""The displays without a terminal: scripted events rendered into a string console."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from rich.console import Console

from inat_async.cli.progress import (
    LiveReporter,
    PlainReporter,
    RateMeter,
    RunTracker,
    SpeciesProgress,
    make_reporter,
    render_live,
    watch_limits,
)
from inat_async.cli.views import human_bytes, human_duration, render_summary, summary_table
from inat_async.events import (
    Event,
    LimitWait,
    PageFetched,
    PhotoDownloaded,
    PhotoFailed,
    PhotoSkipped,
    RunFinished,
    RunStarted,
    SpeciesFinished,
    SpeciesStarted,
    TaxonResolved,
)
from inat_async.limits import LimitsSnapshot, WindowUsage
from inat_async.models import Taxon
from inat_async.results import PhotoFailure, RunResult, SpeciesResult

NOW = 1_750_000_000.0  # wall time the scripted runs happen at


class FakeTime:
    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


def console(width: int = 80, *, terminal: bool = False) -> Console:
    return Console(
        file=io.StringIO(),
        width=width,
        force_terminal=terminal,
        color_system=None,
        highlight=False,
        legacy_windows=False,
    )


def text_of(out: Console) -> str:
    assert isinstance(out.file, io.StringIO)
    return out.file.getvalue()


def snapshot(
    *, hour_used: int = 1_200_000_000, day_used: int = 3_000_000_000, hour_full: bool = False
) -> LimitsSnapshot:
    hour_budget = hour_used if hour_full else 4_500_000_000
    return LimitsSnapshot(
        at=NOW,
        requests_minute=WindowUsage("requests per minute", 12, 60, 60.0, 0, NOW + 30),
        requests_day=WindowUsage("requests per day", 340, 9_500, 86_400.0, 0, NOW + 3600),
        bytes_hour=WindowUsage("bytes per hour", hour_used, hour_budget, 3600.0, 0, NOW + 754),
        bytes_day=WindowUsage("bytes per day", day_used, 22_000_000_000, 86_400.0, 0, NOW + 9e3),
        bytes_in_flight=0,
        bytes_in_flight_here=0,
        paused_until=None,
        slow_until=None,
    )


TAXON = Taxon(id=47219, name="Apis mellifera")
NAMES = ("Apis mellifera", "Mantis religiosa", "Martes americana")


def script() -> list[Event]:
    """A run of three species: the first half way through its pages, one failure."""
    return [
        RunStarted(NAMES, 8, Path("results")),
        TaxonResolved("Apis mellifera", TAXON, None),
        SpeciesStarted("Apis mellifera", 400, 0, 0),
        PageFetched("Apis mellifera", 200, 300, 400, 1000),
        *[PhotoDownloaded("Apis mellifera", i, i, Path(f"p{i}.jpg"), 100_000) for i in range(100)],
        PhotoSkipped("Apis mellifera", 5, 6, "license"),
        PhotoFailed("Apis mellifera", 7, 8, "http://x/photos/8/medium.jpg", "HTTP 500", False),
        PhotoFailed("Apis mellifera", 9, 10, "http://x/photos/10/medium.jpg", "HTTP 404", True),
    ]


def test_the_tracker_folds_events_and_estimates_what_is_coming() -> None:
    clock = FakeTime(100.0)
    tracker = RunTracker(clock, wall=lambda: NOW)
    for event in script():
        tracker.apply(event)
    clock.t = 110.0
    view = tracker.view()
    (apis,) = view.active
    assert (apis.downloaded, apis.failed, apis.missing, apis.skipped) == (100, 1, 1, 1)
    assert apis.bytes == 10_000_000
    # 200 of 400 observations paged in with 300 photos: about 600 photos in all.
    assert apis.photos_estimate() == (600, False)
    assert not apis.walked
    # The two species not started yet are guessed like the one seen.
    assert (view.photos_total, view.photos_exact) == (1800, False)
    assert view.settled == 102 and view.elapsed == 10.0
    assert view.species_total == 3 and view.species_finished == 0

    tracker.apply(PageFetched("Apis mellifera", 200, 280, 400, 2000))
    apis = tracker.view().active[0]
    assert apis.walked and apis.photos_estimate() == (580, True)


def test_resumed_species_count_earlier_runs() -> None:
    progress = SpeciesProgress("Mantis religiosa", 0.0)
    tracker = RunTracker(lambda: 0.0, wall=lambda: NOW)
    tracker.apply(SpeciesStarted("Mantis religiosa", 100, 40, 12))
    progress = tracker.species["Mantis religiosa"]
    assert progress.observations == 40 and progress.photos_queued == 12
    tracker.apply(PageFetched("Mantis religiosa", 30, 45, 100, 10))
    # 12 left over + 45 from 30 of the 60 new observations: ~12 + 90.
    assert progress.photos_estimate() == (102, False)


def test_a_finished_species_leaves_the_bars() -> None:
    tracker = RunTracker(lambda: 0.0, wall=lambda: NOW)
    for event in script():
        tracker.apply(event)
    result = SpeciesResult("Apis mellifera", observations=400, photos_downloaded=100)
    tracker.apply(SpeciesFinished("Apis mellifera", result))
    view = tracker.view()
    assert view.active == () and view.species_finished == 1
    # Its 300 photos are exact; the two species not started yet are guessed alike.
    assert (view.photos_total, view.photos_exact) == (900, False)
    tracker.apply(RunFinished(RunResult([result])))
    assert tracker.done


def test_waits_expire_at_their_resume_time() -> None:
    wall = FakeTime(NOW)
    tracker = RunTracker(lambda: 0.0, wall=wall)
    tracker.apply(LimitWait("hourly byte budget", NOW + 120))
    assert tracker.view().waits == (("hourly byte budget", NOW + 120),)
    wall.t = NOW + 121
    assert tracker.view().waits == ()


def live_text(tracker: RunTracker, width: int = 80, **rates: float) -> str:
    out = console(width)
    view = tracker.view()
    out.print(render_live(view, rates.get("photos", 10.0), rates.get("bytes", 1_000_000.0), width))
    return text_of(out)


def test_live_display_shows_species_totals_budgets_and_a_countdown() -> None:
    clock = FakeTime(0.0)
    tracker = RunTracker(clock, wall=lambda: NOW)
    for event in script():
        tracker.apply(event)
    clock.t = 10.0
    tracker.set_limits(snapshot(hour_used=4_500_000_000, hour_full=True))
    tracker.apply(LimitWait("hourly byte budget", NOW + 754))
    text = live_text(tracker)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    apis = next(line for line in lines if line.startswith("Apis mellifera"))
    assert "102/~600 photos" in apis  # downloaded, failed and missing
    assert "200/400 obs" in apis and "1 failed" in apis
    assert any(line.startswith("all: 0/3 species") and "~1,800 photos" in line for line in lines)
    hour = next(line for line in lines if line.startswith("budget, last hour"))
    assert "4.5 GB of 4.5 GB" in hour and "frees from" in hour
    assert any(line.startswith("budget, last 24 h") and "of 22 GB" in line for line in lines)
    assert "API 12/60 a minute, 340/9,500 a day" in text
    assert "10.0 MB at 1.0 MB/s" in text
    pause = next(line for line in lines if "paused" in line)
    assert pause.startswith("⏸ paused until ") and "(12m34s)" in pause
    # Which budget, and how full it is now (the snapshot): never "… reached" at 5%.
    assert pause.endswith(": hourly byte budget, 4.5 GB of 4.5 GB spent")
    assert "reached" not in text


def test_a_pause_says_which_budget_how_full_and_never_429_reached() -> None:
    tracker = RunTracker(FakeTime(0.0), wall=lambda: NOW)
    tracker.apply(LimitWait("daily request budget", NOW + 90, 9_500, 9_500))
    tracker.apply(LimitWait("API asked to slow down (HTTP 429)", NOW + 30))
    text = live_text(tracker)
    assert "(30s): the API asked to slow down (HTTP 429)" in text
    assert "(1m30s): daily request budget, 9,500 of 9,500 spent" in text
    assert "reached" not in text
    reporter, out, _ = plain()
    reporter(LimitWait("API asked to slow down (HTTP 429)", NOW + 60))
    reporter(LimitWait("hourly byte budget", NOW + 60, 4_200_000_000, 4_500_000_000))
    lines = text_of(out).splitlines()
    assert "paused: the API asked to slow down (HTTP 429); going on at" in lines[0]
    assert (
        "paused: hourly byte budget, 4.2 GB of 4.5 GB spent in the last hour; going on at"
        in lines[1]
    )
    assert "reached" not in text_of(out)


def test_live_display_at_narrow_widths_and_with_many_species() -> None:
    tracker = RunTracker(FakeTime(0.0), wall=lambda: NOW)
    names = tuple(f"Species number {i} with a long name" for i in range(12))
    tracker.apply(RunStarted(names, 8, Path("out")))
    for name in names:
        tracker.apply(SpeciesStarted(name, 10, 0, 0))
    for width in (50, 80, 120):
        text = live_text(tracker, width)
        assert all(len(line) <= width for line in text.splitlines()), text
        assert "4 more species in progress" in text
        assert "ETA ?" in text or "ETA" in text


def test_live_reporter_renders_from_its_tracker_and_prints_finished_species() -> None:
    out = console(80, terminal=True)
    reporter = LiveReporter(out, tracker=RunTracker(FakeTime(0.0), wall=lambda: NOW))
    for event in script():
        reporter(event)
    reporter.tick(lambda: snapshot())
    rendered = console(80)
    rendered.print(reporter.render())
    assert "Apis mellifera" in text_of(rendered)
    assert "budget, last hour" in text_of(rendered)
    reporter(
        SpeciesFinished(
            "Mantis religiosa",
            SpeciesResult("Mantis religiosa", observations=25, photos_downloaded=40, bytes=10**6),
        )
    )
    reporter(SpeciesFinished("Nonexistus", SpeciesResult("Nonexistus", error="no taxon")))
    printed = text_of(out)
    assert "✓ Mantis religiosa: 25 observations, 40 photos (1.0 MB)" in printed
    assert "✗ Nonexistus: no taxon" in printed


def plain(**options: object) -> tuple[PlainReporter, Console, FakeTime]:
    out = console(100)
    clock = FakeTime(0.0)
    reporter = PlainReporter(
        out,
        tracker=RunTracker(clock, wall=lambda: NOW),
        clock=clock,
        stamp=lambda: "12:00:00",
        **options,  # type: ignore[arg-type]
    )
    return reporter, out, clock


def test_plain_lines_one_per_page_not_per_photo() -> None:
    reporter, out, _ = plain()
    for event in script():
        reporter(event)
    lines = text_of(out).splitlines()
    assert lines[0] == "12:00:00 3 species, 8 workers, into results"
    assert "12:00:00 Apis mellifera: taxon 47219 Apis mellifera" in lines
    assert "12:00:00 Apis mellifera: page of 200 observations (200/400), 300 photos queued" in lines
    assert not any("p1.jpg" in line for line in lines)
    assert any("failed http://x/photos/8/medium.jpg: HTTP 500" in line for line in lines)
    assert any("missing http://x/photos/10/medium.jpg: HTTP 404" in line for line in lines)
    assert len(lines) == 5
    reporter(SpeciesFinished("Apis mellifera", SpeciesResult("Apis mellifera", observations=4)))
    reporter(SpeciesFinished("Nonexistus", SpeciesResult("Nonexistus", error="no taxon")))
    lines = text_of(out).splitlines()
    assert lines[-2].startswith("12:00:00 Apis mellifera: done: 4 observations, 0 photos")
    assert lines[-1] == "12:00:00 Nonexistus: error: no taxon"


def test_plain_verbose_has_one_line_per_photo_and_silent_none() -> None:
    verbose, out, _ = plain(verbose=True)
    for event in script():
        verbose(event)
    assert sum(".jpg (100.0 kB)" in line for line in text_of(out).splitlines()) == 100
    silent, quiet_out, clock = plain(silent=True)
    for event in script():
        silent(event)
    clock.t = 1000
    silent.tick(lambda: snapshot())
    assert text_of(quiet_out) == ""


def test_plain_summary_every_30_seconds_with_budgets_and_pauses() -> None:
    reporter, out, clock = plain()
    for event in script():
        reporter(event)
    before = text_of(out)
    clock.t = 10
    reporter.tick(lambda: snapshot())
    assert text_of(out) == before  # not yet
    clock.t = 31
    reporter.tick(lambda: snapshot())
    last = text_of(out).splitlines()[-1]
    assert last.startswith("12:00:00 0/3 species, 102/~1,800 photos, 10.0 MB at ")
    assert "ETA ~" in last and "1 failed" in last
    assert "budgets: 1.2 GB of 4.5 GB this hour, 3 GB of 22 GB today" in last
    reporter(LimitWait("daily byte budget", NOW + 60, 21_000_000_000, 22_000_000_000))
    reporter(LimitWait("daily byte budget", NOW + 60, 21_000_000_000, 22_000_000_000))  # once
    pauses = [line for line in text_of(out).splitlines() if "paused" in line]
    assert len(pauses) == 1
    assert "paused: daily byte budget, 21 GB of 22 GB spent in the last 24 h" in pauses[0]


def test_make_reporter_picks_the_live_display_only_on_a_terminal() -> None:
    assert isinstance(
        make_reporter(plain=False, silent=False, verbose=False, console=console()), PlainReporter
    )
    terminal = console(terminal=True)
    assert isinstance(
        make_reporter(plain=False, silent=False, verbose=False, console=terminal), LiveReporter
    )
    assert isinstance(
        make_reporter(plain=True, silent=False, verbose=False, console=terminal), PlainReporter
    )
    assert isinstance(
        make_reporter(plain=False, silent=True, verbose=False, console=terminal), PlainReporter
    )


def test_rate_meter_uses_a_sliding_window() -> None:
    meter = RateMeter(window=10.0)
    assert meter.add(0.0, 0, 0) == (0.0, 0.0)
    assert meter.add(2.0, 20, 2000) == (10.0, 1000.0)
    for t in range(3, 30):
        photos, _ = meter.add(float(t), 20 + (t - 2) * 5, 0)
    assert photos == pytest.approx(5.0)


async def test_watch_limits_ticks_on_the_loop_and_stops_with_the_block() -> None:
    calls: list[str] = []

    class Probe:
        interval = 0.01

        def tick(self, source: object) -> None:
            calls.append("tick")

    async with watch_limits(Probe(), None):  # type: ignore[arg-type]
        await asyncio.sleep(0.06)
    seen = len(calls)
    assert seen >= 2
    await asyncio.sleep(0.03)
    assert len(calls) == seen


async def test_watch_limits_lets_a_cancellation_through() -> None:
    class Probe:
        interval = 0.01

        def tick(self, source: object) -> None:
            pass

    async def body() -> None:
        async with watch_limits(Probe(), None):  # type: ignore[arg-type]
            await asyncio.sleep(10)

    task = asyncio.create_task(body())
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- the end summary ------------------------------------------------------------------------------


def full_result() -> RunResult:
    long = SpeciesResult(
        "Quercus robur subsp. pedunculiflora (a very long name)",
        observations=12_345,
        photos_downloaded=23_456,
        photos_already_done=1_234,
        skipped_license=321,
        skipped_placeholder=12,
        bytes=12_345_678_901,
        seconds=7_384.0,
        failures=[
            PhotoFailure(
                1, 11, "http://x/photos/11/medium.jpg", "HTTP 500 after 4 attempts", False
            ),
            PhotoFailure(2, 22, "http://x/photos/22/medium.jpg", "HTTP 404", True),
        ],
    )
    short = SpeciesResult(
        "Apis mellifera", observations=200, photos_downloaded=310, bytes=24_800_000, seconds=42.0
    )
    broken = SpeciesResult("Nonexistus", error="no iNaturalist taxon is named 'Nonexistus'")
    return RunResult([long, short, broken])


@pytest.mark.parametrize("width", [60, 80, 120])
def test_summary_fits_the_width(width: int) -> None:
    out = console(width)
    render_summary(out, full_result(), Path("results"))
    text = text_of(out)
    table = text.split("skipped:")[0]
    assert all(len(line) <= width for line in table.splitlines()), table
    header = table.splitlines()[0].split()
    assert header[:3] == ["species", "obs", "photos"] and "failed" in header
    if width >= 80:
        assert {"had", "skipped", "missing", "bytes"} <= set(header)
    if width >= 120:
        assert "time" in header
    assert "total" in table and "12,345" in table


def test_summary_explains_skips_and_lists_failures_with_the_csv() -> None:
    out = console(80)
    render_summary(out, full_result(), Path("results"))
    text = text_of(out)
    assert "skipped: 321 not under the chosen licenses, 12 placeholders" in text
    assert "had: 1,234 photos were already there" in text
    assert "missing: 1 photo is no longer on iNaturalist" in text
    assert "1 photo failed" in text
    assert "Quercus_robur" in text and "_photos.csv" in text
    assert "observation 1, photo 11: HTTP 500 after 4 attempts" in text
    assert "photo 22" not in text  # missing is not failed
    assert "✗ Nonexistus: no iNaturalist taxon" in text


def test_summary_drops_empty_columns() -> None:
    result = RunResult([SpeciesResult("Apis mellifera", observations=5, photos_downloaded=7)])
    table = summary_table(result, 80)
    headers = [str(column.header) for column in table.columns]
    assert headers == ["species", "obs", "photos", "failed", "bytes", "time"]


def test_human_units() -> None:
    assert human_bytes(999) == "999 B"
    assert human_bytes(1_234_567) == "1.2 MB"
    assert human_bytes(999_999) == "1.0 MB"
    assert human_duration(4.24) == "4.2s"
    assert human_duration(245) == "4m05s"
    assert human_duration(7300) == "2h01m"
    assert human_duration(200_000) == "2d07h"
