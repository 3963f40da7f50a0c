"""Workers within what the process may open: the file-descriptor limit (``ulimit -n``).

Each worker holds up to two descriptors at once (its connection and its ``.part``
file), and a run holds a few dozen more (stores, the walk's API connections, the event
loop, standard streams). ``-w 250`` under macOS's default soft limit of 256 ended in
"Too many open files" with nothing saved. Before a run starts, :func:`fit_workers`
raises the soft limit toward the hard one when more are needed (as far as the system
allows: that is the process's own business), and if that is still not enough, runs
fewer workers and says so with a :class:`WorkersLimited` event.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from .events import WorkersLimited

try:
    import resource
except ImportError:  # pragma: no cover - Windows has no RLIMIT_NOFILE
    resource = None  # type: ignore[assignment]

#: Descriptors one worker may hold at once: a connection and a ``.part`` file.
PER_WORKER = 2
#: Descriptors kept for everything else a run opens (stores and their journals, the
#: dataset lock, the walk's API connections, DNS, CSV writers), on top of those open now.
RESERVE = 48


def fit_workers(requested: int) -> tuple[int, WorkersLimited | None]:
    """How many workers the open-file limit allows, after raising it if need be.

    Returns the workers to run and, when the limit mattered, what happened.
    """
    if resource is None:
        return requested, None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return requested, None
    in_use = _open_now()
    needed = in_use + RESERVE + requested * PER_WORKER
    if needed <= soft:
        return requested, None
    raised = _raise_soft(soft, hard, needed)
    workers = max(1, min(requested, (raised - in_use - RESERVE) // PER_WORKER))
    limit_hard = None if hard == resource.RLIM_INFINITY else hard
    return workers, WorkersLimited(requested, workers, soft, raised, limit_hard)


def _raise_soft(soft: int, hard: int, needed: int) -> int:
    """The soft limit after trying to raise it to ``needed`` (at most the hard limit)."""
    assert resource is not None
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    # macOS refuses more than OPEN_MAX (10240) even under an unlimited hard limit.
    for attempt in (target, min(target, 10240)):
        if attempt <= soft:
            break
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (attempt, hard))
            return attempt
    return soft


def _open_now() -> int:
    """Descriptors the process holds now (a fair guess where it cannot be counted)."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        with contextlib.suppress(OSError):
            return sum(1 for _ in Path(folder).iterdir())
    return 16
