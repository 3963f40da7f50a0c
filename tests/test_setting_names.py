"""Errors name settings as the library spells them; the CLI shows its flags instead.

The library says ``workers`` and ``hourly_bytes`` (what a caller passes), the CLI says
``--workers`` and ``--hourly-limit`` (what a user types). The table of one to the other
lives in ``inat_async.cli.app.FLAGS``; these tests keep it complete and keep CLI flags
out of library messages.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import inat_async
from inat_async import (
    DEFAULT_USER_AGENT,
    OFFICIAL_API_URL,
    LimitSettings,
    Settings,
    UsageError,
)
from inat_async.cli.app import FLAGS, app, flag_message
from inat_async.errors import ApiError, StorageError
from inat_async.export import ExportOptions
from inat_async.options import parse_byte_size
from inat_async.selection import FilterRequest, Sampling
from inat_async.testing import build_dataset, run_in_thread

PACKAGE = Path(inat_async.__file__).resolve().parent
#: The settings a caller passes: the run's, the budgets', the export's.
LIBRARY_SETTINGS = (
    set(inspect.signature(Settings.create).parameters)
    | {field.name for field in dataclasses.fields(LimitSettings)}
    | set(inspect.signature(ExportOptions.create).parameters)
    # The filters and samples (#12): FilterRequest.parse's keywords, Sampling's fields.
    | set(inspect.signature(FilterRequest.parse).parameters)
    | {field.name for field in dataclasses.fields(Sampling)}
)


# -- the translation --------------------------------------------------------------------------


def test_the_settings_an_error_names_become_flags() -> None:
    error = UsageError(
        "requests_per_minute 100 is above the limit; only with another api_url",
        options=("requests_per_minute", "api_url"),
    )
    assert flag_message(error) == (
        "--requests-per-minute 100 is above the limit; only with another --api-url"
    )


def test_only_whole_declared_names_are_replaced() -> None:
    error = StorageError(
        "no dataset in /data/out_dir/x or out_dir.old (workers); give the out_dir folder",
        options=("out_dir",),
    )
    # The path and the file name keep their spelling; ``workers`` was not declared.
    assert flag_message(error) == (
        "no dataset in /data/out_dir/x or out_dir.old (workers); give the --out folder"
    )


def test_only_the_first_occurrence_is_the_setting() -> None:
    error = UsageError("user takes a login or a user id, got 'a b'", options=("user_agent",))
    assert flag_message(error) == "user takes a login or a user id, got 'a b'"
    error = UsageError("size must name a size, got 'huge'", options=("size",))
    assert flag_message(error) == "--size must name a size, got 'huge'"


def test_settings_without_a_flag_keep_their_name() -> None:
    error = UsageError("burst (9) cannot exceed requests_per_minute (5)", options=("burst",))
    assert flag_message(error) == "burst (9) cannot exceed requests_per_minute (5)"


def test_the_error_keeps_its_context_and_the_options_are_not_part_of_it() -> None:
    error = ApiError("the API refused", status=503, options=("api_url",), context={"url": "u"})
    assert error.options == ("api_url",)
    assert str(error) == "the API refused (url=u, status=503)"


def test_a_named_byte_size_says_which_one() -> None:
    with pytest.raises(UsageError, match=r"^daily_bytes: cannot read 'lots' as a size") as caught:
        parse_byte_size("lots", option="daily_bytes")
    assert caught.value.options == ("daily_bytes",)
    with pytest.raises(UsageError, match=r"^cannot read 'lots'") as anonymous:
        parse_byte_size("lots")
    assert anonymous.value.options == ()


# -- the table --------------------------------------------------------------------------------


def test_every_flag_in_the_table_is_a_real_option_of_a_real_setting() -> None:
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert {"run", "status"} <= set(commands)
    flags = {
        flag
        for command in commands.values()
        for param in command.params
        for flag in param.opts
        if flag.startswith("--")
    }
    assert set(FLAGS.values()) <= flags
    assert set(FLAGS) <= LIBRARY_SETTINGS | {"state_dir"}


def _library_defaults() -> dict[str, object]:
    defaults: dict[str, object] = {
        name: param.default
        for create in (ExportOptions.create, Settings.create)
        for name, param in inspect.signature(create).parameters.items()
    }
    limits = LimitSettings()
    defaults.update({f.name: getattr(limits, f.name) for f in dataclasses.fields(limits)})
    sampling = Sampling()
    defaults.update({f.name: getattr(sampling, f.name) for f in dataclasses.fields(sampling)})
    defaults.update(
        (name, param.default)
        for name, param in inspect.signature(FilterRequest.parse).parameters.items()
    )
    # None in Settings.create means these: what the CLI shows as its default.
    defaults.update(api_url=OFFICIAL_API_URL, user_agent=DEFAULT_USER_AGENT)
    return defaults


def test_cli_defaults_are_the_library_defaults() -> None:
    """The CLI takes its defaults from the library's constants: they cannot drift apart."""
    library = _library_defaults()
    setting_of = {flag: name for name, flag in FLAGS.items()}
    checked = 0
    for command in typer.main.get_command(app).commands.values():  # type: ignore[attr-defined]
        for param in command.params:
            name = next((setting_of[o] for o in param.opts if o in setting_of), None)
            if name is None or param.default is None:
                continue  # not a library setting, or a default only the CLI has (--state-dir)
            wanted, shown = library[name], param.default
            if name in {"hourly_bytes", "daily_bytes", "shard_size"}:
                assert isinstance(wanted, int | str) and isinstance(shown, str)
                assert parse_byte_size(shown) == parse_byte_size(wanted), (command.name, name)
            elif name == "out_dir":
                assert Path(shown) == Path(str(wanted)), command.name
            else:
                assert shown == wanted, (command.name, name)
            checked += 1
    assert checked >= 20


# -- library messages, read from the source ---------------------------------------------------


def _error_messages() -> list[tuple[str, str, set[str]]]:
    """(where, message text, declared options) of every ``raise SomethingError(...)``."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if {"cli", "testing"} & set(path.relative_to(PACKAGE).parts[:-1]):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            call = node.exc
            name = call.func.id if isinstance(call.func, ast.Name) else ""
            if not name.endswith("Error") or not call.args:
                continue
            text = "".join(
                part.value
                for part in ast.walk(call.args[0])
                if isinstance(part, ast.Constant) and isinstance(part.value, str)
            )
            declared: set[str] = set()
            for keyword in call.keywords:
                if keyword.arg == "options" and isinstance(keyword.value, ast.Tuple):
                    declared |= {
                        str(e.value) for e in keyword.value.elts if isinstance(e, ast.Constant)
                    }
                elif keyword.arg == "options":
                    declared.add("*")  # computed: trust it
            found.append((f"{path.relative_to(PACKAGE.parent)}:{node.lineno}", text, declared))
    return found


def test_the_source_scan_finds_the_messages() -> None:
    messages = _error_messages()
    assert len(messages) > 30
    assert any("above iNaturalist's limit" in text for _, text, _ in messages)


#: Modules whose messages still spell CLI flags. Remove an entry once clean.
FLAG_SPELLING_LEFT: set[str] = set()


def test_library_messages_spell_no_cli_flag() -> None:
    spelled = [(where, text) for where, text, _ in _error_messages() if re.search(r"--[a-z]", text)]
    offenders = [(w, t) for w, t in spelled if w.split(":")[0] not in FLAG_SPELLING_LEFT]
    # Name the setting as a caller passes it, declare it (options=...), and map it to its
    # flag in inat_async/cli/app.py FLAGS.
    assert offenders == []
    # An exception that is no longer needed goes, so the list cannot hide new ones.
    assert {w.split(":")[0] for w, _ in spelled} == FLAG_SPELLING_LEFT


def test_library_messages_declare_the_settings_they_name() -> None:
    # Names with an underscore cannot be ordinary words: when one appears, it is the setting.
    identifiers = {name for name in LIBRARY_SETTINGS if "_" in name}
    offenders = []
    for where, text, declared in _error_messages():
        named = {name for name in identifiers if re.search(rf"(?<![\w.]){name}(?!\w)", text)}
        if named and not (named <= declared or "*" in declared):
            offenders.append((where, sorted(named - declared)))
    assert offenders == []


# -- what a CLI user sees ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["-w", "0"], "--workers must be at least 1, got 0"),
        (["-o", "0"], "--observations must be at least 1, got 0"),
        (["--requests-per-day", "0"], "--requests-per-day must be a positive number, got 0"),
        (["--hourly-limit", "lots"], "--hourly-limit: cannot read 'lots' as a size;"),
        (["--daily-limit", "0"], "--daily-limit: byte size must be positive, got '0'"),
        (["--api-url", "ftp://x"], "--api-url must start with http:// or https://, got 'ftp://x'"),
        (
            ["--requests-per-minute", "100"],
            "--requests-per-minute 100 is above iNaturalist's limit of 60; higher values are "
            "only allowed with an --api-url other than the official API",
        ),
    ],
)
def test_cli_errors_name_the_flags(tmp_path: Path, args: list[str], line: str) -> None:
    species = tmp_path / "species.csv"
    species.write_text("name\nApis mellifera\n", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["run", str(species), *args, "--out", str(out), "--state-dir", str(tmp_path / "s")]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {line}")
    assert result.stderr.count("\n") == 1
    assert not out.exists()


def test_status_names_the_out_flag(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["status", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.rstrip().endswith("give the --out folder of a run")


def test_an_error_line_prints_what_the_user_typed_as_text(tmp_path: Path) -> None:
    """Brackets in a value are not rich markup: no traceback, nothing swallowed."""
    species = tmp_path / "species.csv"
    species.write_text("name\nApis mellifera\n", encoding="utf-8")
    for value in ("[/]", "[bold]x"):
        result = CliRunner().invoke(
            app, ["run", str(species), "-q", value, "--state-dir", str(tmp_path / "s")]
        )
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(f"error: unknown quality grade '{value}';")
        assert result.stderr.count("\n") == 1


def test_a_species_error_prints_the_name_as_text(tmp_path: Path) -> None:
    species = tmp_path / "species.csv"
    species.write_text("name\n[/]Nopea nonexistens\n", encoding="utf-8")
    dataset = build_dataset({"Apis mellifera": 3}, seed=1)
    with run_in_thread(dataset) as server:
        result = CliRunner().invoke(
            app,
            [
                "run", str(species), "--out", str(tmp_path / "out"), "--silent",
                "--api-url", server.api_url, "--requests-per-minute", "100000",
                "--state-dir", str(tmp_path / "s"),
            ],
        )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "error: [/]Nopea nonexistens: no iNaturalist taxon" in result.stderr
