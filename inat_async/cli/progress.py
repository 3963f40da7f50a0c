"""Rendering progress events for a person while a run goes: a live display or log lines.

This module belongs to the command line; the library only emits events
(:mod:`inat_async.events`). Events arrive as synchronous callbacks on the event loop,
so handling one is O(1): it updates counters in a :class:`RunTracker` and nothing
else. Drawing happens elsewhere:

- :class:`LiveReporter` (a terminal): rich's :class:`~rich.live.Live` redraws a few
  times a second *on its own thread*, from a copy of the tracker taken under a lock;
  one bar per species in progress, the overall photos, bytes, rate and ETA, the
  hourly and daily byte budgets, and a countdown while a budget pauses the run.
- :class:`PlainReporter` (not a terminal, or ``--plain``): timestamped lines, one per
  observation page and a summary every 30 s (one per photo with ``verbose``).

The limits store is SQLite and belongs to the loop's thread, so the budgets are read
by :func:`watch_limits`, a small task on the loop that calls the reporter's
:meth:`~Reporter.tick` a few times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..errors import InatError
from ..events import (
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
    WorkersLimited,
)
from ..limits import LimitsSnapshot, WindowUsage
from ..limitstore import PAUSED
from .views import (
    clock_time,
    count,
    human_budget,
    human_bytes,
    human_duration,
    render_summary,
    wait_text,
)

__all__ = [
    "LiveReporter",
    "PlainReporter",
    "RateMeter",
    "Reporter",
    "RunTracker",
    "RunView",
    "SpeciesProgress",
    "human_bytes",
    "make_reporter",
    "render_live",
    "render_summary",
    "watch_limits",
]

#: Species bars shown at once; more in progress are summed up on one line.
MAX_SPECIES_ROWS = 8
#: Rates are measured over this many seconds.
RATE_WINDOW = 20.0

SnapshotSource = Callable[[], LimitsSnapshot]


# -- the state the displays draw from --------------------------------------------------------------


@dataclass(slots=True)
class SpeciesProgress:
    """Counts of one species during this run (mutable; displays draw from copies)."""

    name: str
    started: float
    #: Observations asked (-o), and the observations the run will end with, once known.
    wanted: int | None = None
    expected: int | None = None
    #: Observations stored: by an earlier run, plus the pages of this one.
    observations: int = 0
    resumed_observations: int = 0
    #: Photos queued in this run: left over by an earlier run, plus from each page.
    photos_queued: int = 0
    resumed_photos: int = 0
    downloaded: int = 0
    failed: int = 0
    missing: int = 0
    skipped: int = 0
    bytes: int = 0
    finished: bool = False
    error: str | None = None
    seconds: float = 0.0

    @property
    def settled(self) -> int:
        return self.downloaded + self.failed + self.missing

    @property
    def walked(self) -> bool:
        """Every observation the run will take has been paged in."""
        return self.finished or (self.expected is not None and self.observations >= self.expected)

    def photos_estimate(self) -> tuple[int, bool]:
        """``(photos this run will download, exact?)``: while pages still arrive, the
        photos queued so far scaled to the observations expected."""
        if self.walked:
            return self.photos_queued, True
        taken = self.observations - self.resumed_observations
        if self.expected is None or taken <= 0:
            return self.photos_queued, False
        paged = self.photos_queued - self.resumed_photos
        to_take = self.expected - self.resumed_observations
        return self.resumed_photos + math.ceil(paged * to_take / taken), False


@dataclass(frozen=True, slots=True)
class RunView:
    """A consistent copy of the tracker at one moment, for drawing on another thread."""

    at: float
    elapsed: float
    species_total: int
    species_finished: int
    active: tuple[SpeciesProgress, ...]
    downloaded: int
    failed: int
    missing: int
    skipped: int
    bytes: int
    #: Photos this run will settle in all (an estimate until every species is walked).
    photos_total: int
    photos_exact: bool
    #: ``(reason, resume_at)`` of the waits on a budget going on now (wall time).
    waits: tuple[tuple[str, float], ...]
    limits: LimitsSnapshot | None
    workers: int = 0
    out_dir: Path | None = None
    #: ``(reason, spent, budget)`` as the wait events said when they began.
    wait_amounts: tuple[tuple[str, int | None, int | None], ...] = ()

    @property
    def settled(self) -> int:
        return self.downloaded + self.failed + self.missing


class RunTracker:
    """Folds events into counts in O(1) each; :meth:`view` copies them for a display.

    Thread-safe: events arrive on the loop, views are taken on a display thread.
    ``clock`` is monotonic (elapsed times), ``wall`` is epoch seconds (waits).
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self.names: tuple[str, ...] = ()
        self.workers = 0
        self.out_dir: Path | None = None
        self.started = clock()
        self.species: dict[str, SpeciesProgress] = {}
        self.active: dict[str, SpeciesProgress] = {}
        self.finished = 0
        #: Photos of the finished species (exact): views then only look at active ones.
        self.finished_photos = 0
        self.downloaded = 0
        self.failed = 0
        self.missing = 0
        self.skipped = 0
        self.bytes = 0
        self.pages = 0
        self.waits: dict[str, float] = {}
        self.wait_amounts: dict[str, tuple[int | None, int | None]] = {}
        self.limits: LimitsSnapshot | None = None
        self.done = False

    def _species(self, name: str) -> SpeciesProgress:
        found = self.species.get(name)
        if found is None:
            found = self.species[name] = SpeciesProgress(name, self._clock())
            self.active[name] = found
        return found

    def apply(self, event: Event) -> None:
        with self._lock:
            self._apply(event)

    def _apply(self, event: Event) -> None:
        match event:
            case PhotoDownloaded(species=name, bytes=nbytes):
                species = self._species(name)
                species.downloaded += 1
                species.bytes += nbytes
                self.downloaded += 1
                self.bytes += nbytes
            case PhotoFailed(species=name, missing=missing):
                species = self._species(name)
                if missing:
                    species.missing += 1
                    self.missing += 1
                else:
                    species.failed += 1
                    self.failed += 1
            case PhotoSkipped(species=name):
                self._species(name).skipped += 1
                self.skipped += 1
            case PageFetched(species=name, observations=n, photos=p, expected_observations=e):
                species = self._species(name)
                species.observations += n
                species.photos_queued += p
                species.expected = e
                self.pages += 1
            case SpeciesStarted(
                species=name, wanted=wanted, resumed_observations=seen, resumed_photos=todo
            ):
                species = self._species(name)
                species.wanted = wanted
                species.observations = species.resumed_observations = seen
                species.photos_queued += todo
                species.resumed_photos = todo
            case TaxonResolved(species=name):
                self._species(name)
            case LimitWait(reason=reason, resume_at=resume_at, spent=spent, budget=budget):
                self.waits[reason] = resume_at
                self.wait_amounts[reason] = (spent, budget)
            case SpeciesFinished(species=name, result=result):
                species = self._species(name)
                if not species.finished:
                    species.finished = True
                    self.finished += 1
                    self.finished_photos += species.photos_queued
                species.error = result.error
                species.observations = result.observations
                species.seconds = result.seconds
                self.active.pop(name, None)
            case RunStarted(species=names, workers=workers, out_dir=out_dir):
                self.names, self.workers, self.out_dir = names, workers, out_dir
                self.started = self._clock()
            case RunFinished():
                self.done = True
            case _:
                pass

    def set_limits(self, snapshot: LimitsSnapshot) -> None:
        with self._lock:
            self.limits = snapshot

    def view(self) -> RunView:
        now = self._wall()
        with self._lock:
            active = tuple(replace(s) for s in self.active.values())
            estimates = [s.photos_estimate() for s in active]
            seen = len(self.species)
            unseen = max(0, len(self.names) - seen)
            waits = {r: t for r, t in self.waits.items() if t > now}
            self.waits = waits
            limits = self.limits
            if limits is not None:
                # The snapshot knows which waits are still going on; the events may
                # have been superseded (a wait that ended early).
                waits = {**dict(limits.waiting), **waits} if limits.waiting else waits
                if limits.paused_until is not None and limits.paused_until > now:
                    waits.setdefault(PAUSED, limits.paused_until)
            total = self.finished_photos + sum(e[0] for e in estimates)
            exact = all(e[1] for e in estimates) and unseen == 0
            if unseen and seen:
                # Species not started yet: like the average of those seen.
                total += math.ceil(total / seen * unseen)
            return RunView(
                at=now,
                elapsed=self._clock() - self.started,
                species_total=max(len(self.names), len(self.species)),
                species_finished=self.finished,
                active=active,
                downloaded=self.downloaded,
                failed=self.failed,
                missing=self.missing,
                skipped=self.skipped,
                bytes=self.bytes,
                photos_total=max(total, self.downloaded + self.failed + self.missing),
                photos_exact=exact,
                waits=tuple(sorted(waits.items(), key=lambda w: w[1])),
                limits=limits,
                workers=self.workers,
                out_dir=self.out_dir,
                wait_amounts=tuple(
                    (reason, *self.wait_amounts.get(reason, (None, None))) for reason in waits
                ),
            )


@dataclass(slots=True)
class RateMeter:
    """Photos and bytes per second over the last ``window`` seconds of samples."""

    window: float = RATE_WINDOW
    _samples: deque[tuple[float, int, int]] = field(default_factory=deque)

    def add(self, elapsed: float, photos: int, nbytes: int) -> tuple[float, float]:
        """Record a sample; return ``(photos/s, bytes/s)``."""
        samples = self._samples
        samples.append((elapsed, photos, nbytes))
        while len(samples) > 2 and samples[1][0] <= elapsed - self.window:
            samples.popleft()
        t0, p0, b0 = samples[0]
        if len(samples) < 2 or elapsed - t0 <= 0:
            # Too early for a window: the average since the start.
            if elapsed <= 0:
                return 0.0, 0.0
            return photos / elapsed, nbytes / elapsed
        return (photos - p0) / (elapsed - t0), (nbytes - b0) / (elapsed - t0)


def eta_seconds(view: RunView, photos_per_second: float) -> float | None:
    """Time left: the photos left at the current rate, and at least any pause."""
    left = view.photos_total - view.settled
    wait = max((t - view.at for _, t in view.waits), default=0.0)
    if left <= 0:
        return max(0.0, wait)
    if photos_per_second <= 0:
        return None
    return max(left / photos_per_second, wait)


# -- the live display ----------------------------------------------------------------------------


def _bar(total: int | None, done: int, width: int) -> ProgressBar:
    # total None: rich animates a pulse, for "not known yet".
    return ProgressBar(total=total if total else None, completed=done, width=width)


def _of(done: int, total: int, exact: bool) -> str:
    """``12/340``, ``12/~340`` while the total is an estimate, ``12/?`` before one."""
    if exact:
        return f"{count(done)}/{count(total)}"
    return f"{count(done)}/~{count(total)}" if total else f"{count(done)}/?"


def _species_text(species: SpeciesProgress) -> Text:
    photos, exact = species.photos_estimate()
    text = Text(f"{_of(species.settled, photos, exact)} photos")
    expected = count(species.expected) if species.expected is not None else "?"
    text.append(f" · {count(species.observations)}/{expected} obs")
    if species.failed:
        text.append(f" · {count(species.failed)} failed", style="red")
    return text


def _budget_cells(window: WindowUsage, now: float) -> tuple[ProgressBar, Text]:
    used = window.used + window.in_flight
    share = used / window.budget if window.budget else 0.0
    style = "red" if window.full else "yellow" if share >= 0.8 else "green"
    note = Text(f"{human_bytes(used)} of {human_budget(window.budget)}")
    if window.full and window.next_free_at is not None:
        note.append(f" · frees from {clock_time(window.next_free_at, now)}", style="yellow")
    return ProgressBar(
        total=max(window.budget, 1),
        completed=min(used, window.budget),
        complete_style=style,
        finished_style="red",
    ), note


def render_live(
    view: RunView, photos_per_second: float, bytes_per_second: float, width: int = 80
) -> RenderableType:
    """The live display at one moment: a pure function of its inputs, for tests.

    One row per species in progress (a photos bar, photos and observations counts),
    the run as a whole, the two byte budgets; then speed, ETA and API requests, and a
    countdown for each pause on a budget.
    """
    shown = view.active[-MAX_SPECIES_ROWS:]
    labels = [s.name for s in shown] + ["budget, last hour"]
    label_width = min(24, max(len(label) for label in labels), max(12, width // 3))
    bar_width = 30 if width >= 100 else 20 if width >= 64 else 10
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=label_width, no_wrap=True, overflow="ellipsis")
    grid.add_column(width=bar_width, no_wrap=True)
    grid.add_column(no_wrap=True, overflow="ellipsis")
    for species in shown:
        photos, _ = species.photos_estimate()
        grid.add_row(
            Text(species.name, style="bold"),
            _bar(photos, species.settled, bar_width),
            _species_text(species),
        )
    tilde = "" if view.photos_exact else "~"
    overall = Text(f"{_of(view.settled, view.photos_total, view.photos_exact)} photos")
    if view.failed:
        overall.append(f" · {count(view.failed)} failed", style="red")
    grid.add_row(
        Text(f"all: {view.species_finished}/{view.species_total} species", style="bold"),
        _bar(view.photos_total, view.settled, bar_width),
        overall,
    )
    limits = view.limits
    if limits is not None:
        for label, window in (
            ("budget, last hour", limits.bytes_hour),
            ("budget, last 24 h", limits.bytes_day),
        ):
            bar, note = _budget_cells(window, view.at)
            bar.width = bar_width
            grid.add_row(Text(label), bar, note)

    line = Text(f"{human_bytes(view.bytes)}")
    if view.elapsed >= 1:
        line.append(f" at {human_bytes(bytes_per_second)}/s")
    if view.settled < view.photos_total or not view.photos_exact:
        eta = eta_seconds(view, photos_per_second)
        line.append(f" · ETA {tilde}{human_duration(eta)}" if eta is not None else " · ETA ?")
    if limits is not None:
        line.append(
            f" · API {count(limits.requests_minute.used)}/{count(limits.requests_minute.budget)}"
            f" a minute, {count(limits.requests_day.used)}/{count(limits.requests_day.budget)}"
            " a day"
        )
    line.truncate(width, overflow="ellipsis")
    parts: list[RenderableType] = [grid, line]
    hidden = len(view.active) - len(shown)
    if hidden > 0:
        parts.insert(0, Text(f"… and {hidden} more species in progress", style="dim"))
    amounts = {reason: (spent, budget) for reason, spent, budget in view.wait_amounts}
    for reason, resume_at in view.waits:
        left = max(0.0, resume_at - view.at)
        what = wait_text(reason, *amounts.get(reason, (None, None)), limits=limits, short=True)
        line = Text.assemble(
            ("⏸ paused until ", "bold yellow"),
            (clock_time(resume_at, view.at), "bold"),
            f" ({human_duration(left)}): {what}",
        )
        line.truncate(width, overflow="ellipsis")
        parts.append(line)
    return Group(*parts)


# -- reporters ----------------------------------------------------------------------------------


class Reporter(Protocol):
    """What the command line needs of a display."""

    console: Console
    #: Seconds between :meth:`tick` calls that this display wants.
    interval: float

    def __call__(self, event: Event) -> None: ...

    def tick(self, snapshot: SnapshotSource | None) -> None: ...

    def __enter__(self) -> Reporter: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def workers_line(event: WorkersLimited) -> str:
    """Why the run uses fewer workers than asked, and how to get more."""
    hard = f", hard limit {event.hard}" if event.hard is not None else ""
    return (
        f"workers: {event.workers} of the {event.requested} asked for: this process may open "
        f"{event.soft_after} files at once (ulimit -n{hard}); raise that limit to run more"
    )


def _finished_line(event: SpeciesFinished, *, plain: bool = False) -> Text:
    """``✓ Apis mellifera: 200 observations, ...`` (``Apis mellifera: done: ...`` in logs)."""
    result = event.result
    if result.error:
        if plain:
            return Text(f"{event.species}: error: {result.error}")
        return Text.assemble(("✗ ", "bold red"), (event.species, "bold"), f": {result.error}")
    counts = (
        f"{count(result.observations)} observations, {count(result.photos_downloaded)} "
        f"photos ({human_bytes(result.bytes)})"
    )
    if plain:
        text = Text(f"{event.species}: done: {counts}")
    else:
        text = Text.assemble(("✓ ", "bold green"), (event.species, "bold"), f": {counts}")
    if result.photos_already_done:
        text.append(f", {count(result.photos_already_done)} already there")
    if result.photos_failed:
        text.append(f", {count(result.photos_failed)} failed", style="red")
    if result.photos_missing:
        text.append(f", {count(result.photos_missing)} no longer on iNaturalist")
    text.append(f" in {human_duration(result.seconds)}")
    return text


class LiveReporter:
    """The terminal display: bars redrawn by rich's refresh thread (see the module doc)."""

    interval = 0.25

    def __init__(
        self,
        console: Console,
        *,
        refresh_per_second: float = 4.0,
        tracker: RunTracker | None = None,
    ) -> None:
        self.console = console
        self.tracker = tracker or RunTracker()
        self.meter = RateMeter()
        self._live = Live(
            console=console,
            get_renderable=self.render,
            refresh_per_second=refresh_per_second,
            transient=True,
        )

    def render(self) -> RenderableType:
        view = self.tracker.view()
        photos_rate, bytes_rate = self.meter.add(view.elapsed, view.settled, view.bytes)
        return render_live(view, photos_rate, bytes_rate, self.console.width)

    def __call__(self, event: Event) -> None:
        self.tracker.apply(event)
        if isinstance(event, SpeciesFinished):
            # Rare (once per species): a permanent line above the bars.
            self._live.console.print(_finished_line(event), highlight=False)
        elif isinstance(event, WorkersLimited) and event.capped:
            self._live.console.print(workers_line(event), markup=False, highlight=False)

    def tick(self, snapshot: SnapshotSource | None) -> None:
        if snapshot is not None:
            self.tracker.set_limits(snapshot())

    def __enter__(self) -> LiveReporter:
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.stop()


class PlainReporter:
    """Timestamped lines: one per page and per species, a summary every ``every`` seconds."""

    interval = 1.0

    def __init__(
        self,
        console: Console,
        *,
        verbose: bool = False,
        silent: bool = False,
        every: float = 30.0,
        tracker: RunTracker | None = None,
        clock: Callable[[], float] = time.monotonic,
        stamp: Callable[[], str] | None = None,
    ) -> None:
        self.console = console
        self.verbose = verbose
        self.silent = silent
        self.every = every
        self.tracker = tracker or RunTracker(clock)
        self.meter = RateMeter()
        self._clock = clock
        self._stamp = stamp or (lambda: datetime.now().strftime("%H:%M:%S"))
        self._last_summary = clock()
        self._last_wait: tuple[str, float] | None = None

    def __enter__(self) -> PlainReporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def log(self, message: str) -> None:
        self.console.print(
            f"{self._stamp()} {message}", markup=False, highlight=False, soft_wrap=True
        )

    def __call__(self, event: Event) -> None:
        self.tracker.apply(event)
        if self.silent:
            return
        match event:
            case RunStarted(species=species, workers=workers, out_dir=out_dir):
                self.log(f"{len(species)} species, {workers} workers, into {out_dir}")
            case TaxonResolved(species=name, taxon=taxon, matched_term=term):
                via = f" (matched {term!r})" if term else ""
                self.log(f"{name}: taxon {taxon.id} {taxon.name}{via}")
            case SpeciesStarted(species=name, resumed_observations=seen, resumed_photos=todo):
                if seen or todo:
                    self.log(f"{name}: resuming: {seen} observations stored, {todo} photos to do")
            case PageFetched(species=name, observations=n, photos=p, expected_observations=e):
                progress = self.tracker.species.get(name)
                so_far = progress.observations if progress else n
                self.log(f"{name}: page of {n} observations ({so_far}/{e}), {p} photos queued")
            case PhotoDownloaded(species=name, path=path, bytes=nbytes) if self.verbose:
                self.log(f"{name}: {path.name} ({human_bytes(nbytes)})")
            case PhotoFailed(species=name, url=url, reason=reason, missing=missing):
                self.log(f"{name}: {'missing' if missing else 'failed'} {url}: {reason}")
            case LimitWait(reason=reason, resume_at=resume_at, spent=spent, budget=budget):
                if self._last_wait != (reason, round(resume_at)):
                    self._last_wait = (reason, round(resume_at))
                    left = human_duration(resume_at - time.time())
                    what = wait_text(reason, spent, budget)
                    self.log(f"paused: {what}; going on at {clock_time(resume_at)} (in {left})")
            case SpeciesFinished():
                self.log(_finished_line(event, plain=True).plain)
            case WorkersLimited() if event.capped:
                self.log(workers_line(event))
            case _:
                pass

    def tick(self, snapshot: SnapshotSource | None) -> None:
        if self.silent:
            return
        now = self._clock()
        if now - self._last_summary < self.every:
            return
        self._last_summary = now
        if snapshot is not None:
            self.tracker.set_limits(snapshot())
        self.log(self.summary_line())

    def summary_line(self) -> str:
        view = self.tracker.view()
        photos_rate, bytes_rate = self.meter.add(view.elapsed, view.settled, view.bytes)
        tilde = "" if view.photos_exact else "~"
        parts = [
            f"{view.species_finished}/{view.species_total} species",
            f"{count(view.settled)}/{tilde}{count(view.photos_total)} photos",
            f"{human_bytes(view.bytes)} at {human_bytes(bytes_rate)}/s",
        ]
        eta = eta_seconds(view, photos_rate)
        if eta is not None and view.settled < view.photos_total:
            parts.append(f"ETA {tilde}{human_duration(eta)}")
        if view.failed:
            parts.append(f"{view.failed} failed")
        limits = view.limits
        if limits is not None:
            hour, day = limits.bytes_hour, limits.bytes_day
            parts.append(
                f"budgets: {human_budget(hour.used + hour.in_flight)} of "
                f"{human_budget(hour.budget)} this hour, {human_budget(day.used + day.in_flight)}"
                f" of {human_budget(day.budget)} today"
            )
        return ", ".join(parts)


def make_reporter(
    *, plain: bool, silent: bool, verbose: bool, console: Console | None = None
) -> LiveReporter | PlainReporter:
    """The live display on a terminal, log lines otherwise (or with ``plain``)."""
    console = console or Console(highlight=False, soft_wrap=False)
    if silent or plain or not console.is_terminal or console.is_dumb_terminal:
        console.soft_wrap = True
        return PlainReporter(console, verbose=verbose, silent=silent)
    return LiveReporter(console)


@contextlib.asynccontextmanager
async def watch_limits(
    reporter: LiveReporter | PlainReporter, snapshot: SnapshotSource | None
) -> AsyncIterator[None]:
    """Tick ``reporter`` every ``reporter.interval`` seconds on the loop while the block runs.

    The snapshot (a SQLite read of a few indexed rows) is taken here, on the loop's
    thread, because the limits store cannot be used from rich's refresh thread.
    """

    async def ticker() -> None:
        source = snapshot
        while True:
            await asyncio.sleep(reporter.interval)
            try:
                reporter.tick(source)
            except InatError:
                source = None  # the limits store went away: keep showing the rest

    task = asyncio.create_task(ticker(), name="inat-async display ticker")
    try:
        yield
    finally:
        task.cancel()
        # asyncio.wait never raises the task's CancelledError into this frame, so a
        # cancellation of the run itself is not swallowed here.
        await asyncio.wait([task])
