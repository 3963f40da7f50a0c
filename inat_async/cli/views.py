"""Static reports for a person: the end-of-run summary, ``status`` and ``run --dry-run``.

This module belongs to the command line: it turns the library's data (a
:class:`~inat_async.results.RunResult`, a :class:`~inat_async.status.DatasetStatus`, a
:class:`~inat_async.plan.RunPlan`) into rich renderables. Tables are built for the
console's width and drop their least useful columns rather than wrap at 80 columns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..layout import Layout
from ..limits import LimitsSnapshot, WindowUsage
from ..limitstore import PAUSED
from ..models import MAX_PHOTOS_PER_OBSERVATION
from ..plan import RunPlan, SpeciesPlan
from ..results import RunResult, SpeciesResult
from ..status import DatasetStatus

#: Failed photos listed one per line below the summary; the rest are in the photos CSVs.
MAX_FAILURES_LISTED = 20


# -- numbers for people -------------------------------------------------------------------------


def human_bytes(nbytes: float) -> str:
    """``1_234_567`` -> ``"1.2 MB"`` (decimal units, as iNaturalist's limits are stated)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(nbytes) < 999.95 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")


def human_budget(nbytes: float) -> str:
    """A budget reads better without a trailing ``.0``: ``4.5 GB``, ``22 GB``."""
    return human_bytes(nbytes).replace(".0 ", " ")


def human_duration(seconds: float) -> str:
    """``4.2`` -> ``4.2s``, ``245`` -> ``4m05s``, ``7300`` -> ``2h01m``, ``200000`` -> ``2d07h``."""
    seconds = max(0.0, seconds)
    if seconds < 9.95:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86_400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86_400}d{whole % 86_400 // 3600:02d}h"


def clock_time(epoch: float, now: float | None = None) -> str:
    """Local time of day, with the date when it is not today."""
    moment = datetime.fromtimestamp(epoch)
    today = datetime.fromtimestamp(time.time() if now is None else now).date()
    return moment.strftime("%H:%M:%S" if moment.date() == today else "%Y-%m-%d %H:%M")


def count(number: int) -> str:
    return f"{number:,}"


#: The budgets a wait can name: what they count, and over which window.
_BUDGETS: dict[str, tuple[bool, str, str]] = {
    # reason: (counts bytes, the snapshot's window, in words)
    "hourly byte budget": (True, "bytes_hour", "the last hour"),
    "daily byte budget": (True, "bytes_day", "the last 24 h"),
    "requests per minute": (False, "requests_minute", "the last minute"),
    "daily request budget": (False, "requests_day", "the last 24 h"),
}


def wait_text(
    reason: str,
    spent: int | None = None,
    budget: int | None = None,
    limits: LimitsSnapshot | None = None,
    *,
    short: bool = False,
) -> str:
    """What a pause waits on, in words: which budget and how full it is, or the 429.

    The numbers come from ``limits`` (the latest snapshot) when given, else from the
    wait itself (``spent`` of ``budget`` when it began).
    """
    if reason == PAUSED:
        return "the API asked to slow down (HTTP 429)"
    known = _BUDGETS.get(reason)
    if known is None:
        return reason
    is_bytes, attribute, span = known
    if limits is not None:
        window: WindowUsage = getattr(limits, attribute)
        spent, budget = window.used + window.in_flight, window.budget
    if spent is None or budget is None:
        return reason
    amount = human_budget if is_bytes else count
    spent_text = f"{reason}, {amount(spent)} of {amount(budget)} spent"
    return spent_text if short else f"{spent_text} in {span}"


# -- a table that fits ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Column:
    header: str
    cells: list[str | Text]
    #: Lower is dropped first when the table is too wide; None is never dropped.
    keep: int | None = None
    #: Dropped whatever the width when every cell is this (e.g. an all-zero column).
    empty: str | None = None
    left: bool = False
    footer: str = ""


#: Below this, a name column is cut rather than another column dropped.
_NAME_WIDTH = 18


def plural(number: int, word: str, words: str | None = None) -> str:
    return f"{count(number)} {word if number == 1 else words or word + 's'}"


def _fitted_table(columns: list[_Column], width: int, *, title: str | None = None) -> Table:
    """A borderless table of ``columns``, without the empty ones and, while it is wider
    than ``width``, without the least useful ones. The first column shrinks last."""
    shown = [
        c for c in columns if c.empty is None or any(str(x) not in (c.empty, "") for x in c.cells)
    ]

    def widths(cols: list[_Column]) -> list[int]:
        return [max(len(c.header), len(c.footer), *(len(str(x)) for x in c.cells)) for c in cols]

    def needed(cols: list[_Column]) -> int:
        sizes = widths(cols)
        # The first column (names) gives way first: it is cut with an ellipsis.
        sizes[0] = min(sizes[0], max(len(cols[0].header), _NAME_WIDTH))
        return sum(sizes) + 2 * (len(cols) - 1)

    while needed(shown) > width:
        droppable = [c for c in shown if c.keep is not None]
        if not droppable:
            break
        shown.remove(min(droppable, key=lambda c: c.keep or 0))
    sizes = widths(shown)
    first_width = max(len(shown[0].header), width - sum(sizes[1:]) - 2 * (len(shown) - 1))
    show_footer = any(c.footer for c in shown)
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        show_footer=show_footer,
        collapse_padding=True,
    )
    for index, column in enumerate(shown):
        table.add_column(
            column.header,
            footer=column.footer,
            justify="left" if column.left else "right",
            no_wrap=True,
            overflow="ellipsis",
            max_width=first_width if index == 0 else None,
        )
    rows = len(shown[0].cells) if shown else 0
    for row in range(rows):
        table.add_row(*(column.cells[row] for column in shown))
    return table


# -- the end-of-run summary ----------------------------------------------------------------------


def _skipped(species: SpeciesResult) -> int:
    return (
        species.skipped_license
        + species.skipped_placeholder
        + species.skipped_invalid
        + species.skipped_too_many
    )


def summary_table(result: RunResult, width: int = 80, elapsed: float | None = None) -> Table:
    """One row per species; a total row when there are several (its time is ``elapsed``,
    the run's, when given: species overlap, their times do not add up)."""
    rows = result.species
    several = len(rows) > 1

    def total(values: Sequence[int]) -> str:
        return count(sum(values)) if several else ""

    def counted(
        header: str, values: Sequence[int], *, keep: int | None = None, empty: str | None = None
    ) -> _Column:
        """A column of counts with their total in the footer."""
        return _Column(
            header, [count(v) for v in values], keep=keep, empty=empty, footer=total(values)
        )

    names: list[str | Text] = [
        Text.assemble(s.name, (" ✗", "bold red")) if s.error else Text(s.name) for s in rows
    ]
    columns = [
        _Column("species", names, left=True, footer="total" if several else ""),
        counted("obs", [s.observations for s in rows]),
        counted("photos", [s.photos_downloaded for s in rows]),
        counted("had", [s.photos_already_done for s in rows], keep=2, empty="0"),
        counted("skipped", [_skipped(s) for s in rows], keep=3, empty="0"),
        _Column(
            "failed",
            [Text(count(s.photos_failed), style="red" if s.photos_failed else "") for s in rows],
            footer=total([s.photos_failed for s in rows]),
        ),
        counted("missing", [s.photos_missing for s in rows], keep=4, empty="0"),
        _Column(
            "bytes",
            [human_bytes(s.bytes) for s in rows],
            keep=5,
            footer=human_bytes(result.bytes) if several else "",
        ),
        _Column(
            "time",
            [human_duration(s.seconds) for s in rows],
            keep=1,
            footer=human_duration(
                elapsed if elapsed is not None else max((s.seconds for s in rows), default=0)
            )
            if several
            else "",
        ),
    ]
    return _fitted_table(columns, width)


def _failure_lines(result: RunResult, out_dir: Path | None) -> list[Text]:
    lines: list[Text] = []
    failed = [(s, f) for s in result.species for f in s.failures if not f.missing]
    if failed:
        where = "the photos CSV of each species"
        if out_dir is not None:
            where += f", e.g. {Layout(out_dir).photos_csv(failed[0][0].name)}"
        lines.append(
            Text.assemble(
                (f"{plural(len(failed), 'photo')} failed", "bold red"),
                " (rerun the same command to retry them); each is also in "
                f"{where}, with status 'failed' and the reason:",
            )
        )
        for species, failure in failed[:MAX_FAILURES_LISTED]:
            lines.append(
                Text(
                    f"  {species.name}, observation {failure.observation_id}, "
                    f"photo {failure.photo_id}: {failure.reason}"
                )
            )
        if len(failed) > MAX_FAILURES_LISTED:
            lines.append(Text(f"  … and {count(len(failed) - MAX_FAILURES_LISTED)} more"))
    return lines


def summary_notes(result: RunResult, out_dir: Path | None = None) -> list[Text]:
    """What the table's counts mean, then the failed photos one per line."""
    notes: list[Text] = []
    license_ = sum(s.skipped_license for s in result.species)
    placeholder = sum(s.skipped_placeholder for s in result.species)
    invalid = sum(s.skipped_invalid for s in result.species)
    too_many = sum(s.skipped_too_many for s in result.species)
    if license_ or placeholder or invalid or too_many:
        why = []
        if license_:
            why.append(f"{count(license_)} not under the chosen licenses")
        if placeholder:
            why.append(f"{count(placeholder)} placeholders (hidden or removed photos)")
        if invalid:
            why.append(f"{count(invalid)} with a bad id or listed twice by the server")
        if too_many:
            why.append(
                f"{count(too_many)} past the cap of {MAX_PHOTOS_PER_OBSERVATION} photos "
                "per observation"
            )
        notes.append(Text(f"skipped: {', '.join(why)}."))
    dropped = sum(s.skipped_observations for s in result.species)
    if dropped:
        notes.append(
            Text(f"dropped: {plural(dropped, 'observation')} the server sent without a usable id.")
        )
    had = sum(s.photos_already_done for s in result.species)
    if had:
        notes.append(
            Text(
                f"had: {plural(had, 'photo was', 'photos were')} already there from an earlier run."
            )
        )
    missing = sum(s.photos_missing for s in result.species)
    if missing:
        notes.append(
            Text(
                f"missing: {plural(missing, 'photo is', 'photos are')} no longer on "
                "iNaturalist (status 'missing' in the photos CSV); not an error."
            )
        )
    for species in result.species:
        if species.error:
            notes.append(Text.assemble(("✗ ", "bold red"), f"{species.name}: {species.error}"))
    notes.extend(_failure_lines(result, out_dir))
    return notes


def render_summary(
    console: Console,
    result: RunResult,
    out_dir: Path | None = None,
    *,
    elapsed: float | None = None,
) -> None:
    console.print(summary_table(result, console.width, elapsed))
    for line in summary_notes(result, out_dir):
        # Not wrapped: reasons and paths stay whole for copying.
        console.print(line, highlight=False, soft_wrap=True)
    if out_dir is not None:
        console.print(
            f"Photos and CSV files are in {out_dir}", highlight=False, markup=False, soft_wrap=True
        )


# -- status --------------------------------------------------------------------------------------


def _window_line(window: WindowUsage, amount: Callable[[float], str], now: float) -> Text:
    used = window.used + window.in_flight
    share = used / window.budget if window.budget else 0.0
    style = "red" if window.full else "yellow" if share >= 0.8 else ""
    text = Text.assemble((amount(used), style), f" of {amount(window.budget)} ({share:.0%})")
    if window.in_flight:
        text.append(f", {amount(window.in_flight)} in flight")
    if window.next_free_at is not None and window.used:
        text.append(f" · oldest leaves {clock_time(window.next_free_at, now)}")
    return text


def limits_lines(
    snapshot: LimitsSnapshot | None, state_dir: Path, *, requests: bool = True
) -> Table:
    """The four budgets as two-column lines (what is spent, and when it frees up);
    the two byte budgets alone when not ``requests`` (a photo host's own ledger)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    if snapshot is None:
        grid.add_row("budgets", f"nothing spent yet (no limits store in {state_dir})")
        return grid
    now = snapshot.at

    def counted(n: float) -> str:
        return count(round(n))

    if requests:
        grid.add_row("requests, last minute", _window_line(snapshot.requests_minute, counted, now))
        grid.add_row("requests, last 24 h", _window_line(snapshot.requests_day, counted, now))
    grid.add_row("photos, last hour", _window_line(snapshot.bytes_hour, human_budget, now))
    grid.add_row("photos, last 24 h", _window_line(snapshot.bytes_day, human_budget, now))
    for pause in snapshot.pauses:
        host = pause.host or "the API"
        if pause.paused_until is not None:
            grid.add_row(
                Text("paused", style="red"),
                f"{host} asked to slow down (HTTP 429): no request to it before "
                f"{clock_time(pause.paused_until, now)} "
                "(`inat-async status --clear-pause` ends it now)",
            )
        else:
            grid.add_row(
                "slowed",
                f"half pace to {host} after an HTTP 429, until {clock_time(pause.slow_until, now)}",
            )
    return grid


def render_status(console: Console, status: DatasetStatus) -> None:
    query = status.query or {}
    settings = " · ".join(
        f"{key} {query[key]}" for key in ("quality", "license", "size") if key in query
    )
    console.print(Text.assemble(("Dataset in ", "bold"), str(status.out_dir)), soft_wrap=True)
    console.print(f"settings: {settings}", highlight=False, markup=False)
    # Everything else in the identity is a search filter or a sampling choice.
    sampling_keys = ("sample", "seed", "per_observer", "photos_per_observation")
    for label, keys in (
        ("filters", [k for k in query if k not in ("quality", "license", "size", *sampling_keys)]),
        ("sampling", [k for k in sampling_keys if k in query]),
    ):
        if keys:
            shown = " · ".join(f"{key} {query[key]}" for key in keys)
            console.print(f"{label}: {shown}", highlight=False, markup=False)
    if status.species:
        rows = status.species
        several = len(rows) > 1
        columns = [
            _Column("species", [s.name for s in rows], left=True, footer="total" * several),
            _Column(
                "obs",
                [count(s.observations) for s in rows],
                footer=count(sum(s.observations for s in rows)) if several else "",
            ),
            _Column(
                "done",
                [count(s.done) for s in rows],
                footer=count(status.done) if several else "",
            ),
            _Column(
                "pending",
                [count(s.pending) for s in rows],
                footer=count(status.pending) if several else "",
            ),
            _Column(
                "failed",
                [Text(count(s.failed), style="red" if s.failed else "") for s in rows],
                footer=count(status.failed) if several else "",
            ),
            _Column(
                "missing",
                [count(s.missing) for s in rows],
                keep=1,
                footer=count(status.missing) if several else "",
            ),
            _Column(
                "bytes",
                [human_bytes(s.bytes) for s in rows],
                keep=2,
                footer=human_bytes(status.bytes) if several else "",
            ),
            _Column(
                "last id",
                [str(s.watermark) if s.watermark else "" for s in rows],
                keep=0,
            ),
        ]
        console.print(_fitted_table(columns, console.width))
    else:
        console.print("No species recorded yet.")
    for species in status.species:
        if species.matched_term and species.taxon_name:
            console.print(
                f"{species.name}: found as {species.matched_term!r} of {species.taxon_name} "
                f"(taxon {species.taxon_id})",
                highlight=False,
                markup=False,
            )
    todo = status.pending + status.failed
    if todo:
        console.print(
            f"{plural(todo, 'photo is', 'photos are')} pending or failed: rerun the same "
            "`inat-async run` command to fetch them.",
            highlight=False,
            markup=False,
        )
    elif status.species:
        console.print("Every recorded photo is done.", highlight=False)
    console.print()
    console.print(
        Text.assemble(("Budgets", "bold"), f" of all your runs (kept in {status.state_dir})")
    )
    console.print(limits_lines(status.limits, status.state_dir))
    if status.bucket_state_dir is not None:
        # An Open Data dataset's photos are charged to the bucket's ledger, not the above.
        console.print()
        console.print(
            Text.assemble(
                ("Open Data bucket", "bold"),
                f": the photo budgets of this dataset (kept in {status.bucket_state_dir})",
            )
        )
        console.print(limits_lines(status.bucket_limits, status.bucket_state_dir, requests=False))


# -- dry run -------------------------------------------------------------------------------------


def _how_found(species: SpeciesPlan) -> str | None:
    if species.taxon is None or not species.matched_term:
        return None
    common = species.taxon.common_name
    kind = (
        "its common name"
        if common and common.casefold() == species.matched_term.casefold()
        else "a synonym or other name"
    )
    return f"{species.name}: {kind}; taxon {species.taxon.id} is {species.taxon.name}"


def plan_table(plan: RunPlan, width: int = 80) -> Table:
    rows = plan.species
    several = len(rows) > 1
    names: list[str | Text] = [
        Text.assemble(s.name, (" ✗", "bold red")) if s.error else Text(s.name) for s in rows
    ]

    def cell(species: SpeciesPlan, value: str) -> str:
        return "" if species.error else value

    columns = [
        _Column("species", names, left=True, footer="total" if several else ""),
        _Column(
            "taxon",
            [str(s.taxon.id) if s.taxon else "" for s in rows],
            keep=1,
        ),
        _Column(
            "available",
            [cell(s, count(s.available)) for s in rows],
            keep=2,
        ),
        _Column(
            "have",
            [cell(s, count(s.already)) for s in rows],
            keep=3,
            empty="0",
        ),
        _Column(
            "to fetch",
            [cell(s, count(s.observations)) for s in rows],
            footer=count(plan.observations) if several else "",
        ),
        _Column(
            "~photos",
            [cell(s, count(s.photos)) for s in rows],
            footer=count(plan.photos) if several else "",
        ),
        _Column(
            "~bytes",
            [cell(s, human_bytes(s.bytes)) for s in rows],
            footer=human_bytes(plan.bytes) if several else "",
        ),
    ]
    return _fitted_table(columns, width)


def render_plan(console: Console, plan: RunPlan) -> None:
    query = plan.query.describe()
    console.print(
        Text.assemble(
            ("Dry run", "bold"),
            f": nothing was downloaded. Up to {count(plan.wanted)} observations per species; "
            f"quality {query['quality']} · license {query['license']} · size {query['size']}",
        )
    )
    filters = plan.query.filters.summary()
    if filters:
        console.print(f"Filters: {' · '.join(filters)}", highlight=False, markup=False)
    sampling = plan.query.sampling
    chosen = [f"spread (seed {sampling.seed})"] if sampling.spread else []
    if sampling.per_observer is not None:
        chosen.append(f"at most {sampling.per_observer} per observer")
    if sampling.photos_per_observation is not None:
        chosen.append(f"first {sampling.photos_per_observation} photos per observation")
    if chosen:
        console.print(f"Sampling: {' · '.join(chosen)}", highlight=False, markup=False)
    console.print(plan_table(plan, console.width))
    for species in plan.species:
        found = _how_found(species)
        if found:
            console.print(found, highlight=False, markup=False)
        if species.error:
            console.print(
                Text.assemble(("✗ ", "bold red"), f"{species.name}: {species.error}"),
                highlight=False,
            )
            if species.suggestions:
                console.print(
                    f"  did you mean: {', '.join(species.suggestions)}?",
                    highlight=False,
                    markup=False,
                )
    if plan.sample_size:
        console.print(
            f"Photos per observation are estimated from the first {plan.sample_size} "
            "observations of each species (with the license filter applied); bytes at "
            f"~{human_bytes(plan.typical_bytes)} a photo ({query['size']}).",
            highlight=False,
            markup=False,
        )
    else:
        console.print(
            f"Photos are estimated at {plan.photos_per_observation_prior:g} a photo per "
            f"observation; bytes at ~{human_bytes(plan.typical_bytes)} a photo.",
            highlight=False,
            markup=False,
        )
    limits = plan.limits
    console.print(
        f"Under the limits: ~{count(plan.requests)} API requests at "
        f"{limits.requests_per_minute} a minute take ~{human_duration(plan.request_seconds)}; "
        f"~{human_bytes(plan.bytes)} of photos under {human_budget(limits.hourly_bytes)} an hour "
        f"and {human_budget(limits.daily_bytes)} a day take at least "
        f"~{human_duration(plan.byte_seconds)}.",
        highlight=False,
        markup=False,
    )
    console.print(
        Text.assemble(
            "A run would take at least ",
            (f"~{human_duration(plan.seconds)}", "bold"),
            " (more if the network is slower than the budgets).",
        )
    )
