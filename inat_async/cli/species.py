"""``inat-async species``: a species list from a higher taxon or a place, counted."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..checklist import (
    RANK_LEVELS,
    api_client,
    list_species,
    resolve_selection,
    species_csv_text,
    write_species_csv,
)
from ..errors import UsageError
from ..limits import LimitSettings
from ..options import Query
from ..settings import DEFAULT_LICENSE, DEFAULT_QUALITY, DEFAULT_USER_AGENT, OFFICIAL_API_URL
from .app import EXIT_OK, EXIT_USAGE, _fail, _run_cli, app, err_console
from .params import (
    DEFAULT_DAILY_LIMIT,
    DEFAULT_HOURLY_LIMIT,
    AnnotationOption,
    ApiUrl,
    BboxOption,
    CaptiveOption,
    D1Option,
    D2Option,
    License,
    MonthOption,
    ParamOption,
    PlaceOption,
    Quality,
    RequestsPerDay,
    RequestsPerMinute,
    StateDir,
    UserAgent,
    UserOption,
    WithoutAnnotationOption,
    YearOption,
    filter_request,
    limit_settings,
)
from .views import count

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
