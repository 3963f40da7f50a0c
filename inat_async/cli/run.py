"""``inat-async run`` and ``inat-async demo``: parse the options, call the pipeline, render.

``run`` downloads (or, with ``--dry-run``, estimates with :func:`~inat_async.plan.plan_run`);
``demo`` is the same run against the built-in fake iNaturalist, offline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ..checklist import api_client, resolve_selection
from ..errors import UsageError
from ..limits import Limits, LimitSettings
from ..pipeline import download_all
from ..plan import RunPlan, SpeciesPlan, plan_run
from ..selection import SAMPLES, Sampling
from ..settings import (
    DEFAULT_LICENSE,
    DEFAULT_OBSERVATIONS,
    DEFAULT_OUT_DIR,
    DEFAULT_QUALITY,
    DEFAULT_SIZE,
    DEFAULT_USER_AGENT,
    DEFAULT_WORKERS,
    OFFICIAL_API_URL,
    Settings,
    resolve_limits,
)
from ..sources import Source
from ..sources.base import photo_limits_of
from ..sources.opendata import OPEN_DATA_URL, OpenDataSource
from ..species import SpeciesEntry, daily_request_warning, normalise_name, read_species_csv
from .app import EXIT_FAILED, EXIT_OK, EXIT_USAGE, FLAGS, _fail, _run_cli, app, err_console
from .params import (
    DEFAULT_DAILY_LIMIT,
    DEFAULT_HOURLY_LIMIT,
    SAMPLING_PANEL,
    AnnotationOption,
    ApiUrl,
    BboxOption,
    CaptiveOption,
    D1Option,
    D2Option,
    DailyLimit,
    FromUrlOption,
    HourlyLimit,
    License,
    MonthOption,
    OutDir,
    ParamOption,
    PlaceOption,
    Plain,
    Quality,
    RequestsPerDay,
    RequestsPerMinute,
    Silent,
    StateDir,
    UserAgent,
    UserOption,
    Verbose,
    WithoutAnnotationOption,
    Workers,
    YearOption,
    filter_request,
    limit_settings,
    merge_search_url,
    open_data_filters,
    was_given,
    with_origin,
)
from .progress import LiveReporter, PlainReporter, make_reporter, watch_limits
from .views import count, render_plan, render_summary


async def _download(
    entries: Sequence[SpeciesEntry],
    settings: Settings,
    limits: Limits,
    reporter: LiveReporter | PlainReporter,
    *,
    silent: bool,
    source: Source | None = None,
) -> int:
    """The run shared by ``run`` and ``demo``: live events, then the summary."""
    started = time.monotonic()
    # The budget lines show the ledger the photos are charged to.
    shown = photo_limits_of(source) or limits
    with reporter:
        async with watch_limits(reporter, shown.snapshot):
            result = await download_all(
                entries, settings=settings, limits=limits, on_event=reporter, source=source
            )
    if silent:
        for species in result.species:
            for failure in species.failures:
                if not failure.missing:
                    err_console.print(
                        f"failed: {species.name}, observation {failure.observation_id}, "
                        f"photo {failure.photo_id}: {failure.reason}",
                        markup=False,
                    )
    else:
        reporter.console.print()
        render_summary(
            reporter.console, result, settings.out_dir, elapsed=time.monotonic() - started
        )
    for species in result.species:
        if species.error:
            err_console.print(f"[bold red]error:[/] {escape(f'{species.name}: {species.error}')}")
    return result.exit_code


RUN_EPILOG = """\
[bold]Examples[/]

  inat-async run species.csv -o 500 -s large -w 8
  inat-async run species.csv -q research,needs_id -l cc-by,cc0 --out dataset
  inat-async run species.csv --dry-run        [dim]# what a run would fetch, and how long[/]
  inat-async status --out dataset             [dim]# where it stands, offline[/]

species.csv has a header line and one species a line: name,start_id (start_id is \
optional, 0 by default; an optional taxon_id column skips the name lookup).

Stopped (Ctrl-C, a crash, a budget)? Rerun the same command: finished photos are \
kept, the rest is fetched, nothing is written twice.
"""


@app.command(epilog=RUN_EPILOG)
def run(
    ctx: typer.Context,
    species_csv: Annotated[
        Path,
        typer.Argument(
            help="CSV with a 'name' column (scientific or common names); optional "
            "'start_id' (fetch observations above this id) and 'taxon_id'."
        ),
    ] = Path("species.csv"),
    observations: Annotated[
        int,
        typer.Option("-o", "--observations", help="Observations per species: the first N, by id."),
    ] = DEFAULT_OBSERVATIONS,
    quality: Quality = DEFAULT_QUALITY,
    license: License = DEFAULT_LICENSE,
    size: Annotated[
        str,
        typer.Option(
            "-s",
            "--size",
            help="Photo size: small (240 px), medium (500), large (1024), original (2048).",
        ),
    ] = DEFAULT_SIZE,
    workers: Workers = DEFAULT_WORKERS,
    out: OutDir = DEFAULT_OUT_DIR,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Resolve the names and count what a run would fetch (observations, photos, "
            "bytes) and how long the limits make it take; download nothing, create nothing.",
        ),
    ] = False,
    api_url: ApiUrl = OFFICIAL_API_URL,
    user_agent: UserAgent = DEFAULT_USER_AGENT,
    state_dir: StateDir = None,
    requests_per_minute: RequestsPerMinute = LimitSettings.requests_per_minute,
    requests_per_day: RequestsPerDay = LimitSettings.requests_per_day,
    hourly_limit: HourlyLimit = DEFAULT_HOURLY_LIMIT,
    daily_limit: DailyLimit = DEFAULT_DAILY_LIMIT,
    plain: Plain = False,
    silent: Silent = False,
    verbose: Verbose = False,
    place: PlaceOption = None,
    d1: D1Option = None,
    d2: D2Option = None,
    month: MonthOption = None,
    year: YearOption = None,
    captive: CaptiveOption = None,
    annotation: AnnotationOption = None,
    without_annotation: WithoutAnnotationOption = None,
    user: UserOption = None,
    bbox: BboxOption = None,
    param: ParamOption = None,
    from_url: FromUrlOption = None,
    sample: Annotated[
        str,
        typer.Option(
            "--sample",
            metavar="oldest|spread",
            help="Which observations -o takes: the oldest (first by id), or a sample "
            "spread over the species' whole history (reproducible with --seed; about one "
            "API request per observation).",
            rich_help_panel=SAMPLING_PANEL,
        ),
    ] = SAMPLES[0],
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="The seed of --sample spread: the same seed picks the same observations "
            "\\[default: 0].",
            show_default=False,
            rich_help_panel=SAMPLING_PANEL,
        ),
    ] = None,
    per_observer: Annotated[
        int | None,
        typer.Option(
            "--per-observer",
            metavar="K",
            help="At most K observations of one observer per species.",
            rich_help_panel=SAMPLING_PANEL,
        ),
    ] = None,
    photos_per_observation: Annotated[
        int | None,
        typer.Option(
            "--photos-per-observation",
            metavar="M",
            help="At most the first M photos of each observation.",
            rich_help_panel=SAMPLING_PANEL,
        ),
    ] = None,
    open_data: Annotated[
        Path | None,
        typer.Option(
            "--open-data",
            help="Select from iNaturalist Open Data tables instead of the API: a folder of "
            "observations/observers/photos/taxa .csv.gz, or the inaturalist-open-data-*.tar.gz "
            "bundle ('inat-async open-data fetch' downloads it). No API request is made.",
            show_default=False,
        ),
    ] = None,
    open_data_url: Annotated[
        str,
        typer.Option("--open-data-url", help="The Open Data bucket the photos come from."),
    ] = OPEN_DATA_URL,
    open_data_hourly_limit: Annotated[
        str,
        typer.Option(
            "--open-data-hourly-limit",
            help="Photo bytes per sliding hour from the Open Data bucket (a budget of its own; "
            "its limits are not documented, raise it knowingly).",
        ),
    ] = DEFAULT_HOURLY_LIMIT,
    open_data_daily_limit: Annotated[
        str,
        typer.Option(
            "--open-data-daily-limit",
            help="Photo bytes per sliding 24 hours from the Open Data bucket.",
        ),
    ] = DEFAULT_DAILY_LIMIT,
) -> None:
    """Download photos and metadata for every species in SPECIES_CSV.

    Observations are taken in ascending id order; each photo is filtered and named by
    its own license. A live display shows each species, the overall progress and the
    hourly and daily byte budgets; a summary table follows.
    """
    try:
        request = filter_request(
            place=place,
            d1=d1,
            d2=d2,
            month=month,
            year=year,
            captive=captive,
            annotation=annotation,
            without_annotation=without_annotation,
            user=user,
            bbox=bbox,
            param=param,
        )
        url_taxa: tuple[int, ...] = ()
        entries: list[SpeciesEntry] = []
        if from_url is not None:
            request, chosen, quality, license = merge_search_url(
                ctx, from_url, request, quality, license
            )
            url_taxa = chosen.taxon_ids
            entries = [SpeciesEntry(normalise_name(name)) for name in chosen.taxon_names]
            if (url_taxa or entries) and was_given(ctx, "species_csv"):
                raise UsageError(
                    "--from-url names the taxa to download: give no species list with it"
                )
        if open_data is not None and from_url is not None:
            raise UsageError(
                "--from-url reads a search on iNaturalist's site; with --open-data give a "
                "species list and the filters the tables have (--quality, --license, --d1, "
                "--d2, --bbox)"
            )
        if not (url_taxa or entries):
            entries = read_species_csv(species_csv)
        if seed is not None and sample != "spread":
            raise UsageError("--seed chooses a spread sample: give it with --sample spread")
        sampling = Sampling(
            sample=sample.strip().lower(),
            seed=seed or 0,
            per_observer=per_observer,
            photos_per_observation=photos_per_observation,
        )
        if open_data is not None:
            open_data_filters(request)  # refuse filters the tables cannot answer, now
            if sampling.spread:
                raise UsageError(
                    "--sample spread picks observations by their ids: the Open Data tables "
                    "have none; without it a run takes the oldest (by smallest photo id)"
                )
        limit_config = limit_settings(
            state_dir=state_dir,
            requests_per_minute=requests_per_minute,
            requests_per_day=requests_per_day,
            hourly_limit=hourly_limit,
            daily_limit=daily_limit,
        )
        settings = Settings.create(
            observations=observations,
            quality=quality,
            license=license,
            size=size,
            out_dir=out,
            workers=workers,
            api_url=api_url,
            user_agent=user_agent,
        )
        limit_config.validate(api_url)
        bucket_config = limit_settings(
            state_dir=state_dir,
            requests_per_minute=requests_per_minute,
            requests_per_day=requests_per_day,
            hourly_limit=open_data_hourly_limit,
            daily_limit=open_data_daily_limit,
        )
    except UsageError as exc:
        raise _fail(exc, EXIT_USAGE) from None

    async def prepare() -> tuple[list[SpeciesEntry], Settings]:
        """Look up places, annotations and URL taxa: before anything is created."""
        async with api_client(
            api_url=settings.api_url,
            user_agent=settings.user_agent,
            limits=limit_config,
            retry=settings.retry,
        ) as client:
            filters, named = await resolve_selection(client, request, taxon_ids=url_taxa)
        query = dataclasses.replace(settings.query, filters=filters, sampling=sampling)
        return [*named, *entries], dataclasses.replace(settings, query=query)

    async def open_source(entries: list[SpeciesEntry], settings: Settings) -> OpenDataSource | None:
        if open_data is None:
            return None
        # Finding the tables may extract a bundle: minutes for the real one, off the loop.
        source = await asyncio.to_thread(
            OpenDataSource.open, open_data, url=open_data_url, limits=bucket_config
        )
        try:
            # One scan of the tables now: a broken table stops the run before anything
            # is created.
            await source.prepare(entries, settings.query, limit=settings.observations)
        except BaseException:
            source.close()
            raise
        return source

    async def ready() -> tuple[list[SpeciesEntry], Settings, OpenDataSource | None]:
        """The species and settings of the run, and its Open Data source if any."""
        if open_data is None:
            return (*await prepare(), None)
        # No API in this mode: the filters the tables can answer, checked offline.
        query = dataclasses.replace(settings.query, filters=open_data_filters(request))
        chosen = dataclasses.replace(settings, query=query)
        source = await open_source(entries, chosen)
        return entries, with_origin(chosen, source), source

    if open_data is None:
        warning = daily_request_warning(entries, limit_config.requests_per_day)
        if warning is not None and not silent:
            err_console.print(
                f"warning: {warning.replace('requests_per_day', FLAGS['requests_per_day'])}",
                markup=False,
            )

    if dry_run:

        async def dry() -> int:
            chosen, run_settings, source = await ready()
            try:
                return await _dry_run(
                    chosen, run_settings, limit_config, plain=plain, silent=silent, source=source
                )
            finally:
                if source is not None:
                    source.close()

        _run_cli(dry)

    async def main() -> int:
        chosen, run_settings, source = await ready()
        try:
            limits = resolve_limits(limit_config, run_settings.api_url)
            reporter = make_reporter(plain=plain, silent=silent, verbose=verbose)
            return await _download(
                chosen, run_settings, limits, reporter, silent=silent, source=source
            )
        finally:
            if source is not None:
                source.close()

    _run_cli(main)


# -- dry run -----------------------------------------------------------------------------------


async def _dry_run(
    entries: Sequence[SpeciesEntry],
    settings: Settings,
    limit_config: LimitSettings,
    *,
    plain: bool,
    silent: bool,
    source: Source | None = None,
) -> int:
    console = Console(highlight=False)
    live = not (plain or silent) and console.is_terminal and not console.is_dumb_terminal
    done: list[SpeciesPlan] = []

    def on_species(species: SpeciesPlan) -> None:
        done.append(species)
        if live:
            spinner.update(f"Resolving and counting… {len(done)}/{len(entries)} species")
        elif not silent:
            if species.error:
                what = species.error
                if species.suggestions:
                    what += f"; did you mean {', '.join(species.suggestions)}?"
            else:
                what = (
                    f"{count(species.available)} observations available, "
                    f"{count(species.observations)} to fetch"
                )
            console.print(f"{species.name}: {what}", markup=False)

    spinner = console.status(f"Resolving and counting… 0/{len(entries)} species")
    if live:
        spinner.start()
    try:
        plan: RunPlan = await plan_run(
            entries,
            settings=settings,
            limits=limit_config,
            on_species=on_species,
            source=source,
        )
    finally:
        if live:
            spinner.stop()
    if silent:
        for species in plan.species:
            if species.error:
                err_console.print(
                    f"[bold red]error:[/] {escape(f'{species.name}: {species.error}')}"
                )
    else:
        render_plan(console, plan)
    return EXIT_OK if plan.ok else EXIT_FAILED


# -- demo -------------------------------------------------------------------------------------


@app.command()
def demo(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where to put the demo's photos and CSV files "
            "\\[default: a new temporary folder].",
            show_default=False,
        ),
    ] = None,
    workers: Workers = DEFAULT_WORKERS,
    plain: Plain = False,
) -> None:
    """Watch a real download, offline, in a few seconds.

    Starts the built-in fake iNaturalist on 127.0.0.1 (three species, generated
    photos) and downloads 30 observations of each with the live display. Its budgets
    live in a throwaway folder: your real ones are neither read nor spent.
    """
    from .demo import DEMO_OBSERVATIONS, demo_environment

    if workers < 1:
        raise _fail(f"{FLAGS['workers']} must be at least 1, got {workers}", EXIT_USAGE)
    out_dir = out if out is not None else Path(tempfile.mkdtemp(prefix="inat-async-demo-"))

    async def main() -> int:
        async with demo_environment() as env:
            settings = env.settings(out_dir, workers=workers)
            reporter = make_reporter(plain=plain, silent=False, verbose=False)
            reporter.console.print(
                f"Demo: a fake iNaturalist at {env.api_url}; {DEMO_OBSERVATIONS} observations "
                f"of {', '.join(e.name for e in env.species)}, into {out_dir}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            code = await _download(env.species, settings, env.limits, reporter, silent=False)
        reporter.console.print(
            f"Next: look in {out_dir}, or run: inat-async status --out {out_dir}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return code

    _run_cli(main)
