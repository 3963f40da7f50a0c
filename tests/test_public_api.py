"""The public surface: the names ``inat_async`` exports, and the library/CLI boundary.

Only ``inat_async`` and ``inat_async.testing`` are public (see the README). The exported
names are pinned here, as httpx's ``tests/test_exported_members.py`` pins its own: adding,
removing or renaming one is a deliberate change that shows up in review as a change to
this list.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import inat_async
import inat_async.testing
from inat_async import errors

PACKAGE = Path(inat_async.__file__).resolve().parent

EXPORTED = {
    "FilterRequest",
    "Filters",
    "SpeciesCount",
    "list_species",
    "parse_search_url",
    "resolve_selection",
    "write_species_csv",
    "DEFAULT_USER_AGENT",
    "OFFICIAL_API_URL",
    "ApiError",
    "DatasetStatus",
    "Event",
    "EventCallback",
    "ExportOptions",
    "ExportResult",
    "InatClient",
    "InatError",
    "LimitSettings",
    "LimitWait",
    "Limits",
    "LimitsError",
    "Observation",
    "ObservationSkipped",
    "OpenDataError",
    "OutputConflictError",
    "PageFetched",
    "Photo",
    "PhotoDownloaded",
    "PhotoFailed",
    "PhotoFailure",
    "PhotoSkipped",
    "Query",
    "ResponseShapeError",
    "RetryPolicy",
    "RunFinished",
    "RunPlan",
    "RunResult",
    "RunStarted",
    "Settings",
    "SpeciesEntry",
    "SpeciesFileError",
    "SpeciesFinished",
    "SpeciesPlan",
    "SpeciesResult",
    "SpeciesStarted",
    "SpeciesStatus",
    "StorageError",
    "Taxon",
    "TaxonMatch",
    "TaxonNotFoundError",
    "TaxonResolved",
    "UsageError",
    "WorkersLimited",
    "VerifyResult",
    "__version__",
    "dataset_status",
    "default_limits",
    "download_all",
    "download_species",
    "export_dataset",
    "plan_run",
    "read_species_csv",
    "verify_dataset",
}


def test_the_exported_names_are_pinned() -> None:
    assert len(inat_async.__all__) == len(set(inat_async.__all__)), "a name is listed twice"
    assert set(inat_async.__all__) == EXPORTED


@pytest.mark.parametrize("module", [inat_async, inat_async.testing], ids=lambda m: m.__name__)
def test_every_exported_name_is_importable(module: types.ModuleType) -> None:
    for name in module.__all__:
        assert getattr(module, name, None) is not None, f"{module.__name__}.{name} is missing"
        namespace: dict[str, object] = {}
        exec(f"from {module.__name__} import {name}", namespace)
        assert namespace[name] is getattr(module, name)


@pytest.mark.parametrize("module", [inat_async, inat_async.testing], ids=lambda m: m.__name__)
def test_every_public_name_in_the_namespace_is_exported(module: types.ModuleType) -> None:
    """A name imported into the package but left out of ``__all__`` is public by accident."""
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public - set(module.__all__) == set()


def test_every_exception_lives_in_errors_and_is_exported() -> None:
    defined = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, Exception)
    }
    exported = {
        name
        for name in inat_async.__all__
        if inspect.isclass(getattr(inat_async, name))
        and issubclass(getattr(inat_async, name), BaseException)
    }
    assert exported == defined
    for name in exported:
        assert getattr(inat_async, name).__module__ == "inat_async.errors"
        assert issubclass(getattr(inat_async, name), inat_async.InatError)


# -- the library/CLI boundary -----------------------------------------------------------------

CLI_ONLY = {"rich", "typer", "click"}


def _imported_roots(source: str) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every import in ``source``, nested ones included."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def _cli_imports(path: Path) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {root}"
        for line, root in _imported_roots(path.read_text(encoding="utf-8"))
        if root in CLI_ONLY
    ]


def test_the_import_walk_sees_nested_and_dotted_imports() -> None:
    source = "import os\nfrom rich.console import Console\ndef f():\n    import typer.models\n"
    assert [root for _, root in _imported_roots(source) if root in CLI_ONLY] == ["rich", "typer"]
    # The CLI itself is where they are: a walk that finds nothing there is broken.
    assert _cli_imports(PACKAGE / "cli" / "app.py")


def test_only_the_cli_package_imports_rich_or_typer() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20
    outside = [path for path in sources if (PACKAGE / "cli") not in path.parents]
    offenders = [line for path in outside for line in _cli_imports(path)]
    assert offenders == []


def test_importing_the_library_loads_no_terminal_ui() -> None:
    """The same boundary at run time: an embedding program does not pay for rich or typer."""
    code = (
        "import sys, inat_async, inat_async.testing\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(CLI_ONLY)!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
