"""What every writer shares: temporary files with the user's umask, and CSV cells.

Not ``mkstemp``, which makes files only their owner can read: a dataset and its CSVs are
shared like the photos, so a writer's files get 0666 less the umask, like any file the
user creates.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any


def create_temporary(path: Path) -> tuple[int, Path]:
    """A new hidden file beside ``path``, open for writing: (fd, its path). Rename it over
    ``path`` when it is complete; a link in its place is never followed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: nothing for None, ``true``/``false`` for booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
