"""The command line: a thin typer layer that parses, calls the library, and renders.

Commands: ``run`` (download, or ``--dry-run`` to estimate), ``species`` (a species
list from a higher taxon or a place), ``status`` (where a dataset stands, offline) and
``demo`` (a real run against the built-in fake iNaturalist, offline).

Exit codes: 0 done (photos the server no longer has are reported, not fatal);
1 some species or photos failed; 2 bad usage or input (nothing was downloaded);
130 interrupted with Ctrl-C (143 with SIGTERM): rerun the same command to resume.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from .._version import __version__
from ..checklist import (
    RANK_LEVELS,
    api_client,
    list_species,
    resolve_selection,
    species_csv_text,
    write_species_csv,
)
from ..errors import InatError, StorageError, UsageError
from ..limits import OFFICIAL_MAX_PER_MINUTE, STATE_DIR_ENV, Limits, LimitSettings
from ..options import Query, format_byte_size, parse_byte_size
from ..pipeline import download_all
from ..plan import RunPlan, SpeciesPlan, plan_run
from ..selection import SAMPLES, FilterRequest, Filters, Sampling, UrlSelection, parse_search_url
from ..settings import (
    API_URL_ENV,
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
from ..sources.base import origin_of, photo_limits_of
from ..sources.opendata import OPEN_DATA_URL, OpenDataSource
from ..species import SpeciesEntry, daily_request_warning, normalise_name, read_species_csv
from ..status import clear_pauses, dataset_status
from .progress import LiveReporter, PlainReporter, make_reporter, watch_limits
from .views import count, render_plan, render_status, render_summary

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

app = typer.Typer(
    name="inat-async",
    help="Bulk-download iNaturalist observation photos and metadata for a list of species: "
    "concurrent, resumable, and within iNaturalist's published limits.\n\n"
    "Try it offline first: inat-async demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

T = TypeVar("T")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"inat-async {__version__}")
        raise typer.Exit()


@app.callback(
    epilog="Exit codes: 0 done, 1 some species or photos failed, 2 bad usage or input, "
    "130/143 stopped by Ctrl-C/SIGTERM (rerun the same command to resume)."
)
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Bulk-download iNaturalist photos and metadata for a list of species.

    [bold]run[/] downloads (or estimates, with --dry-run), [bold]status[/] shows where
    a download stands without the network, [bold]demo[/] shows the tool at work offline.
    """


#: The flag that sets each library setting. Library errors name settings as the library
#: spells them (``InatError.options``); the CLI shows the flags a user types instead.
FLAGS: dict[str, str] = {
    "observations": "--observations",
    "quality": "--quality",
    "license": "--license",
    "size": "--size",
    "out_dir": "--out",
    "workers": "--workers",
    "api_url": "--api-url",
    "user_agent": "--user-agent",
    "state_dir": "--state-dir",
    "requests_per_minute": "--requests-per-minute",
    "requests_per_day": "--requests-per-day",
    "hourly_bytes": "--hourly-limit",
    "daily_bytes": "--daily-limit",
    # selection
    "place": "--place",
    "d1": "--d1",
    "d2": "--d2",
    "annotation": "--annotation",
    "without_annotation": "--without-annotation",
    "user": "--user",
    "bbox": "--bbox",
    "param": "--param",
    "sample": "--sample",
    "seed": "--seed",
    "per_observer": "--per-observer",
    "photos_per_observation": "--photos-per-observation",
    # export
    "group_by": "--group-by",
    "link": "--link",
    "shard_size": "--shard-size",
}


def flag_message(error: InatError) -> str:
    """The error's one line, with the CLI's flags in place of the settings it names.

    Only the first whole-word occurrence of each: a message names its setting first
    ("user takes a login or a user id"); later ones are ordinary words. Never inside a
    path or a longer name.
    """
    message = str(error)
    for name in error.options:
        flag = FLAGS.get(name)
        if flag is not None:
            pattern = rf"(?<![\w./\\-]){re.escape(name)}(?![\w/\\-]|\.\w)"
            message = re.sub(pattern, flag, message, count=1)
    return message


def _fail(error: InatError | str, code: int) -> typer.Exit:
    message = flag_message(error) if isinstance(error, InatError) else error
    # The message carries what the user typed: printed as text, never read as markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    return typer.Exit(code)


def limit_settings(
    *,
    state_dir: Path | None,
    requests_per_minute: int,
    requests_per_day: int,
    hourly_limit: str,
    daily_limit: str,
) -> LimitSettings:
    return LimitSettings(
        requests_per_minute=requests_per_minute,
        requests_per_day=requests_per_day,
        hourly_bytes=parse_byte_size(hourly_limit, option="hourly_bytes"),
        daily_bytes=parse_byte_size(daily_limit, option="daily_bytes"),
        state_dir=state_dir,
    )


class Interrupted(Exception):
    """The run was stopped by a signal after cleaning up; ``code`` is the exit code."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.code = 128 + signum


def _restore_terminal() -> None:
    """The live display hides the cursor; a hard exit must not leave it hidden."""
    if sys.stdout.isatty():
        os.write(sys.stdout.fileno(), b"\x1b[?25h\n")


def run_async(main: Callable[[], Awaitable[T]]) -> T:
    """asyncio.run, where SIGINT and SIGTERM cancel the run so that it cleans up.

    The first signal cancels the main task: workers stop, ``.part`` files are removed,
    the resume store and CSV files are flushed, and :class:`Interrupted` is raised. A
    second signal leaves at once (the next run removes what is left).
    """
    received: list[int] = []

    async def guarded() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None

        def on_signal(signum: int) -> None:
            if received:
                _restore_terminal()
                os._exit(128 + received[0])
            received.append(signum)
            task.cancel()

        signals = (signal.SIGINT, signal.SIGTERM) if sys.platform != "win32" else ()
        for signum in signals:
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            return await main()
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)

    try:
        return asyncio.run(guarded())
    except (asyncio.CancelledError, KeyboardInterrupt):
        if received:
            raise Interrupted(received[0]) from None
        raise


def _run_cli(main: Callable[[], Awaitable[int]]) -> None:
    """Run ``main`` and leave with its exit code, or one clear line for an error."""
    try:
        code = run_async(main)
    except Interrupted as stop:
        err_console.print(
            f"stopped by {stop}: finished photos are kept; "
            "rerun the same command to resume where it stopped"
        )
        raise typer.Exit(stop.code) from None
    except UsageError as exc:
        raise _fail(exc, EXIT_USAGE) from None
    except InatError as exc:
        raise _fail(exc, EXIT_FAILED) from None
    raise typer.Exit(code)


def _open_data_filters(request: FilterRequest) -> Filters:
    """The search filters of an Open Data run: observed on (``d1``/``d2``) and a box.

    The tables have no places, annotations, captive flag or observation times, and
    users are numbers there: those filters are refused, one line naming the option.
    """
    refused = [
        option
        for option, given in (
            ("--place", request.places),
            ("--month", request.months),
            ("--year", request.years),
            ("--captive/--wild", request.captive is not None),
            ("--annotation", request.annotations),
            ("--without-annotation", request.without_annotations),
            ("--user", request.users),
            ("--param", request.extra),
        )
        if given
    ]
    if refused:
        raise UsageError(
            f"{', '.join(refused)} cannot be used with --open-data: the tables only have "
            "quality grade, photo license, observed-on date (--d1/--d2) and coordinates (--bbox)"
        )
    return Filters(d1=request.d1, d2=request.d2, bbox=request.bbox)


def with_origin(settings: Settings, source: Source | None) -> Settings:
    """The settings of a dataset made from ``source`` (its origin is part of its identity)."""
    if not origin_of(source):
        return settings
    return dataclasses.replace(
        settings, query=dataclasses.replace(settings.query, origin=origin_of(source))
    )


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


# -- shared options --------------------------------------------------------------------------
# Each option used by more than one command is declared once here; every default comes
# from the library's constants, so the CLI and the library cannot drift apart.

#: The byte budgets as the user writes them (the library counts bytes).
DEFAULT_HOURLY_LIMIT = format_byte_size(LimitSettings.hourly_bytes)
DEFAULT_DAILY_LIMIT = format_byte_size(LimitSettings.daily_bytes)


def out_option(help: str) -> Any:
    """``--out``: the dataset folder; each command says what it does with it."""
    return typer.Option("--out", help=help)


StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar=STATE_DIR_ENV,
        help="Where the budgets shared by all your runs (request log, byte ledger) are kept "
        "\\[default: the platform's per-user state folder].",
        show_default=False,
    ),
]
OutDir = Annotated[
    Path,
    out_option(
        "Output folder: one <Species>_images folder and two CSV files per species, "
        "and the resume state in .inat-async/."
    ),
]
DatasetDir = Annotated[Path, out_option("The output folder of the run to report on.")]
Workers = Annotated[
    int, typer.Option("-w", "--workers", help="Photos downloaded at the same time.")
]
RequestsPerMinute = Annotated[
    int,
    typer.Option(
        "--requests-per-minute",
        help=f"API requests per sliding minute; above {OFFICIAL_MAX_PER_MINUTE} only with an "
        "--api-url other than iNaturalist's.",
    ),
]
RequestsPerDay = Annotated[
    int, typer.Option("--requests-per-day", help="API requests per sliding 24 hours.")
]
HourlyLimit = Annotated[
    str,
    typer.Option(
        "--hourly-limit",
        help=f"Photo bytes per sliding hour, e.g. {DEFAULT_HOURLY_LIMIT} (GB = 10^9 bytes; "
        "iNaturalist may block above 5GB).",
    ),
]
DailyLimit = Annotated[
    str,
    typer.Option(
        "--daily-limit",
        help=f"Photo bytes per sliding 24 hours, e.g. {DEFAULT_DAILY_LIMIT} (iNaturalist may "
        "block above 24GB).",
    ),
]
Plain = Annotated[
    bool,
    typer.Option(
        "--plain",
        help="Timestamped log lines instead of the live display (the default when the "
        "output is not a terminal).",
    ),
]
Silent = Annotated[bool, typer.Option("--silent", help="Print errors only.")]
Verbose = Annotated[
    bool, typer.Option("-v", "--verbose", help="Also one line per photo (with --plain).")
]
Quality = Annotated[
    str,
    typer.Option(
        "-q",
        "--quality",
        help="Quality grade: research, needs_id, casual, a comma list, or any.",
    ),
]
License = Annotated[
    str,
    typer.Option(
        "-l",
        "--license",
        help="Comma list of cc-by, cc-by-nc, cc-by-nd, cc-by-sa, cc-by-nc-nd, cc-by-nc-sa, "
        "cc0; or any. Each photo is kept on its own license.",
    ),
]
ApiUrl = Annotated[
    str,
    typer.Option("--api-url", envvar=API_URL_ENV, help="API base, for mirrors and test servers."),
]
UserAgent = Annotated[str, typer.Option("--user-agent", help="Sent with every request.")]

# -- filters (run, its dry run, and species) ---------------------------------------------------
_FILTERS = "Filters"
_SAMPLING = "Sampling"
PlaceOption = Annotated[
    list[str] | None,
    typer.Option(
        "--place",
        metavar="NAME_OR_ID",
        help="Observed in this place: a name (an exact name wins; an ambiguous one lists "
        "the candidates) or an id. Repeat for several places.",
        rich_help_panel=_FILTERS,
    ),
]
D1Option = Annotated[
    str | None,
    typer.Option(
        "--d1",
        metavar="DATE",
        help="Observed on or after this day, YYYY-MM-DD.",
        rich_help_panel=_FILTERS,
    ),
]
D2Option = Annotated[
    str | None,
    typer.Option(
        "--d2",
        metavar="DATE",
        help="Observed on or before this day, YYYY-MM-DD.",
        rich_help_panel=_FILTERS,
    ),
]
MonthOption = Annotated[
    str | None,
    typer.Option(
        "--month",
        metavar="MONTHS",
        help="Observed in these months, e.g. 4,5,6 or 4-6.",
        rich_help_panel=_FILTERS,
    ),
]
YearOption = Annotated[
    str | None,
    typer.Option(
        "--year",
        metavar="YEARS",
        help="Observed in these years, e.g. 2020,2021 or 2015-2020.",
        rich_help_panel=_FILTERS,
    ),
]
CaptiveOption = Annotated[
    bool | None,
    typer.Option(
        "--captive/--wild",
        help="Only captive or cultivated observations, or only wild ones.",
        show_default=False,
        rich_help_panel=_FILTERS,
    ),
]
AnnotationOption = Annotated[
    list[str] | None,
    typer.Option(
        "--annotation",
        metavar="TERM=VALUE",
        help="With this annotation, e.g. 'Life Stage=Adult' (names as on iNaturalist, any "
        "case; 'Sex' alone: any value). Repeat for other values of the same term.",
        rich_help_panel=_FILTERS,
    ),
]
WithoutAnnotationOption = Annotated[
    list[str] | None,
    typer.Option(
        "--without-annotation",
        metavar="TERM=VALUE",
        help="Without this annotation, e.g. 'Life Stage=Juvenile'.",
        rich_help_panel=_FILTERS,
    ),
]
UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        metavar="LOGIN",
        help="Observed by this user: a login or id (a comma list for several).",
        rich_help_panel=_FILTERS,
    ),
]
BboxOption = Annotated[
    str | None,
    typer.Option(
        "--bbox",
        metavar="SWLAT,SWLNG,NELAT,NELNG",
        help="Inside this box: SWLAT,SWLNG,NELAT,NELNG in degrees.",
        rich_help_panel=_FILTERS,
    ),
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        metavar="KEY=VALUE",
        help="Any other observation search parameter, KEY=VALUE, passed as given "
        "(e.g. 'project_id=1234'). Repeatable.",
        rich_help_panel=_FILTERS,
    ),
]
FromUrlOption = Annotated[
    str | None,
    typer.Option(
        "--from-url",
        metavar="URL",
        help="An iNaturalist observations search URL (website or API): its query becomes "
        "the filters, and its taxon_id or taxon_name the species list.",
        rich_help_panel=_FILTERS,
    ),
]


def _filter_request(
    *,
    place: list[str] | None,
    d1: str | None,
    d2: str | None,
    month: str | None,
    year: str | None,
    captive: bool | None,
    annotation: list[str] | None,
    without_annotation: list[str] | None,
    user: str | None,
    bbox: str | None,
    param: list[str] | None,
) -> FilterRequest:
    return FilterRequest.parse(
        place=place or (),
        d1=d1,
        d2=d2,
        month=month,
        year=year,
        captive=captive,
        annotation=annotation or (),
        without_annotation=without_annotation or (),
        user=user,
        bbox=bbox,
        param=param or (),
    )


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the user typed option ``name`` (rather than leaving its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _from_url(
    ctx: typer.Context, url: str, request: FilterRequest, quality: str, license: str
) -> tuple[FilterRequest, UrlSelection, str, str]:
    """Fold a search URL into the options; an option the URL also sets must agree."""
    selection = parse_search_url(url)
    request = selection.filters.combine(request, source="--from-url")
    if selection.quality is not None:
        if _given(ctx, "quality") and quality != selection.quality:
            raise UsageError(
                f"--from-url asks for quality {selection.quality!r} and -q for {quality!r}"
            )
        quality = selection.quality
    if selection.license is not None:
        if _given(ctx, "license") and license != selection.license:
            raise UsageError(
                f"--from-url asks for license {selection.license!r} and -l for {license!r}"
            )
        license = selection.license
    return request, selection, quality, license


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
            rich_help_panel=_SAMPLING,
        ),
    ] = SAMPLES[0],
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="The seed of --sample spread: the same seed picks the same observations "
            "\\[default: 0].",
            show_default=False,
            rich_help_panel=_SAMPLING,
        ),
    ] = None,
    per_observer: Annotated[
        int | None,
        typer.Option(
            "--per-observer",
            metavar="K",
            help="At most K observations of one observer per species.",
            rich_help_panel=_SAMPLING,
        ),
    ] = None,
    photos_per_observation: Annotated[
        int | None,
        typer.Option(
            "--photos-per-observation",
            metavar="M",
            help="At most the first M photos of each observation.",
            rich_help_panel=_SAMPLING,
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
        request = _filter_request(
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
            request, chosen, quality, license = _from_url(ctx, from_url, request, quality, license)
            url_taxa = chosen.taxon_ids
            entries = [SpeciesEntry(normalise_name(name)) for name in chosen.taxon_names]
            if (url_taxa or entries) and _given(ctx, "species_csv"):
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
            _open_data_filters(request)  # refuse filters the tables cannot answer, now
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
        query = dataclasses.replace(settings.query, filters=_open_data_filters(request))
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


# -- species ----------------------------------------------------------------------------------

SPECIES_EPILOG = """\
[bold]Examples[/]

  inat-async species Apidae --place California --min-observations 50 --output bees.csv
  inat-async run bees.csv --annotation "Life Stage=Adult" --wild -o 300
  inat-async species --place 6744 --rank genus --limit 20   [dim]# top genera seen there[/]

The list counts observations with photos, of the quality (-q) and licenses (-l) asked for, \
that match the filters: give run the same ones.
"""


@app.command(epilog=SPECIES_EPILOG)
def species(
    taxon: Annotated[
        str | None,
        typer.Argument(
            metavar="[TAXON]",
            help="A higher taxon (a name or an id) whose species to list; optional with "
            "--place or --bbox (every species seen there).",
            show_default=False,
        ),
    ] = None,
    rank: Annotated[
        str,
        typer.Option(
            "--rank",
            metavar="RANK",
            help="The rank to list; finer taxa (subspecies, varieties) are counted in it.",
        ),
    ] = "species",
    min_observations: Annotated[
        int,
        typer.Option("--min-observations", help="Leave out taxa with fewer observations."),
    ] = 1,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="At most this many taxa, the largest first.", min=1),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            metavar="FILE",
            help="Write the list here (name,taxon_id,observations) \\[default: print it].",
            show_default=False,
        ),
    ] = None,
    quality: Quality = DEFAULT_QUALITY,
    license: License = DEFAULT_LICENSE,
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
    api_url: ApiUrl = OFFICIAL_API_URL,
    user_agent: UserAgent = DEFAULT_USER_AGENT,
    state_dir: StateDir = None,
    requests_per_minute: RequestsPerMinute = LimitSettings.requests_per_minute,
    requests_per_day: RequestsPerDay = LimitSettings.requests_per_day,
) -> None:
    """List the species (or another rank) of TAXON that have matching observations.

    Counts come from iNaturalist's species counts under the shared request pace; the
    list, largest first, is a species.csv that run reads as it is.
    """
    try:
        request = _filter_request(
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
        if taxon is None and not (request.places or request.bbox):
            raise UsageError("name a taxon, or give --place or --bbox to list what lives there")
        if rank not in RANK_LEVELS:
            raise UsageError(f"unknown rank {rank!r}; use one of {', '.join(RANK_LEVELS)}")
        if min_observations < 1:
            raise UsageError(f"--min-observations must be at least 1, got {min_observations}")
        base = Query.parse(quality=quality, license=license)
        limit_config = limit_settings(
            state_dir=state_dir,
            requests_per_minute=requests_per_minute,
            requests_per_day=requests_per_day,
            hourly_limit=DEFAULT_HOURLY_LIMIT,
            daily_limit=DEFAULT_DAILY_LIMIT,
        )
        limit_config.validate(api_url)
        if output is not None and output.is_dir():
            raise UsageError(f"--output {output} is a folder; name a file")
    except UsageError as exc:
        raise _fail(exc, EXIT_USAGE) from None

    async def main() -> int:
        async with api_client(
            api_url=api_url, user_agent=user_agent, limits=limit_config
        ) as client:
            filters, _ = await resolve_selection(client, request)
            rows = await list_species(
                client,
                taxon=taxon,
                query=dataclasses.replace(base, filters=filters),
                rank=rank,
                min_observations=min_observations,
                limit=limit,
            )
        total = sum(row.observations for row in rows)
        if output is None:
            sys.stdout.write(species_csv_text(rows))
            sys.stdout.flush()
        else:
            write_species_csv(rows, output)
            err_console.print(
                f"{count(len(rows))} taxa at rank {rank}, {count(total)} observations: {output}",
                markup=False,
            )
        if not rows:
            err_console.print("no taxon matched: the list is empty", markup=False)
        return EXIT_OK

    _run_cli(main)


# -- status -----------------------------------------------------------------------------------


@app.command()
def status(
    out: DatasetDir = DEFAULT_OUT_DIR,
    state_dir: StateDir = None,
    requests_per_minute: RequestsPerMinute = LimitSettings.requests_per_minute,
    requests_per_day: RequestsPerDay = LimitSettings.requests_per_day,
    hourly_limit: HourlyLimit = DEFAULT_HOURLY_LIMIT,
    daily_limit: DailyLimit = DEFAULT_DAILY_LIMIT,
    open_data_hourly_limit: Annotated[
        str,
        typer.Option(
            "--open-data-hourly-limit",
            help="The Open Data bucket's hourly photo budget to show an Open Data dataset "
            "against (as given to run).",
        ),
    ] = DEFAULT_HOURLY_LIMIT,
    open_data_daily_limit: Annotated[
        str,
        typer.Option(
            "--open-data-daily-limit",
            help="The Open Data bucket's daily photo budget (as given to run).",
        ),
    ] = DEFAULT_DAILY_LIMIT,
    clear_pause: Annotated[
        bool,
        typer.Option(
            "--clear-pause",
            help="End the pauses that an API's HTTP 429 imposed on all your runs (the only "
            "thing status ever changes).",
        ),
    ] = False,
) -> None:
    """Show where the download in --out stands, without the network.

    Per species: observations recorded, photos done, pending, failed and missing, and
    bytes; then the budgets spent by all your runs in the last minute, hour and day,
    and when they free up, and any API's HTTP 429 pause; for an Open Data dataset,
    also the Open Data bucket's own photo budgets. Reads the resume stores only;
    creates and changes nothing (but for --clear-pause).
    """
    try:
        limit_config = limit_settings(
            state_dir=state_dir,
            requests_per_minute=requests_per_minute,
            requests_per_day=requests_per_day,
            hourly_limit=hourly_limit,
            daily_limit=daily_limit,
        )
        limit_config.validate()
        bucket_config = limit_settings(
            state_dir=state_dir,
            requests_per_minute=requests_per_minute,
            requests_per_day=requests_per_day,
            hourly_limit=open_data_hourly_limit,
            daily_limit=open_data_daily_limit,
        )
        report = dataset_status(out, limit_config, bucket_config)
        cleared = None
        if clear_pause:  # after the folder was found to hold a dataset
            cleared = clear_pauses(limit_config)
            report = dataset_status(out, limit_config, bucket_config)
    except (UsageError, StorageError) as exc:
        raise _fail(exc, EXIT_USAGE) from None
    except InatError as exc:
        raise _fail(exc, EXIT_FAILED) from None
    console = Console(highlight=False)
    if cleared is not None:
        console.print(f"cleared the HTTP 429 pauses of {cleared} API host(s)")
    render_status(console, report)


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


def main() -> None:
    """Console-script entry point."""
    app()
