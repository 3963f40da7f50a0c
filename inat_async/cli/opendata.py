"""``inat-async open-data fetch``: download the latest Open Data bundle, with a progress bar.

Registered on the main typer app when :mod:`inat_async.cli` is imported.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ..sources.bundle import BundleProgress, fetch_bundle
from ..sources.opendata import OPEN_DATA_URL
from .app import EXIT_OK, _run_cli, app

open_data_app = typer.Typer(
    name="open-data",
    help="iNaturalist Open Data: fetch the metadata bundle that 'run --open-data' reads.",
    no_args_is_help=True,
)
app.add_typer(open_data_app)


@open_data_app.command()
def fetch(
    directory: Annotated[
        Path,
        typer.Argument(help="Folder to put inaturalist-open-data-latest.tar.gz in."),
    ] = Path("open-data"),
    open_data_url: Annotated[
        str,
        typer.Option("--open-data-url", help="The Open Data bucket to download from."),
    ] = OPEN_DATA_URL,
) -> None:
    """Download the latest Open Data bundle over HTTPS (no AWS tools needed).

    An interrupted download is continued on the next call; a complete, up-to-date file
    is not downloaded again. Then: inat-async run species.csv --open-data DIRECTORY.
    """
    console = Console(stderr=True, highlight=False)
    live = console.is_terminal
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not live,
    )
    task: list[TaskID] = []

    def show(progress: BundleProgress) -> None:
        if progress.up_to_date:
            console.print(f"{progress.path} is complete and up to date: nothing to download")
            return
        if not task:
            label = "resuming" if progress.resumed else "downloading"
            task.append(bar.add_task(label, total=progress.total, completed=progress.done))
        bar.update(task[0], completed=progress.done, total=progress.total)

    async def main() -> int:
        with bar:
            path = await fetch_bundle(directory, url=open_data_url, on_progress=show)
        sys.stdout.write(f"{path}\n")
        return EXIT_OK

    _run_cli(main)
