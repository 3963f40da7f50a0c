"""The durable ledger behind the limits: one SQLite file per user, shared by processes.

iNaturalist counts requests and media bytes per *user*, so the counts cannot live in
one process's memory: a restart, a crash or a second run at the same time must see
what was already spent. This module keeps them in ``limits.sqlite3`` in the user's
state folder and takes every decision inside one write transaction, so two processes
can never both take the last slot of a window.

Model
-----
Two append-only ledgers, ``requests`` (one row per API request) and ``media`` (one
row per settled download, with its bytes). Each row carries its time ``at`` and a
running total ``cum``; ``at`` and ``cum`` both grow with the row id (a new row is
never dated before the newest one), so for a sliding window ``(now - length, now]``:

- the usage is ``cum(newest) - cum_before(first row in the window)``: two index
  look-ups, whatever the number of rows (a day of small photos is a million rows);
- the time a window can take ``cap`` more is found the same way: the first row whose
  ``cum`` reaches ``cum(newest) - cap`` must leave, at its ``at + length``.

A row at time ``a`` is inside the window at ``now`` when ``a > now - length``: it
leaves at exactly ``a + length``, and any half-open window of that length holds no
more than the budget.

Bytes in flight live in ``reservations``: rows with an amount held, an owner (one
random token per store connection) and a *lease*. A process takes bytes in *blocks*
(:class:`Block`, :meth:`LimitStore.sync`): one row, grown in one transaction when the
windows can take it, whose bytes the process hands out to its downloads in memory;
the real sizes of the downloads settled since the last sync enter ``media`` as one
row in the next sync, which also gives back their estimates. So a window never holds
more than its budget plus the excess of real sizes over estimates, as with one row per
download, for a transaction every few dozen photos instead of two per photo. The
owner renews its lease while it downloads; if it crashes, its row expires after the
lease and is charged whole (we cannot know how much a dead process received, so we
assume all of it; a block keeps little unused). A block that expired while its owner
was alive (suspended, say) covers the charges of the downloads it held: only what
they took beyond it is charged again. :meth:`~LimitStore.try_reserve` and
:meth:`~LimitStore.settle` are the same with one row per download.

Old ledger rows that no window can see are deleted in chunks of ``PRUNE_CHUNK`` per
transaction, so that pruning never holds the lock every process shares for long.
A connection that finds the lock taken raises :class:`StoreBusy` at once (with a
busy timeout of 0, see :meth:`~LimitStore.set_busy_timeout`): its caller waits on a
loop timer, never by sleeping in SQLite on an event loop's thread.

The ``state`` table holds what is not a ledger: the theoretical arrival times of the
two paces (a GCRA, i.e. a token bucket kept as one timestamp, so it can be shared
between processes as one row), and the pause and slow-down ordered by a 429 (one of
each per API host).

Every method takes ``now`` from the caller and never sleeps: this module decides,
:mod:`inat_async.limits` waits. Transactions are short (a handful of indexed
statements, tens of microseconds) and run directly on the caller's thread; WAL mode
lets readers go on while one process writes, ``BEGIN IMMEDIATE`` serialises the
deciders, and ``synchronous=NORMAL`` keeps commits off ``fsync`` (a committed row
survives a crash of the process, not a power cut of the machine).
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from ._readonly import connect_readonly
from ._wal import enable_wal
from .errors import LimitsError

FILENAME: Final = "limits.sqlite3"
SCHEMA_VERSION: Final = 1

#: Slack for float rounding in the pace checks, far below anything that matters.
_EPS: Final = 1e-6
#: How often a connection deletes rows that no window can see any more...
_PRUNE_EVERY: Final = 300.0
#: ... and how many per ledger in one transaction (about a millisecond's work).
PRUNE_CHUNK: Final = 1_000

Ledger = Literal["requests", "media"]

#: The reason given while a 429 pauses every request.
PAUSED: Final = "API asked to slow down (HTTP 429)"
#: State keys of a 429's pause and slow-down, followed by the API host they hold back
#: (the key before per-host pauses, without "@", is ignored: it blocked every host).
_PAUSED_KEY: Final = "paused_until@"
_SLOW_KEY: Final = "slow_until@"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    amount INTEGER NOT NULL,
    cum INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_at ON requests (at);
CREATE INDEX IF NOT EXISTS requests_cum ON requests (cum);
CREATE TABLE IF NOT EXISTS media (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    amount INTEGER NOT NULL,
    cum INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS media_at ON media (at);
CREATE INDEX IF NOT EXISTS media_cum ON media (cum);
CREATE TABLE IF NOT EXISTS reservations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    pid INTEGER NOT NULL,
    nbytes INTEGER NOT NULL,
    created REAL NOT NULL,
    lease_until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class RequestRules:
    """The request budget in store terms (see :class:`inat_async.limits.LimitSettings`)."""

    per_minute: int
    burst: int
    per_day: int
    minute: float = 60.0
    day: float = 86_400.0
    #: How much longer the spacing is while slowed down after a 429.
    slow_factor: float = 2.0
    #: The per-minute budget is counted over ``minute + margin``: the server's clock
    #: sees each request a little later than it was granted, by a latency that varies
    #: (a process's first request connects, later ones reuse a warm connection), so
    #: without a margin it can count ``per_minute + 1`` in a minute.
    margin: float = 0.0

    @property
    def interval(self) -> float:
        """Steady spacing between requests: 1 s for 60 per minute."""
        return self.minute / self.per_minute


@dataclass(frozen=True, slots=True)
class ByteRules:
    """The media byte budget in store terms."""

    hourly: int
    daily: int
    hour: float = 3_600.0
    day: float = 86_400.0
    #: Fraction of the hourly budget that may be reserved back to back; beyond it,
    #: reservations are paced at the rest of the budget per ``hour``. 1.0 (the
    #: default): no pace, the budgets are caps over the sliding windows.
    burst: float = 1.0
    #: How long a reservation stays held without renewal (a crashed owner's rows
    #: are charged after this).
    lease: float = 60.0

    @property
    def seconds_per_byte(self) -> float:
        """The pace: ``burst`` of the budget at once, the rest spread over the hour,
        so that the pace alone never fills the window (0.0: no pace)."""
        if self.burst >= 1:
            return 0.0
        return self.hour / (self.hourly * (1 - self.burst))


@dataclass(frozen=True, slots=True)
class Decision:
    """The store's answer: granted, or when to ask again and why."""

    granted: bool
    #: Clock time at which asking again may succeed (when not granted).
    wait_until: float = 0.0
    reason: str = ""
    #: The reservation row held (granted byte reservations only).
    reservation_id: int | None = None
    #: Estimate actually held (a request larger than a budget is clamped to it).
    held: int = 0
    #: Bytes held by *other* owners could be released before ``wait_until``:
    #: the caller should ask again sooner rather than sleep until then.
    poll: bool = False
    #: What the binding budget holds (spent, plus in flight for bytes) and its size,
    #: when a budget (not a pace or a pause) refused.
    spent: int | None = None
    budget: int | None = None


class StoreBusy(LimitsError):
    """Another connection holds the store's lock: ask again in a moment."""


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _refusal(
    denials: list[tuple[float, str, int | None, int | None]], *, poll: bool = False
) -> Decision:
    """The denial that lasts longest decides when to ask again, and is the reason given."""
    until, reason, spent, budget = max(denials, key=lambda d: d[0])
    return Decision(False, until, reason, poll=poll, spent=spent, budget=budget)


@dataclass(slots=True)
class Block:
    """One owner's bytes in flight, held in the store as one reservation row and handed
    out to downloads in memory (see :meth:`LimitStore.sync`).

    ``held`` is what the row holds; of it, ``out`` is handed out to downloads still
    running and ``freed`` was handed out to downloads settled since the last sync, whose
    real bytes (``charge``) are not in the ledger yet. ``free`` may be handed out now.
    """

    id: int | None = None
    held: int = 0
    out: int = 0
    freed: int = 0
    charge: int = 0
    #: Bytes an expired row was charged for, that the downloads it covered (``stale``
    #: of them still running) draw their charges from; ``epoch`` counts expiries.
    credit: int = 0
    stale: int = 0
    epoch: int = 0

    @property
    def free(self) -> int:
        return self.held - self.out - self.freed


_BLOCK_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Block))


@dataclass(frozen=True, slots=True)
class WindowState:
    """Usage of one sliding window at one time."""

    used: int
    #: When the oldest row in the window leaves it (None: the window is empty).
    next_free_at: float | None


@dataclass(frozen=True, slots=True)
class Pause:
    """A 429's hold on one API host (``host:port``)."""

    host: str
    #: No request to the host before then (None: the pause is over, the slow-down not).
    paused_until: float | None
    #: The pace to the host is halved until then.
    slow_until: float


@dataclass(frozen=True, slots=True)
class StoreUsage:
    """Everything ``snapshot`` shows, read in one transaction."""

    requests_minute: WindowState
    requests_day: WindowState
    media_hour: WindowState
    media_day: WindowState
    in_flight: int
    in_flight_here: int
    paused_until: float | None
    slow_until: float | None


@dataclass(frozen=True, slots=True)
class HeldRow:
    """A reservation row as stored (for tests and diagnostics)."""

    id: int
    owner: str
    pid: int
    nbytes: int
    created: float
    lease_until: float


class LimitStore:
    """The request log, byte ledger and reservations in one SQLite file.

    Several stores (in one process or in several) may open the same file: every
    decision is atomic across them. Use one store from one thread.

    >>> store = LimitStore(":memory:")
    >>> rules = RequestRules(per_minute=60, burst=5, per_day=9_500)
    >>> store.take_request(1000.0, rules).granted
    True
    """

    def __init__(
        self, path: Path | str, *, busy_timeout: float = 10.0, readonly: bool = False
    ) -> None:
        self.path = Path(path) if str(path) != ":memory:" else None
        #: Opened to read only (``status``): nothing is created or changed, and every
        #: decision (a write) raises :class:`LimitsError`.
        self.readonly = readonly
        #: Identifies this connection's reservations; random so a restarted process
        #: that got the same pid never mistakes a dead process's rows for its own.
        self.owner = uuid.uuid4().hex
        self._pid = os.getpid()
        self._next_prune = float("-inf")
        if readonly:
            self._open_readonly(path, busy_timeout)
            return
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so that the
            # write lock is taken *before* reading the counts a decision rests on.
            self._conn = sqlite3.connect(
                str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=True
            )
        except (OSError, sqlite3.Error) as exc:
            raise LimitsError(f"cannot open the limits store: {exc}", path=path) from exc
        try:
            enable_wal(self._conn, timeout=busy_timeout)
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except (sqlite3.Error, LimitsError) as exc:
            self._conn.close()
            if isinstance(exc, LimitsError):
                raise
            raise LimitsError(f"cannot open the limits store: {exc}", path=path) from exc

    def _open_readonly(self, path: Path | str, busy_timeout: float) -> None:
        try:
            self._conn = connect_readonly(Path(path), timeout=busy_timeout)
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        except (OSError, sqlite3.Error) as exc:
            raise LimitsError(f"cannot open the limits store: {exc}", path=path) from exc
        if version > SCHEMA_VERSION:
            self._conn.close()
            raise LimitsError(
                "the limits store was written by a newer inat-async; upgrade it",
                path=self.path,
                version=version,
            )

    @classmethod
    def in_dir(cls, state_dir: Path) -> LimitStore:
        """The store of one user's state folder (created if missing)."""
        return cls(Path(state_dir) / FILENAME)

    # -- plumbing ---------------------------------------------------------------

    def _migrate(self) -> None:
        with self._write():
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LimitsError(
                    "the limits store was written by a newer inat-async; upgrade it",
                    path=self.path,
                    version=version,
                )
            # executescript() would COMMIT on its own: run the statements one by one
            # so that the version check and the schema form one transaction.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._conn.execute(statement)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: the write lock is held from the first read."""
        conn = self._conn
        if self.readonly:
            raise LimitsError("the limits store was opened to read only", path=self.path)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise StoreBusy("the limits store is busy", path=self.path) from exc
            raise LimitsError(f"the limits store is unavailable: {exc}", path=self.path) from exc
        except sqlite3.Error as exc:
            raise LimitsError(f"the limits store is unavailable: {exc}", path=self.path) from exc
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise LimitsError(f"cannot write the limits store: {exc}", path=self.path) from exc

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read (one snapshot of the WAL) without taking the write lock."""
        conn = self._conn
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                raise StoreBusy("the limits store is busy", path=self.path) from exc
            raise LimitsError(f"cannot read the limits store: {exc}", path=self.path) from exc

    def set_busy_timeout(self, seconds: float) -> None:
        """How long SQLite itself waits for another connection's lock before a
        :class:`StoreBusy`. It waits by sleeping in the calling thread: on an event
        loop's thread, keep it 0 and wait on a loop timer instead."""
        self._conn.execute(f"PRAGMA busy_timeout={max(0, round(seconds * 1000))}")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LimitStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- ledger primitives (inside a transaction) --------------------------------

    def _newest(self, ledger: Ledger) -> tuple[float | None, int]:
        row = self._conn.execute(
            f"SELECT at, cum FROM {ledger} ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return (None, 0) if row is None else (float(row[0]), int(row[1]))

    def _window(self, ledger: Ledger, now: float, length: float, newest_cum: int) -> WindowState:
        row = self._conn.execute(
            f"SELECT cum - amount, at FROM {ledger} WHERE at > ? ORDER BY at, id LIMIT 1",
            (now - length,),
        ).fetchone()
        if row is None:
            return WindowState(0, None)
        return WindowState(newest_cum - int(row[0]), float(row[1]) + length)

    def _frees_at(self, ledger: Ledger, length: float, newest_cum: int, cap: int) -> float:
        """When the window's usage drops to ``cap`` or below, if nothing is added."""
        row = self._conn.execute(
            f"SELECT at FROM {ledger} WHERE cum >= ? ORDER BY cum LIMIT 1",
            (newest_cum - cap,),
        ).fetchone()
        # Callers only ask when usage > cap >= 0, so such a row exists.
        return float(row[0]) + length

    def _append(self, ledger: Ledger, now: float, amount: int) -> None:
        newest_at, newest_cum = self._newest(ledger)
        # Never date a row before the newest one: keeps `at` and `cum` ordered alike
        # even if two processes' clocks differ slightly (the row then stays in the
        # windows a little longer, which errs on the safe side).
        at = now if newest_at is None else max(now, newest_at)
        self._conn.execute(
            f"INSERT INTO {ledger} (at, amount, cum) VALUES (?, ?, ?)",
            (at, amount, newest_cum + amount),
        )

    def _state(self) -> dict[str, float]:
        return {str(k): float(v) for k, v in self._conn.execute("SELECT key, value FROM state")}

    def _set_state(self, key: str, value: float) -> None:
        self._conn.execute(
            "INSERT INTO state (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _maybe_prune(self, now: float, keep: float) -> None:
        """Delete at most ``PRUNE_CHUNK`` rows no window can see any more, per ledger.

        The deletion shares the transaction of a decision, which holds the lock every
        process shares: a whole day of rows at once took 0.8 s for a million. In
        chunks, each decision's transaction stays short, and the next one goes on
        until the ledgers are clean; then it rests ``_PRUNE_EVERY`` seconds.
        """
        if now < self._next_prune:
            return
        more = False
        for ledger in ("requests", "media"):
            deleted = self._conn.execute(
                f"DELETE FROM {ledger} WHERE id IN "
                f"(SELECT id FROM {ledger} WHERE at <= ? ORDER BY at LIMIT ?)",
                (now - keep, PRUNE_CHUNK),
            ).rowcount
            more = more or deleted >= PRUNE_CHUNK
        self._next_prune = now if more else now + _PRUNE_EVERY

    # -- requests ------------------------------------------------------------------

    def take_request(self, now: float, rules: RequestRules, host: str = "") -> Decision:
        """Take one API request slot at ``now`` if the pace, the windows and any 429
        pause of ``host`` allow it; otherwise say when to ask again."""
        with self._write():
            state = self._state()
            denials: list[tuple[float, str, int | None, int | None]] = []
            paused_until = state.get(_PAUSED_KEY + host, float("-inf"))
            if now < paused_until:
                denials.append((paused_until, PAUSED, None, None))
            # After a 429: a longer spacing and no bursts, for everyone.
            slowed = now < state.get(_SLOW_KEY + host, float("-inf"))
            interval = rules.interval * (rules.slow_factor if slowed else 1.0)
            # GCRA: `tat` is when the bucket would be empty; up to `burst` requests
            # may be ahead of it.
            tat = max(state.get("request_tat", now), now)
            tolerance = 0.0 if slowed else (rules.burst - 1) * interval
            if tat - now > tolerance + _EPS:
                denials.append((tat - tolerance, "request pace", None, None))
            _, newest_cum = self._newest("requests")
            for per, length, reason in (
                (rules.per_minute, rules.minute + rules.margin, "requests per minute"),
                (rules.per_day, rules.day, "daily request budget"),
            ):
                window = self._window("requests", now, length, newest_cum)
                if window.used + 1 > per:
                    until = self._frees_at("requests", length, newest_cum, per - 1)
                    denials.append((until, reason, window.used, per))
            if denials:
                return _refusal(denials)
            self._append("requests", now, 1)
            self._set_state("request_tat", tat + interval)
            self._maybe_prune(now, rules.day + rules.minute)
        return Decision(True)

    def set_backoff(self, paused_until: float, slow_until: float, host: str = "") -> None:
        """Nobody (in any process) takes a request to ``host`` before ``paused_until``;
        the pace is slowed until ``slow_until``. Later pauses win over earlier ones."""
        with self._write():
            state = self._state()
            for key, until in ((_PAUSED_KEY + host, paused_until), (_SLOW_KEY + host, slow_until)):
                self._set_state(key, max(until, state.get(key, 0.0)))

    def pauses(self, now: float) -> list[Pause]:
        """The 429 pauses and slow-downs still running, one per API host."""
        with self._read():
            state = self._state()
        hosts = {k.partition("@")[2] for k in state if k.startswith((_PAUSED_KEY, _SLOW_KEY))}
        found = []
        for host in sorted(hosts):
            paused = state.get(_PAUSED_KEY + host, 0.0)
            slow = state.get(_SLOW_KEY + host, 0.0)
            if paused > now or slow > now:
                found.append(Pause(host, paused if paused > now else None, slow))
        return found

    def clear_backoff(self, host: str | None = None) -> int:
        """Forget the 429 pauses (and slow-downs) of ``host``, or of every host: how many
        hosts had one."""
        with self._write():
            keys = [k for k in self._state() if k.startswith((_PAUSED_KEY, _SLOW_KEY))]
            if host is not None:
                keys = [k for k in keys if k.partition("@")[2] == host]
            for key in keys:
                self._conn.execute("DELETE FROM state WHERE key = ?", (key,))
        return len({k.partition("@")[2] for k in keys})

    # -- bytes ---------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        """Charge reservations whose owner stopped renewing them (it crashed)."""
        expired = self._conn.execute(
            "SELECT id, nbytes FROM reservations WHERE lease_until <= ?", (now,)
        ).fetchall()
        for rid, nbytes in expired:
            self._conn.execute("DELETE FROM reservations WHERE id = ?", (rid,))
            if nbytes:
                self._append("media", now, int(nbytes))

    def sync(
        self, now: float, block: Block, rules: ByteRules, *, want: int = 0, keep: int = 0
    ) -> Decision:
        """Settle ``block`` with the store in one transaction, and make ``want`` bytes
        free in it if the windows allow.

        The real bytes of the downloads settled since the last sync (``block.charge``)
        enter the ledger; their estimates (``block.freed``) leave the row. Then, if
        ``block.free`` is below ``want``, the row grows by at least the difference and
        at most what brings ``free`` to ``keep``, when both byte windows can take it on
        top of what is spent and in flight (in any process); refused, the row keeps
        only what is handed out and the decision says when to ask again. A granted
        ``free`` above ``keep`` shrinks to it: bytes held and not used would stop other
        processes. ``block`` is updated only when the transaction commits.

        A row that expired meanwhile (this owner stopped renewing it for a lease) was
        charged at what it held: the downloads it covered then draw their charges from
        that (``credit``) before adding to the ledger.
        """
        if want < 0 or keep < 0:
            raise ValueError(f"want and keep cannot be negative: {want}, {keep}")
        b = dataclasses.replace(block)
        with self._write():
            self._expire(now)
            row_held = 0
            if b.id is not None:
                row = self._conn.execute(
                    "SELECT nbytes FROM reservations WHERE id = ? AND owner = ?",
                    (b.id, self.owner),
                ).fetchone()
                if row is None:  # expired: charged at b.held by whoever found it
                    b.credit += b.held
                    b.stale += b.out
                    b.epoch += 1
                    b.id, b.held, b.out, b.freed = None, 0, 0, 0
                else:
                    row_held = int(row[0])
            use = min(b.credit, b.charge)
            amount = b.charge - use
            b.credit -= use
            if b.stale == 0:
                b.credit = 0  # nothing left that it covers
            if amount:
                self._append("media", now, amount)
            b.charge = 0
            b.held -= b.freed
            b.freed = 0
            free = b.held - b.out
            decision = Decision(True)
            if free >= want:
                target = b.out + max(want, min(free, keep))
            else:
                decision = self._room(now, b, want, want - free, rules)
                if decision.granted:
                    target = b.out + max(want, min(keep, want + decision.held))
                else:
                    target = b.out
            if b.id is None and target > 0:
                cursor = self._conn.execute(
                    "INSERT INTO reservations (owner, pid, nbytes, created, lease_until) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (self.owner, self._pid, target, now, now + rules.lease),
                )
                b.id = cursor.lastrowid
            elif b.id is not None and target == 0:
                self._conn.execute("DELETE FROM reservations WHERE id = ?", (b.id,))
                b.id = None
            elif b.id is not None:
                self._conn.execute(
                    "UPDATE reservations SET nbytes = ?, lease_until = ? WHERE id = ?",
                    (target, now + rules.lease, b.id),
                )
            if rules.seconds_per_byte:
                # The opt-in pace counts what is held and what was spent.
                delta = target - row_held + amount
                if delta:
                    tat = max(self._state().get("bytes_tat", now), now)
                    self._set_state("bytes_tat", tat + delta * rules.seconds_per_byte)
            b.held = target
            self._maybe_prune(now, rules.day + rules.hour)
        for name in _BLOCK_FIELDS:
            setattr(block, name, getattr(b, name))
        return decision

    def _room(self, now: float, b: Block, want: int, need: int, rules: ByteRules) -> Decision:
        """Whether the windows can take ``want`` free bytes on top of what is spent, what
        other owners hold and what ``b`` hands out (granted: ``held`` is the extra room
        beyond ``want``); else when to ask again. ``need`` is the growth of the row."""
        others = 0
        for rid, held in self._conn.execute("SELECT id, nbytes FROM reservations"):
            if rid != b.id:
                others += int(held)
        committed = others + b.out
        denials: list[tuple[float, str, int | None, int | None]] = []
        _, newest_cum = self._newest("media")
        room: int | None = None
        for budget, length, reason in (
            (rules.hourly, rules.hour, "hourly byte budget"),
            (rules.daily, rules.day, "daily byte budget"),
        ):
            window = self._window("media", now, length, newest_cum)
            left = budget - window.used - committed
            room = left if room is None else min(room, left)
            if left < want:
                cap = budget - committed - want
                if cap >= 0:
                    until = self._frees_at("media", length, newest_cum, cap)
                else:
                    # Only settling downloads can make room; if they are charged
                    # now, their bytes leave the window one length from now.
                    until = now + length
                denials.append((until, reason, window.used + committed, budget))
        spb = rules.seconds_per_byte
        if spb:
            # Opt-in smoothing: the hourly budget as a pace, a GCRA over bytes, a
            # bucket of `burst * hourly` refilled at `(1 - burst) * hourly` per hour.
            tat = max(self._state().get("bytes_tat", now), now)
            bucket = max(rules.burst * rules.hourly, need) * spb
            if tat + need * spb - now > bucket + _EPS:
                denials.append((tat + need * spb - bucket, "hourly byte pace", None, None))
            room = want  # paced: nothing held beyond what is asked
        if denials:
            return _refusal(denials, poll=others > 0)
        assert room is not None
        return Decision(True, held=max(0, room - want))

    def try_reserve(self, now: float, nbytes: int, rules: ByteRules) -> Decision:
        """Hold ``nbytes`` in a row of its own if both byte windows can take them on top
        of what is already spent and in flight; otherwise say when to ask again.

        A request larger than a budget is clamped to it, so that one huge photo is
        admitted alone into an empty window instead of waiting forever.
        """
        if nbytes < 0:
            raise ValueError(f"cannot reserve a negative number of bytes: {nbytes}")
        estimate = min(nbytes, rules.hourly, rules.daily)
        block = Block()
        decision = self.sync(now, block, rules, want=estimate)
        if not decision.granted:
            return decision
        if block.id is None:  # nothing to hold (0 bytes): a row all the same
            block.id = self._insert_empty(now, rules)
        return Decision(True, reservation_id=block.id, held=estimate)

    def _insert_empty(self, now: float, rules: ByteRules) -> int:
        with self._write():
            cursor = self._conn.execute(
                "INSERT INTO reservations (owner, pid, nbytes, created, lease_until) "
                "VALUES (?, ?, 0, ?, ?)",
                (self.owner, self._pid, now, now + rules.lease),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def settle(
        self, now: float, reservation_id: int, *, estimate: int, charged: int, rules: ByteRules
    ) -> None:
        """End a reservation: its estimate is no longer held and ``charged`` bytes (the
        real size, or what a failed download received) enter the ledger at ``now``."""
        if charged < 0:
            raise ValueError(f"cannot charge a negative number of bytes: {charged}")
        block = Block(id=reservation_id, held=estimate, freed=estimate, charge=charged)
        self.sync(now, block, rules)

    def renew(self, now: float, reservation_ids: Iterable[int], lease: float) -> None:
        """Extend the leases of reservations this owner still holds."""
        ids = list(reservation_ids)
        if not ids:
            return
        with self._write():
            self._conn.executemany(
                "UPDATE reservations SET lease_until = ? WHERE id = ? AND owner = ?",
                [(now + lease, rid, self.owner) for rid in ids],
            )

    # -- reading -------------------------------------------------------------------

    def usage(
        self,
        now: float,
        requests: RequestRules,
        media: ByteRules,
        hosts: Iterable[str] | None = None,
    ) -> StoreUsage:
        """All counts at ``now`` in one consistent read (nothing is written); the 429
        pause and slow-down are the longest of ``hosts`` (None: of every host)."""
        with self._read():
            _, req_cum = self._newest("requests")
            _, media_cum = self._newest("media")
            in_flight = 0
            here = 0
            for owner, held in self._conn.execute("SELECT owner, nbytes FROM reservations"):
                in_flight += int(held)
                if owner == self.owner:
                    here += int(held)
            state = self._state()
            wanted = None if hosts is None else set(hosts)

            def longest(prefix: str) -> float | None:
                times = [
                    value
                    for key, value in state.items()
                    if key.startswith(prefix)
                    and (wanted is None or key[len(prefix) :] in wanted)
                    and value > now
                ]
                return max(times, default=None)

            return StoreUsage(
                requests_minute=self._window("requests", now, requests.minute, req_cum),
                requests_day=self._window("requests", now, requests.day, req_cum),
                media_hour=self._window("media", now, media.hour, media_cum),
                media_day=self._window("media", now, media.day, media_cum),
                in_flight=in_flight,
                in_flight_here=here,
                paused_until=longest(_PAUSED_KEY),
                slow_until=longest(_SLOW_KEY),
            )

    def history(self, ledger: Ledger) -> list[tuple[float, int]]:
        """Every row still kept in a ledger, oldest first, as ``(at, amount)``."""
        with self._read():
            rows = self._conn.execute(f"SELECT at, amount FROM {ledger} ORDER BY id").fetchall()
        return [(float(at), int(amount)) for at, amount in rows]

    def held(self) -> list[HeldRow]:
        """Every reservation in flight, of every owner."""
        with self._read():
            rows = self._conn.execute(
                "SELECT id, owner, pid, nbytes, created, lease_until FROM reservations ORDER BY id"
            ).fetchall()
        return [HeldRow(int(r[0]), str(r[1]), int(r[2]), int(r[3]), r[4], r[5]) for r in rows]
