"""The keyword options of download_species and download_all: typed, checked, forwarded.

A typo or a wrong type is a mypy error in typed code, and a UsageError naming the option
at run time for callers that build keywords dynamically; ``settings`` and the options are
two ways to say the same thing, never both.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import FAST_RETRY

from inat_async import Settings, UsageError, download_all, download_species
from inat_async.limits import LimitSettings
from inat_async.settings import SETTINGS_OPTIONS
from inat_async.testing import FakeInatServer

ROOT = Path(__file__).resolve().parents[1]
RUN_FUNCTIONS = [download_species, download_all]
#: The options every run function takes one by one (newer, specialised ones may be
#: reached through ``settings=Settings.create(...)`` only).
CORE_OPTIONS = {
    "observations",
    "quality",
    "license",
    "size",
    "out_dir",
    "workers",
    "api_url",
    "user_agent",
    "retry",
}


def first_argument(function: Callable[..., object]) -> object:
    return "Apis mellifera" if function is download_species else ["Apis mellifera"]


def test_mypy_catches_a_misspelled_or_mistyped_option(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    program = tmp_path / "caller.py"
    program.write_text(
        textwrap.dedent(
            """\
            import inat_async


            async def main(settings: inat_async.Settings) -> None:
                await inat_async.download_species("Apis mellifera", worker=3)
                await inat_async.download_all(["Apis mellifera"], observations="50")
                await inat_async.download_all(["Apis mellifera"], workers=3, size="large")
                await inat_async.download_species("Apis mellifera", settings=settings)
            """
        ),
        encoding="utf-8",
    )
    out, err, status = api.run(
        ["--strict", "--cache-dir", str(ROOT / ".mypy_cache"), "--no-error-summary", str(program)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1, out + err
    assert len(errors) == 2, out
    assert 'caller.py:5: error: Unexpected keyword argument "worker"' in errors[0]
    assert 'did you mean "workers"' in errors[0]
    assert 'caller.py:6: error: Argument "observations"' in errors[1]
    assert 'incompatible type "str"; expected "int"' in errors[1]


@pytest.mark.parametrize("function", RUN_FUNCTIONS, ids=lambda f: f.__name__)
def test_the_options_are_those_of_settings_create(function: Callable[..., object]) -> None:
    """Same names, types and defaults as Settings.create: one contract, three doors."""
    create = inspect.signature(Settings.create).parameters
    params = inspect.signature(function).parameters
    options = {name for name in params if name in SETTINGS_OPTIONS}
    assert options >= CORE_OPTIONS
    for name in options:
        param = params[name]
        assert param.kind is inspect.Parameter.KEYWORD_ONLY, name
        assert param.annotation == create[name].annotation, name
        assert param.default == create[name].default, name
    assert "settings" in params
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


@pytest.mark.parametrize("function", RUN_FUNCTIONS, ids=lambda f: f.__name__)
async def test_every_option_reaches_settings_create_unchanged(
    function: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Built(Exception):
        pass

    received: dict[str, object] = {}

    def create(**options: object) -> Settings:
        received.update(options)
        raise Built

    monkeypatch.setattr(Settings, "create", create)
    params = inspect.signature(function).parameters
    # A distinct marker per option, so a swapped or dropped one shows.
    given = {name: object() for name in params if name in SETTINGS_OPTIONS}
    with pytest.raises(Built):
        await function(first_argument(function), **given)
    assert received == given


@pytest.mark.parametrize("function", RUN_FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"worker": 3}, r"no option 'worker'; did you mean 'workers'\?$"),
        ({"observatons": 50, "workers": 2}, r"no option 'observatons'; did you mean 'obs"),
        ({"colour": "red"}, r"\(\) has no option 'colour'$"),
        ({"observations": "50"}, r"observations must be a whole number, got '50'"),
        ({"workers": True}, r"workers must be a whole number, got True"),
    ],
)
async def test_a_bad_keyword_at_run_time_is_a_usage_error_naming_it(
    function: Callable[..., Any], options: dict[str, Any], message: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(UsageError, match=message) as caught:
        await function(first_argument(function), out_dir=out, **options)
    assert str(caught.value).startswith(function.__name__) or "must be" in str(caught.value)
    assert not out.exists()


@pytest.mark.parametrize("function", RUN_FUNCTIONS, ids=lambda f: f.__name__)
async def test_settings_and_options_together_are_a_usage_error(
    function: Callable[..., Any], tmp_path: Path
) -> None:
    settings = Settings.create(out_dir=tmp_path / "out")
    # Even an option equal to its default: which one was meant cannot be told.
    with pytest.raises(UsageError, match=r"settings or its options, not both: workers, size$"):
        await function(first_argument(function), settings=settings, workers=8, size="large")
    assert not (tmp_path / "out").exists()


async def test_download_species_takes_a_settings_object(
    server: FakeInatServer, tmp_path: Path, fast_limits: LimitSettings
) -> None:
    out = tmp_path / "out"
    settings = Settings.create(
        observations=3, size="small", out_dir=out, api_url=server.api_url, retry=FAST_RETRY
    )
    result = await download_species("Apis mellifera", settings=settings, limits=fast_limits)
    assert result.ok and result.observations == 3 and result.photos_downloaded > 0
    assert (out / "Apis_mellifera_metadata.csv").is_file()
    assert {r.size for r in server.log.photo_requests()} == {"small"}
