"""The command line's core: the typer app, the flags, errors as one line, signals.

The commands live one module each and register on :data:`app` when
:mod:`inat_async.cli` is imported: ``run`` and ``demo`` (:mod:`.run`), ``species``
(:mod:`.species`), ``status`` (:mod:`.status`), ``export`` and ``verify``
(:mod:`.datasets`), ``open-data`` (:mod:`.opendata`). Options shared by several
commands are declared once in :mod:`.params`.

Exit codes: 0 done (photos the server no longer has are reported, not fatal);
1 some species or photos failed; 2 bad usage or input (nothing was downloaded);
130 interrupted with Ctrl-C (143 with SIGTERM): rerun the same command to resume.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from .._version import __version__
from ..errors import InatError, UsageError

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


def main() -> None:
    """Console-script entry point."""
    app()
