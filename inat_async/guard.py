"""Guards of an output folder: one run at a time writes to it, and a lost store is no restart.

Two runs into one folder (two terminals, an easy mistake) both download what the
other is downloading, and spend the user's byte budget twice. A run therefore holds
an operating-system lock on ``OUT/.inat-async/lock`` for as long as it writes; a
second run into the same folder refuses at once with one clear line (exit 2 from the
CLI) naming the process that holds it, rather than wait behind a run that may take
days. The OS drops the lock when the holder exits, even on ``kill -9``, so a crash
never leaves a stale lock behind. Readers (``status``, ``export``, ``verify``) do not
take it: they only read the resume store, which SQLite keeps consistent for them.

POSIX ``flock`` (or ``msvcrt.locking`` on Windows). On a network file system where
locks are not supported the lock is skipped rather than refusing every run.

A resume store emptied (truncated to 0 bytes, replaced by an empty file) beside the
photos and CSV files it described would silently start a new dataset and fetch every
photo again: :func:`check_store_not_lost` refuses that with a recovery hint.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import sys
from pathlib import Path
from types import TracebackType

from .errors import OutputConflictError, StorageError, UsageError
from .resume import STATE_DIR, STATE_FILE

LOCK_FILE = "lock"


class DatasetBusyError(UsageError):
    """Another run is writing to this output folder."""


class DatasetLock:
    """Held while a run writes to ``out_dir``; use as a context manager.

    >>> with DatasetLock(Path("results")):  # doctest: +SKIP
    ...     ...  # download
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.path = out_dir / STATE_DIR / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot create {self.path}: {exc.strerror}") from exc
        try:
            locked = _lock(fd)
        except BaseException:
            os.close(fd)
            raise
        if not locked:
            holder = _read_holder(fd)
            os.close(fd)
            who = f" (process {holder})" if holder else ""
            raise DatasetBusyError(
                f"another inat-async run{who} is downloading into {self.out_dir}; wait for it "
                "to finish (it resumes this dataset), or choose another out_dir",
                options=("out_dir",),
            )
        self._fd = fd
        # Who holds it, for the message of a run that is refused (best effort).
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing drops the lock

    def __enter__(self) -> DatasetLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode().strip()
        return text if text.isdigit() else ""
    return ""


def check_store_not_lost(out_dir: Path) -> None:
    """Refuse to start over when the resume store is there but empty beside downloaded files.

    A store that does not exist is a new dataset (or the original script's folder): fine.
    """
    path = out_dir / STATE_DIR / STATE_FILE
    if not path.is_file() or _holds_dataset(path):
        return
    found = sorted(
        entry.name
        for entry in _entries(out_dir)
        if (entry.name.endswith("_images") and entry.is_dir() and _has_files(Path(entry.path)))
        or (entry.name.endswith(".csv") and entry.is_file())
    )
    if not found:
        return
    shown = ", ".join(found[:3]) + (", …" if len(found) > 3 else "")
    raise OutputConflictError(
        f"the resume store {path} is empty, but {out_dir} holds downloaded files ({shown}): "
        "the store was lost or truncated, and starting over would download every photo "
        f"again. Restore {STATE_FILE} from a backup if you have one; to start anew, move "
        f"those files out of {out_dir} first, or choose another out_dir",
        options=("out_dir",),
    )


def _holds_dataset(path: Path) -> bool:
    """True when the store records a dataset (its settings); False when it is empty."""
    try:
        db = sqlite3.connect(path, timeout=30.0)
    except sqlite3.Error:
        return True  # unreadable: the store itself will say why when it is opened
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'query'").fetchone()
    except sqlite3.OperationalError as exc:
        # "no such table": a blank database, the SQLite view of a 0-byte file.
        return "no such table" not in str(exc)
    except sqlite3.Error:
        return True
    finally:
        db.close()
    return row is not None


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError:
        return []


def _has_files(folder: Path) -> bool:
    return any(entry.is_file() and not entry.name.startswith(".") for entry in _entries(folder))


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                return True  # no locks on this file system: run unguarded, as before
            raise StorageError(f"cannot lock the dataset: {exc.strerror}") from exc
        return True
