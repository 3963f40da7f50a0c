"""Every module opens with a one-line summary, then its details, as the conventions ask.

A newcomer reads the tree by its first lines (``head -1``, an IDE's hover, pydoc's
module index): a summary that wraps, or none, hides what a module is for.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import inat_async

PACKAGE = Path(inat_async.__file__).resolve().parent
MODULES = sorted(PACKAGE.rglob("*.py"))


def _summary(path: Path) -> str:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=True)
    assert docstring, f"{path.relative_to(PACKAGE.parent)} has no module docstring"
    first_paragraph = docstring.split("\n\n")[0]
    assert "\n" not in first_paragraph, (
        f"{path.relative_to(PACKAGE.parent)}: the summary wraps; give it one line and "
        "put the rest in a paragraph after a blank line"
    )
    return first_paragraph


def test_the_modules_are_found() -> None:
    assert len(MODULES) > 30
    assert PACKAGE / "cli" / "app.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_docstring_opens_with_a_one_line_summary(path: Path) -> None:
    summary = _summary(path)
    # The summary line must fit the line length (100) with its opening quotes.
    assert len(summary) <= 97, f"{path.relative_to(PACKAGE.parent)}: the summary is too long"
