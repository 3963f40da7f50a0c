"""Every module opens with a one-line summary, then its details, as the conventions ask.

A newcomer reads the tree by its first lines (``head -1``, an IDE's hover, pydoc's
module index): a summary that wraps, or none, hides what a module is for.
"""

from __future__ import annotations

import ast
import re
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


def test_the_architecture_note_names_every_module() -> None:
    root = PACKAGE.parent
    if not (root / "pyproject.toml").is_file():
        pytest.skip("an installed package, not a source checkout: no ARCHITECTURE.md")
    text = (root / "ARCHITECTURE.md").read_text(encoding="utf-8")
    missing = [
        rel
        for rel in (str(path.relative_to(PACKAGE)) for path in MODULES)
        if f"| `{rel}` |" not in text
    ]
    assert missing == [], (
        f"add a line for {', '.join(missing)} to a module table in ARCHITECTURE.md "
        "(| `path` | what it is for |)"
    )
    listed = set(re.findall(r"^\| `([\w/]+\.py)` \|", text, flags=re.MULTILINE))
    gone = sorted(listed - {str(path.relative_to(PACKAGE)) for path in MODULES})
    assert gone == [], f"ARCHITECTURE.md lists modules that no longer exist: {gone}"
