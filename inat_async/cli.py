"""The command line: a thin typer layer that parses, calls the library, and renders events.

Exit codes: 0 done (photos the server no longer has are reported, not fatal);
1 some species or photos failed; 2 bad usage or input (nothing was downloaded);
130 interrupted with Ctrl-C (143 with SIGTERM): rerun the same command to resume.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from ._version import __version__
from .errors import InatError, UsageError
from .limits import LimitSettings
from .options import parse_byte_size
from .pipeline import DEFAULT_USER_AGENT, Settings, download_all
from .progress import make_reporter, render_summary
from .species import read_species_csv

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

app = typer.Typer(
    name="inat-async",
    help="Bulk-download iNaturalist observation photos and metadata for a list of species, "
    "fast, resumably, and within iNaturalist's limits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

T = TypeVar("T")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"inat-async {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Bulk-download iNaturalist photos and metadata for a list of species."""


def _fail(message: str, code: int) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", markup=True)
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
        hourly_bytes=parse_byte_size(hourly_limit),
        daily_bytes=parse_byte_size(daily_limit),
        state_dir=state_dir,
    )


class Interrupted(Exception):
    """The run was stopped by a signal after cleaning up; ``code`` is the exit code."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.code = 128 + signum


def run_async(main: Callable[[], Awaitable[T]]) -> T:
    """asyncio.run, where SIGINT and SIGTERM cancel the run so that it cleans up.

    The first signal cancels the main task: workers stop, ``.part`` files are removed,
    the state store and CSV files are flushed, and :class:`Interrupted` is raised. A
    second signal leaves at once (the next run removes what is left).
    """
    received: list[int] = []

    async def guarded() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None

        def on_signal(signum: int) -> None:
            if received:
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


StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="INAT_ASYNC_STATE_DIR",
        help="Where the shared request log and byte ledger live "
        "[default: the platform's per-user state folder].",
        show_default=False,
    ),
]
OutDir = Annotated[
    Path, typer.Option("--out", help="Output folder (photos, CSV files, resume state).")
]


@app.command()
def run(
    species_csv: Annotated[
        Path,
        typer.Argument(help="CSV with a 'name' column; optional 'start_id' and 'taxon_id'."),
    ] = Path("species.csv"),
    observations: Annotated[
        int, typer.Option("-o", "--observations", help="Observations per species (first N by id).")
    ] = 200,
    quality: Annotated[
        str,
        typer.Option("-q", "--quality", help="research, needs_id, casual, a comma list, or any."),
    ] = "research",
    license: Annotated[
        str,
        typer.Option(
            "-l",
            "--license",
            help="Comma list of cc-by, cc-by-nc, cc-by-nd, cc-by-sa, cc-by-nc-nd, cc-by-nc-sa, "
            "cc0; or any. Each photo is kept on its own license.",
        ),
    ] = "any",
    size: Annotated[
        str,
        typer.Option("-s", "--size", help="small (240px), medium (500), large (1024), original."),
    ] = "medium",
    workers: Annotated[
        int, typer.Option("-w", "--workers", help="Concurrent photo downloads.")
    ] = 8,
    out: OutDir = Path("results"),
    api_url: Annotated[
        str,
        typer.Option(
            "--api-url", envvar="INAT_API_URL", help="API base, for mirrors and test servers."
        ),
    ] = "https://api.inaturalist.org/v1",
    user_agent: Annotated[
        str, typer.Option("--user-agent", help="Sent with every request.")
    ] = DEFAULT_USER_AGENT,
    state_dir: StateDir = None,
    requests_per_minute: Annotated[
        int,
        typer.Option(
            "--requests-per-minute",
            help="API pace; above 60 only for servers other than iNaturalist's.",
        ),
    ] = 60,
    requests_per_day: Annotated[
        int, typer.Option("--requests-per-day", help="API requests per sliding 24 hours.")
    ] = LimitSettings.requests_per_day,
    hourly_limit: Annotated[
        str, typer.Option("--hourly-limit", help="Media bytes per sliding hour, e.g. 4.5GB.")
    ] = "4.5GB",
    daily_limit: Annotated[
        str, typer.Option("--daily-limit", help="Media bytes per sliding day, e.g. 22GB.")
    ] = "22GB",
    plain: Annotated[
        bool, typer.Option("--plain", help="Timestamped log lines instead of the live display.")
    ] = False,
    silent: Annotated[bool, typer.Option("--silent", help="Print errors only.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="One line per photo.")] = False,
) -> None:
    """Download photos and metadata for every species in SPECIES_CSV.

    Rerun the same command to resume after an interruption: finished photos are kept,
    unfinished ones are fetched again, nothing is written twice.
    """
    try:
        entries = read_species_csv(species_csv)
        limits = limit_settings(
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
        limits.validate(api_url)
    except UsageError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None

    reporter = make_reporter(plain=plain, silent=silent, verbose=verbose)

    async def main() -> int:
        with reporter:
            result = await download_all(
                entries, settings=settings, limits=limits, on_event=reporter
            )
        if not silent:
            render_summary(reporter.console, result)
        for species in result.species:
            if species.error:
                err_console.print(f"[bold red]error:[/] {species.name}: {species.error}")
        return result.exit_code

    try:
        code = run_async(main)
    except Interrupted as stop:
        err_console.print(
            f"stopped by {stop}: finished photos are kept; "
            "rerun the same command to resume where it stopped"
        )
        raise typer.Exit(stop.code) from None
    except UsageError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    except InatError as exc:
        raise _fail(str(exc), EXIT_FAILED) from None
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point."""
    app()
