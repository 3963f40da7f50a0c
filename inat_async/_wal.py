"""Switching a fresh SQLite file to WAL when other processes open it in the same instant.

SQLite does not call the busy handler while it changes the journal mode: a connection
that runs ``PRAGMA journal_mode=WAL`` while another one holds the file (switching it
itself, or creating the schema) gets "database is locked" at once, whatever the busy
timeout. Two runs started together with a new state folder hit that. WAL is persistent
once set, so the switch is retried with a short backoff (the other connection holds the
file for milliseconds) until the caller's timeout; an open happens once per run.
"""

from __future__ import annotations

import sqlite3
import time

#: First and longest pause between two tries.
_FIRST_PAUSE = 0.001
_LONGEST_PAUSE = 0.05


def enable_wal(conn: sqlite3.Connection, *, timeout: float) -> None:
    """Put ``conn``'s database in WAL mode, retrying a busy file up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    pause = _FIRST_PAUSE
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            message = str(exc)
            if "locked" not in message and "busy" not in message:
                raise
            if time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, _LONGEST_PAUSE)
