"""Options shared by several commands, declared once; what they become for the library.

Every default comes from the library's constants, so the CLI and the library cannot
drift apart (a test compares them).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import UsageError
from ..limits import OFFICIAL_MAX_PER_MINUTE, STATE_DIR_ENV, LimitSettings
from ..options import format_byte_size, parse_byte_size
from ..selection import FilterRequest, Filters, UrlSelection, parse_search_url
from ..settings import API_URL_ENV, Settings
from ..sources import Source
from ..sources.base import origin_of


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


def open_data_filters(request: FilterRequest) -> Filters:
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
FILTERS_PANEL = "Filters"
SAMPLING_PANEL = "Sampling"
PlaceOption = Annotated[
    list[str] | None,
    typer.Option(
        "--place",
        metavar="NAME_OR_ID",
        help="Observed in this place: a name (an exact name wins; an ambiguous one lists "
        "the candidates) or an id. Repeat for several places.",
        rich_help_panel=FILTERS_PANEL,
    ),
]
D1Option = Annotated[
    str | None,
    typer.Option(
        "--d1",
        metavar="DATE",
        help="Observed on or after this day, YYYY-MM-DD.",
        rich_help_panel=FILTERS_PANEL,
    ),
]
D2Option = Annotated[
    str | None,
    typer.Option(
        "--d2",
        metavar="DATE",
        help="Observed on or before this day, YYYY-MM-DD.",
        rich_help_panel=FILTERS_PANEL,
    ),
]
MonthOption = Annotated[
    str | None,
    typer.Option(
        "--month",
        metavar="MONTHS",
        help="Observed in these months, e.g. 4,5,6 or 4-6.",
        rich_help_panel=FILTERS_PANEL,
    ),
]
YearOption = Annotated[
    str | None,
    typer.Option(
        "--year",
        metavar="YEARS",
        help="Observed in these years, e.g. 2020,2021 or 2015-2020.",
        rich_help_panel=FILTERS_PANEL,
    ),
]
CaptiveOption = Annotated[
    bool | None,
    typer.Option(
        "--captive/--wild",
        help="Only captive or cultivated observations, or only wild ones.",
        show_default=False,
        rich_help_panel=FILTERS_PANEL,
    ),
]
AnnotationOption = Annotated[
    list[str] | None,
    typer.Option(
        "--annotation",
        metavar="TERM=VALUE",
        help="With this annotation, e.g. 'Life Stage=Adult' (names as on iNaturalist, any "
        "case; 'Sex' alone: any value). Repeat for other values of the same term.",
        rich_help_panel=FILTERS_PANEL,
    ),
]
WithoutAnnotationOption = Annotated[
    list[str] | None,
    typer.Option(
        "--without-annotation",
        metavar="TERM=VALUE",
        help="Without this annotation, e.g. 'Life Stage=Juvenile'.",
        rich_help_panel=FILTERS_PANEL,
    ),
]
UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        metavar="LOGIN",
        help="Observed by this user: a login or id (a comma list for several).",
        rich_help_panel=FILTERS_PANEL,
    ),
]
BboxOption = Annotated[
    str | None,
    typer.Option(
        "--bbox",
        metavar="SWLAT,SWLNG,NELAT,NELNG",
        help="Inside this box: SWLAT,SWLNG,NELAT,NELNG in degrees.",
        rich_help_panel=FILTERS_PANEL,
    ),
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        metavar="KEY=VALUE",
        help="Any other observation search parameter, KEY=VALUE, passed as given "
        "(e.g. 'project_id=1234'). Repeatable.",
        rich_help_panel=FILTERS_PANEL,
    ),
]
FromUrlOption = Annotated[
    str | None,
    typer.Option(
        "--from-url",
        metavar="URL",
        help="An iNaturalist observations search URL (website or API): its query becomes "
        "the filters, and its taxon_id or taxon_name the species list.",
        rich_help_panel=FILTERS_PANEL,
    ),
]


def filter_request(
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


def was_given(ctx: typer.Context, name: str) -> bool:
    """Whether the user typed option ``name`` (rather than leaving its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def merge_search_url(
    ctx: typer.Context, url: str, request: FilterRequest, quality: str, license: str
) -> tuple[FilterRequest, UrlSelection, str, str]:
    """Fold a search URL into the options; an option the URL also sets must agree."""
    selection = parse_search_url(url)
    request = selection.filters.combine(request, source="--from-url")
    if selection.quality is not None:
        if was_given(ctx, "quality") and quality != selection.quality:
            raise UsageError(
                f"--from-url asks for quality {selection.quality!r} and -q for {quality!r}"
            )
        quality = selection.quality
    if selection.license is not None:
        if was_given(ctx, "license") and license != selection.license:
            raise UsageError(
                f"--from-url asks for license {selection.license!r} and -l for {license!r}"
            )
        license = selection.license
    return request, selection, quality, license
