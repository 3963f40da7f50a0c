"""Opening a SQLite store to read it only: no file created, none changed.

``status`` promises to change nothing, but a plain connection to a WAL database writes:
it creates the ``-wal`` and ``-shm`` files when they are missing, and opening a store
runs its schema and migrations. Here the file is opened with ``mode=ro``; when no
writer has it open (no ``-wal``/``-shm`` beside it) also ``immutable=1``, because even
a read-only connection would create those two files. Everything committed is then in
the main file. A checkpoint starting in the same instant could make one read
inconsistent (a wrong count shown once), never damage the store: nothing is written.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect_readonly(path: Path, *, timeout: float = 5.0) -> sqlite3.Connection:
    """A read-only connection to the SQLite file at ``path`` (which must exist)."""
    path = Path(path).absolute()
    if not path.is_file():
        raise sqlite3.OperationalError(f"unable to open database file {path}")
    live = (
        path.with_name(path.name + "-wal").exists() and path.with_name(path.name + "-shm").exists()
    )
    uri = f"{path.as_uri()}?mode=ro" + ("" if live else "&immutable=1")
    conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        conn.close()
        raise
    return conn
