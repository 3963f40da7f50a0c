"""Rendering progress events for a person: plain log lines, and the end-of-run summary.

This module belongs to the command line; the library only emits events.
"""

from __future__ import annotations

import time
from datetime import datetime
from types import TracebackType

from rich.console import Console
from rich.table import Table

from .events import (
    Event,
    LimitWait,
    PageFetched,
    PhotoDownloaded,
    PhotoFailed,
    RunStarted,
    SpeciesFinished,
    SpeciesStarted,
    TaxonResolved,
)
from .results import RunResult


def human_bytes(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(nbytes) < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")


class PlainReporter:
    """Timestamped lines: one per page and per species, a summary every ``every`` seconds."""

    def __init__(
        self, console: Console, *, verbose: bool = False, silent: bool = False, every: float = 30.0
    ) -> None:
        self.console = console
        self.verbose = verbose
        self.silent = silent
        self.every = every
        self._photos = 0
        self._bytes = 0
        self._last_summary = time.monotonic()
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
        stamp = datetime.now().strftime("%H:%M:%S")
        self.console.print(f"{stamp} {message}", markup=False, highlight=False)

    def __call__(self, event: Event) -> None:
        if isinstance(event, PhotoDownloaded):
            self._photos += 1
            self._bytes += event.bytes
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
                self.log(f"{name}: page of {n} observations, {p} photos queued (of ~{e})")
            case PhotoDownloaded(species=name, path=path, bytes=nbytes) if self.verbose:
                self.log(f"{name}: {path.name} ({human_bytes(nbytes)})")
            case PhotoFailed(species=name, url=url, reason=reason, missing=missing):
                self.log(f"{name}: {'missing' if missing else 'failed'} {url}: {reason}")
            case LimitWait(reason=reason, resume_at=resume_at):
                if self._last_wait != (reason, round(resume_at)):
                    self._last_wait = (reason, round(resume_at))
                    until = datetime.fromtimestamp(resume_at).strftime("%H:%M:%S")
                    self.log(f"paused: {reason} reached; going on at {until}")
            case SpeciesFinished(species=name, result=result):
                self.log(
                    f"{name}: done: {result.observations} observations, "
                    f"{result.photos_downloaded} photos ({human_bytes(result.bytes)})"
                )
            case _:
                pass
        now = time.monotonic()
        if now - self._last_summary >= self.every:
            self._last_summary = now
            self.log(f"{self._photos} photos, {human_bytes(self._bytes)} so far")


def make_reporter(*, plain: bool, silent: bool, verbose: bool) -> PlainReporter:
    console = Console(highlight=False, soft_wrap=True)
    return PlainReporter(console, verbose=verbose, silent=silent)


def summary_table(result: RunResult) -> Table:
    table = Table(title="inat-async summary", title_justify="left")
    for column in (
        "species",
        "observations",
        "photos",
        "already had",
        "skipped",
        "failed",
        "missing",
        "bytes",
        "time",
    ):
        table.add_column(column, justify="left" if column == "species" else "right")
    for species in result.species:
        skipped = species.skipped_license + species.skipped_placeholder
        why = []
        if species.skipped_license:
            why.append(f"{species.skipped_license} license")
        if species.skipped_placeholder:
            why.append(f"{species.skipped_placeholder} placeholder")
        table.add_row(
            species.name + (" [red](error)[/]" if species.error else ""),
            str(species.observations),
            str(species.photos_downloaded),
            str(species.photos_already_done),
            f"{skipped}" + (f" ({', '.join(why)})" if why else ""),
            str(species.photos_failed),
            str(species.photos_missing),
            human_bytes(species.bytes),
            f"{species.seconds:.1f}s",
        )
    return table


def render_summary(console: Console, result: RunResult) -> None:
    console.print(summary_table(result))
    for species in result.species:
        for failure in species.failures:
            if not failure.missing:
                console.print(
                    f"failed: {species.name} observation {failure.observation_id} "
                    f"photo {failure.photo_id}: {failure.reason}",
                    markup=False,
                    highlight=False,
                )
