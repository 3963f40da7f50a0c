"""``inat-async status``: where a dataset stands, from its stores only (no network)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from ..errors import InatError, StorageError, UsageError
from ..limits import LimitSettings
from ..settings import DEFAULT_OUT_DIR
from ..status import clear_pauses, dataset_status
from .app import EXIT_FAILED, EXIT_USAGE, _fail, app
from .params import (
    DEFAULT_DAILY_LIMIT,
    DEFAULT_HOURLY_LIMIT,
    DailyLimit,
    DatasetDir,
    HourlyLimit,
    RequestsPerDay,
    RequestsPerMinute,
    StateDir,
    limit_settings,
)
from .views import render_status


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
