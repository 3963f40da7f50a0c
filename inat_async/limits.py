"""iNaturalist's request and byte budgets, shared by every task and every process of a user.

:class:`LimitSettings` holds the budgets; :class:`Limits` enforces them: a run awaits
:meth:`Limits.request` before each API request and :meth:`Limits.reserve` before each
photo. How, in detail:

Two budgets are kept, both over *sliding* windows and both persisted in the user's
state folder (:mod:`inat_async.limitstore`), so that a restart, a crash or a second run
at the same time keeps counting what was already spent:

API requests -- :meth:`Limits.request`
    Every request (retries included) first takes a token from an in-process
    :class:`aiolimiter.AsyncLimiter` (``burst`` back to back, then a steady
    ``requests_per_minute / minute`` per second). That costs no I/O and queues the
    process's tasks fairly. The task then asks the store, in one cross-process
    transaction, for a slot: the shared pace (the same bucket, kept as one
    timestamp so other processes see it), the 60-second window (the bucket alone
    allows ``burst + 60`` in the first minute), the daily budget, and any pause
    ordered by a 429. Granted, the slot is recorded durably; refused, the store says
    when to ask again and the task sleeps exactly that long. One task per process
    asks at a time (FIFO), so a pause holds *everyone* back and nobody polls.

Media bytes -- :meth:`Limits.reserve`
    Before a download, its estimated size is *reserved*: admitted only if the hourly
    and daily windows can take it on top of what was spent and what is in flight
    (in any process). The download then :meth:`~Reservation.commit`\\ s its real size
    or :meth:`~Reservation.release`\\ s what it received (exactly once). So a window
    never holds more than its budget plus the excess of real sizes over estimates of
    the downloads in flight when it filled up. Both budgets are *caps*: downloads go
    as fast as the link and the workers allow until the next photo would not fit in
    a window; then the head of the queue sleeps until enough bytes leave the window
    (or a download settles) and everything resumes by itself: a budget never ends a
    run. Smoothing the hourly budget into a pace (``byte_burst`` below 1) is an
    opt-in: it makes every job under the budget slower than its link.

    The bytes are taken from the store in blocks of a few dozen photos and handed out
    in memory; settlements are written in batches (after ``FLUSH_EVERY`` of them,
    ``FLUSH_DELAY`` seconds, or at once when no download is out any more), so most
    photos cost no store transaction at all. A download cancelled or failed midway
    is charged the bytes it received (:meth:`Reservation.add_received`).

Time comes from one :class:`Clock`. The default, :class:`LoopClock`, is the event
loop's time anchored to the wall clock, so times stored by several processes are
comparable while tests can run on a fake loop time (e.g. ``looptime``) and never
sleep. All waiting uses the loop's timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol
from urllib.parse import urlsplit

import platformdirs
from aiolimiter import AsyncLimiter

from .errors import LimitsError, UsageError
from .limitstore import (
    PAUSED,
    Block,
    ByteRules,
    Decision,
    LimitStore,
    Pause,
    RequestRules,
    StoreBusy,
    WindowState,
)

__all__ = [
    "OFFICIAL_MAX_PER_MINUTE",
    "STATE_DIR_ENV",
    "Clock",
    "LimitSettings",
    "Limits",
    "LimitsSnapshot",
    "LoopClock",
    "Pause",
    "Reservation",
    "WaitCallback",
    "WindowUsage",
    "api_host",
    "default_limits",
]

STATE_DIR_ENV: Final = "INAT_ASYNC_STATE_DIR"
OFFICIAL_MAX_PER_MINUTE: Final = 60

#: ``(reason, resume_at, spent, budget)``: called once when a request or reservation
#: starts a noticeable wait; ``resume_at`` is clock (wall) time; ``spent`` and
#: ``budget`` say how full the budget that stopped it is (bytes, or requests; spent
#: includes the bytes in flight), None for a pause that is not a budget (a 429).
WaitCallback = Callable[[str, float, int | None, int | None], None]

#: Settled downloads are written to the store after this many of them...
FLUSH_EVERY: Final = 64
#: ... or this many seconds after the first, whichever comes first.
FLUSH_DELAY: Final = 0.5
#: A block from the store holds about this many typical photos ahead.
BLOCK_PHOTOS: Final = 32
#: A busy store is asked again after about this long, on a loop timer...
_BUSY_RETRY: Final = 0.01
#: ... until it has been busy this long.
_BUSY_LIMIT: Final = 30.0
_GRANTED: Final = Decision(True)

#: A wait shorter than this is never zero: it guards against float rounding making a
#: window boundary look one ulp away forever.
_MIN_WAIT: Final = 1e-4


def api_host(url: str) -> str:
    """The key a 429 pause is kept under: the URL's ``host[:port]``, credentials left out."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port is not None else host


def _is_official(api_url: str) -> bool:
    host = (urlsplit(api_url).hostname or "").lower()
    return host == "inaturalist.org" or host.endswith(".inaturalist.org")


@dataclass(frozen=True)
class LimitSettings:
    """The budgets, one object that several runs can share.

    >>> LimitSettings(hourly_bytes=500_000_000).validate("https://api.inaturalist.org/v1")
    """

    #: Requests in any sliding ``minute``; never exceeded.
    requests_per_minute: int = 60
    #: Requests that may go back to back; then a steady ``requests_per_minute / minute``/s.
    burst: int = 5
    #: Requests in any sliding ``day`` (iNaturalist asks for under 10,000).
    requests_per_day: int = 9_500
    #: Media bytes per sliding ``hour`` (a margin under iNaturalist's 5 GB).
    hourly_bytes: int = 4_500_000_000
    #: Media bytes per sliding ``day`` (a margin under 24 GB).
    daily_bytes: int = 22_000_000_000
    #: Where the shared store lives; None: $INAT_ASYNC_STATE_DIR, else the platform's
    #: per-user state folder.
    state_dir: Path | None = None
    #: Window lengths in seconds; shorter ones only make sense for tests and benchmarks.
    minute: float = 60.0
    hour: float = 3_600.0
    day: float = 86_400.0
    #: 1.0 (the default): the byte budgets are caps over their sliding windows.
    #: Below 1, opt-in smoothing: only this share of the hourly budget may be
    #: reserved back to back, the rest is spread evenly over the hour.
    byte_burst: float = 1.0
    #: Waits at least this long (seconds) are reported to ``on_wait``; shorter ones
    #: are the ordinary pace and would only flicker on a display.
    notify_after: float = 10.0
    #: How long a reservation outlives a crashed process before it is charged.
    lease: float = 60.0
    #: The per-minute request budget is counted over ``minute`` plus this margin, so
    #: that the server's clock, not only ours, never sees more than
    #: ``requests_per_minute`` in a minute (latencies vary: a process's first request
    #: connects, later ones reuse a warm connection). None: ``minute / 30`` (2 s).
    request_margin: float | None = None
    #: Longest pause a 429's ``Retry-After`` can impose (seconds); the pace is then
    #: halved for five minutes more. A pause holds back one API host, not the others.
    max_pause: float = 600.0

    def validate(self, api_url: str | None = None) -> None:
        """Raise :class:`UsageError` for values that cannot work or are not allowed.

        More than 60 requests per minute is refused against the official API (its
        documented limit); a mirror or a test server may allow more.
        """
        # Messages name the fields (options=...); the CLI puts its flags in their place.
        for name in (
            "requests_per_minute",
            "burst",
            "requests_per_day",
            "hourly_bytes",
            "daily_bytes",
            "minute",
            "hour",
            "day",
            "lease",
            "max_pause",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise UsageError(
                    f"{name} must be a positive number, got {value!r}", options=(name,)
                )
        if self.burst > self.requests_per_minute:
            raise UsageError(
                f"burst ({self.burst}) cannot exceed requests_per_minute "
                f"({self.requests_per_minute})",
                options=("burst", "requests_per_minute"),
            )
        if not 0 < self.byte_burst <= 1:
            raise UsageError(
                f"byte_burst must be in (0, 1], got {self.byte_burst!r}", options=("byte_burst",)
            )
        if self.request_margin is not None and not 0 <= self.request_margin < self.minute:
            raise UsageError(
                f"request_margin must be in [0, minute), got {self.request_margin!r}",
                options=("request_margin",),
            )
        if self.notify_after < 0:
            raise UsageError(
                f"notify_after cannot be negative, got {self.notify_after!r}",
                options=("notify_after",),
            )
        if (
            api_url is not None
            and self.requests_per_minute > OFFICIAL_MAX_PER_MINUTE
            and _is_official(api_url)
        ):
            raise UsageError(
                f"requests_per_minute {self.requests_per_minute} is above iNaturalist's "
                f"limit of {OFFICIAL_MAX_PER_MINUTE}; higher values are only allowed with an "
                "api_url other than the official API",
                options=("requests_per_minute", "api_url"),
            )

    def resolved_state_dir(self) -> Path:
        """The state folder this configuration uses."""
        if self.state_dir is not None:
            return Path(self.state_dir).expanduser().absolute()
        env = os.environ.get(STATE_DIR_ENV)
        if env:
            return Path(env).expanduser().absolute()
        return Path(platformdirs.user_state_dir("inat-async", appauthor=False))

    def request_rules(self) -> RequestRules:
        return RequestRules(
            per_minute=self.requests_per_minute,
            burst=self.burst,
            per_day=self.requests_per_day,
            minute=self.minute,
            day=self.day,
            margin=self.minute / 30 if self.request_margin is None else self.request_margin,
        )

    def byte_rules(self) -> ByteRules:
        return ByteRules(
            hourly=self.hourly_bytes,
            daily=self.daily_bytes,
            hour=self.hour,
            day=self.day,
            burst=self.byte_burst,
            lease=self.lease,
        )


class Clock(Protocol):
    """The one source of time: seconds on a timeline all processes share (wall time).

    Waiting is done with the running loop's timers for ``until - clock.now()``
    seconds, so a clock must advance with the loop's time while anything waits.
    """

    def now(self) -> float: ...


class LoopClock:
    """The running loop's time, shifted to read as wall time.

    The shift is fixed when the clock first sees a loop, so the time is as steady as
    the loop's monotonic clock yet comparable across processes; under a fake loop
    time (``looptime``) it runs as fast as the test wants. ``epoch`` pins the wall
    time of that first anchor (for reproducible tests).
    """

    __slots__ = ("_epoch", "_last", "_loop", "_offset")

    def __init__(self, epoch: float | None = None) -> None:
        self._epoch = epoch
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._offset = 0.0
        self._last: float | None = None

    def now(self) -> float:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # Outside a loop (e.g. `status` from sync code): the last loop's time if
            # it is still there, else the wall clock.
            last = self._loop() if self._loop is not None else None
            if last is not None and not last.is_closed():
                return last.time() + self._offset
            return time.time() if self._epoch is None else (self._last or self._epoch)
        if self._loop is None or self._loop() is not loop:
            if self._epoch is None:
                start = time.time()
            else:
                # A pinned clock continues where it was on the next loop.
                start = self._epoch if self._last is None else self._last
            self._loop = weakref.ref(loop)
            self._offset = start - loop.time()
        self._last = loop.time() + self._offset
        return self._last


@dataclass(frozen=True, slots=True)
class WindowUsage:
    """One sliding window as the display shows it."""

    name: str
    used: int
    budget: int
    length: float
    #: Reserved by downloads in flight (byte windows only).
    in_flight: int = 0
    #: When the oldest entry leaves the window (None: empty).
    next_free_at: float | None = None

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.used - self.in_flight)

    @property
    def full(self) -> bool:
        return self.remaining <= 0


@dataclass(frozen=True, slots=True)
class LimitsSnapshot:
    """What has been spent, by every process of this user, at ``at``."""

    at: float
    requests_minute: WindowUsage
    requests_day: WindowUsage
    bytes_hour: WindowUsage
    bytes_day: WindowUsage
    #: Bytes reserved by downloads in flight, in every process / in this one.
    bytes_in_flight: int
    bytes_in_flight_here: int
    #: A 429 stops every request (to the hosts this process uses; any host when it
    #: used none) until then.
    paused_until: float | None
    #: The request pace is slowed until then.
    slow_until: float | None
    #: Waits on a budget going on in this process: ``(reason, resume_at)``.
    waiting: tuple[tuple[str, float], ...] = ()
    #: Every API host's 429 pause or slow-down still running (of every process).
    pauses: tuple[Pause, ...] = ()

    @property
    def windows(self) -> tuple[WindowUsage, ...]:
        return (self.requests_minute, self.requests_day, self.bytes_hour, self.bytes_day)


class Reservation:
    """Bytes held for one download; settled exactly once.

    :meth:`commit` with the real size, or :meth:`release` if the download failed.
    Committing twice (or after a release) raises :class:`RuntimeError`, because the
    bytes would be counted twice; releasing again is a no-op, so ``finally:
    reservation.release()`` and the context manager are always safe::

        with await limits.reserve(estimate) as reservation:
            async for chunk in body:
                reservation.add_received(len(chunk))  # a cancellation charges these
                ...
            reservation.commit(size)
    """

    __slots__ = ("_epoch", "_limits", "_settled", "held", "id", "received", "requested")

    def __init__(self, limits: Limits, reservation_id: int, requested: int, held: int) -> None:
        self._limits = limits
        self.id = reservation_id
        #: What the caller asked for, and what the ledger holds (smaller only when a
        #: request exceeds a whole budget).
        self.requested = requested
        self.held = held
        #: Bytes counted by :meth:`add_received` so far.
        self.received = 0
        self._settled = False
        #: The block it was handed out from (a block that expired has a newer one).
        self._epoch = 0

    @property
    def settled(self) -> bool:
        return self._settled

    def commit(self, actual_bytes: int) -> None:
        """The download finished with ``actual_bytes``; they enter the ledger durably."""
        if self._settled:
            raise RuntimeError(f"reservation {self.id} was already committed or released")
        if actual_bytes < 0:
            raise ValueError(f"actual_bytes cannot be negative: {actual_bytes}")
        self._limits._settle(self, actual_bytes)

    def add_received(self, nbytes: int) -> None:
        """Count ``nbytes`` more that crossed the network for this download, so that a
        release (a failure, a cancellation mid-body) charges them exactly. A download
        that grows beyond its estimate holds the growth from its process's block as it
        arrives (no I/O), so the other downloads cannot be handed those bytes too."""
        self.received += nbytes
        if self.received > self.held and not self._settled:
            self._limits._grow(self, self.received - self.held)

    def release(self, received: int | None = None) -> None:
        """The download failed or was cancelled: give the estimate back, but charge the
        bytes that did cross the network: ``received`` if given, at least what
        :meth:`add_received` counted. No-op once settled."""
        if self._settled:
            return
        self._limits._settle(self, max(0, self.received, received or 0))

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "settled" if self._settled else "held"
        return f"<Reservation {self.id} {self.held} bytes {state}>"


class _LoopState:
    """The asyncio objects of one event loop (they cannot be shared between loops)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, settings: LimitSettings) -> None:
        self.loop = loop
        self.pacer = AsyncLimiter(
            settings.burst, settings.burst * settings.minute / settings.requests_per_minute
        )
        self.request_lock = asyncio.Lock()
        self.bytes_lock = asyncio.Lock()
        #: Set when a reservation of this process settles: room may have appeared.
        self.bytes_changed = asyncio.Event()
        #: Flushes settled downloads and renews the block's lease (see Limits._tick).
        self.timer: asyncio.TimerHandle | None = None
        #: Retries writing a 429's pause when the store was busy.
        self.backoff_retry: asyncio.TimerHandle | None = None


class Limits:
    """Shared by every species, worker and concurrent ``download_species`` call in a
    process; coordinated with other processes through the store.

    Use it from one event loop at a time (it follows the running loop if that
    changes, e.g. across ``asyncio.run`` calls).

    >>> async def fetch(limits: Limits) -> None:
    ...     await limits.request()  # then send one API request
    ...     with await limits.reserve(500_000) as reservation:
    ...         reservation.commit(482_113)  # the real size of the photo
    """

    def __init__(
        self,
        settings: LimitSettings = LimitSettings(),  # frozen: safe as a shared default
        *,
        clock: Clock | None = None,
        store: LimitStore | None = None,
    ) -> None:
        settings.validate()
        self.settings = settings
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._owns_store = store is None
        self._store = (
            store if store is not None else LimitStore.in_dir(settings.resolved_state_dir())
        )
        if not self._store.readonly:
            # Never let SQLite sleep on the loop's thread for a lock: a busy store
            # raises StoreBusy at once and the waiting is done on a loop timer.
            self._store.set_busy_timeout(0)
        self._request_rules = settings.request_rules()
        self._byte_rules = settings.byte_rules()
        # After the pause of a 429 the pace stays halved this long.
        self._slow_for = 5 * settings.minute
        # Another process's download may settle at any time and nothing tells us: a
        # reservation blocked by bytes held elsewhere asks again this often.
        self._poll = min(1.0, settings.minute / 60)
        self._held: dict[int, Reservation] = {}
        #: The bytes this process holds in the store, handed out to reservations.
        self._block = Block()
        self._next_id = 0
        #: Settlements not written to the store yet.
        self._unsynced = 0
        self._typical = 100_000.0
        # A crashed process's block is charged whole: keep its unused part small.
        self._max_keep = max(1, settings.hourly_bytes // 20)
        # Charges are dated when written, so at most half a percent of the hour late
        # (windows scaled down to seconds, too): they leave the window that much later.
        self._flush_delay = min(FLUSH_DELAY, settings.lease / 6, settings.hour / 200)
        #: 429 pauses this process ordered (host -> until), kept even if the store
        #: was too busy to take them at once.
        self._local_pauses: dict[str, tuple[float, float]] = {}
        self._last_snapshot: LimitsSnapshot | None = None
        self._waits: dict[str, tuple[str, float, int | None, int | None]] = {}
        #: API hosts this process sent requests to: their pauses are the ones it shows.
        self._hosts: set[str] = set()
        self._loop_state: _LoopState | None = None
        self._closed = False

    @property
    def store(self) -> LimitStore:
        return self._store

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def closed(self) -> bool:
        return self._closed

    # -- requests ------------------------------------------------------------------

    async def request(self, on_wait: WaitCallback | None = None, *, host: str = "") -> None:
        """Wait for one API request slot, then record it durably.

        ``host`` (see :func:`api_host`) is the API the request goes to: a 429 from it
        pauses the requests to it alone. Waits on the pace are silent; a wait of
        ``notify_after`` seconds or more on a budget (or a 429 pause) is reported once
        to ``on_wait``.
        """
        self._check_open()
        self._hosts.add(host)
        state = self._state()
        await state.pacer.acquire()
        notified = self._notify_follower("requests", state.request_lock, on_wait)
        async with state.request_lock:
            await self._admit(
                lambda: self._take_request(host),
                "requests",
                on_wait,
                None,
                notified=notified,
            )

    def try_request(self, *, host: str = "") -> bool:
        """Take a request slot now if one is free, without waiting (nor the in-process
        pacer: the store's shared pace still applies)."""
        self._check_open()
        return self._take_request(host).granted

    def _take_request(self, host: str) -> Decision:
        now = self._clock.now()
        local = self._local_pauses.get(host)
        if local is not None and now < local[0]:
            return Decision(False, local[0], PAUSED)
        return self._store.take_request(now, self._request_rules, host)

    def backoff(self, retry_after: float, *, host: str = "") -> None:
        """``host`` answered a 429: nobody, in any process, sends it a request before
        ``retry_after`` seconds from now (at most ``max_pause``); for five (window)
        minutes after that the spacing is doubled and bursts are off."""
        self._check_open()
        self._hosts.add(host)
        retry_after = min(max(0.0, float(retry_after)), self.settings.max_pause)
        paused_until = self._clock.now() + retry_after
        known = self._local_pauses.get(host, (0.0, 0.0))
        self._local_pauses[host] = (
            max(known[0], paused_until),
            max(known[1], paused_until + self._slow_for),
        )
        self._write_pauses()

    def _write_pauses(self) -> None:
        """Share this process's 429 pauses through the store; a busy store is tried
        again on a loop timer (this process holds back meanwhile all the same)."""
        try:
            for host, (paused, slow) in list(self._local_pauses.items()):
                self._store.set_backoff(paused, slow, host)
        except StoreBusy:
            try:
                state = self._state()
            except RuntimeError:  # no loop to retry on: the caller hears it
                raise StoreBusy("the limits store is busy", path=self._store.path) from None
            if state.backoff_retry is None or state.backoff_retry.cancelled():
                state.backoff_retry = state.loop.call_later(_BUSY_RETRY, self._retry_pauses)

    def _retry_pauses(self) -> None:
        if self._loop_state is not None:
            self._loop_state.backoff_retry = None
        if not self._closed:
            self._write_pauses()

    def pauses(self) -> list[Pause]:
        """The 429 pauses and slow-downs still running, per API host, of every process."""
        return self._store.pauses(self._clock.now())

    def clear_pauses(self, host: str | None = None) -> int:
        """End the 429 pauses (and slow-downs) of ``host`` (see :func:`api_host`), or of
        every host, for every process: how many hosts had one."""
        self._check_open()
        if host is None:
            self._local_pauses.clear()
        else:
            self._local_pauses.pop(host, None)
        return self._store.clear_backoff(host)

    # -- bytes ---------------------------------------------------------------------

    async def reserve(self, nbytes: int, on_wait: WaitCallback | None = None) -> Reservation:
        """Wait until the hourly and daily byte windows can take ``nbytes`` (an
        estimate), then hold them until the reservation is settled.

        Bytes are taken from the store in blocks and handed out here: most
        reservations cost no I/O at all (see :class:`~inat_async.limitstore.Block`).
        """
        self._check_open()
        if nbytes < 0:
            raise ValueError(f"cannot reserve a negative number of bytes: {nbytes}")
        held = min(nbytes, self.settings.hourly_bytes, self.settings.daily_bytes)
        state = self._state()
        if not state.bytes_lock.locked() and self._block.free >= held:
            return self._hand_out(held, nbytes)  # in memory: nobody queues before us
        notified = self._notify_follower("bytes", state.bytes_lock, on_wait)
        async with state.bytes_lock:
            await self._admit(
                lambda: self._make_room(held),
                "bytes",
                on_wait,
                state.bytes_changed,
                notified=notified,
            )
            # No await between the grant and handing the reservation over: a
            # cancellation cannot leave bytes handed out without an owner object.
            return self._hand_out(held, nbytes)

    def try_reserve(self, nbytes: int) -> Reservation | None:
        """Hold ``nbytes`` now if the budgets allow, else None (no waiting)."""
        self._check_open()
        if nbytes < 0:
            raise ValueError(f"cannot reserve a negative number of bytes: {nbytes}")
        held = min(nbytes, self.settings.hourly_bytes, self.settings.daily_bytes)
        if not self._make_room(held).granted:
            return None
        return self._hand_out(held, nbytes)

    def flush(self) -> None:
        """Write the downloads settled so far to the store now (they are written in
        batches: after ``FLUSH_EVERY`` of them, ``FLUSH_DELAY`` seconds, or when a
        reservation needs the store). Raises :class:`StoreBusy` if the store is locked."""
        self._check_open()
        self._sync(0)

    def _make_room(self, held: int) -> Decision:
        if self._block.free >= held:
            return _GRANTED
        return self._sync(held)

    def _sync(self, want: int) -> Decision:
        block = self._block
        if self.settings.byte_burst < 1:
            keep = 0  # the opt-in pace counts what is held: hold nothing ahead
        elif want or block.out:
            keep = max(want, min(BLOCK_PHOTOS * round(self._typical), self._max_keep))
        else:
            keep = 0  # idle: hold nothing another process could use
        decision = self._store.sync(
            self._clock.now(), block, self._byte_rules, want=want, keep=keep
        )
        self._unsynced = 0
        return decision

    def _hand_out(self, held: int, requested: int) -> Reservation:
        self._block.out += held
        self._next_id += 1
        reservation = Reservation(self, self._next_id, requested, held)
        reservation._epoch = self._block.epoch
        self._held[reservation.id] = reservation
        self._typical += (held - self._typical) / 16
        self._arm_timer()
        return reservation

    def _grow(self, reservation: Reservation, extra: int) -> None:
        block = self._block
        if reservation._epoch == block.epoch and block.free >= extra:
            block.out += extra
            reservation.held += extra
        # Else the block has no room left: the excess is charged at commit, as the
        # excess of any photo in flight over its estimate.

    def _settle(self, reservation: Reservation, charged: int) -> None:
        # Settled first: if the store fails below, the block's lease runs out and
        # its bytes are charged, which is safe; settling twice would not be.
        reservation._settled = True
        self._held.pop(reservation.id, None)
        block = self._block
        if reservation._epoch == block.epoch:
            block.out -= reservation.held
            block.freed += reservation.held
        else:  # its block expired and was charged meanwhile (see Block.credit)
            block.stale -= reservation.held
        block.charge += charged
        self._unsynced += 1
        if self._closed:
            return
        state = self._loop_state
        waiting = state is not None and state.bytes_lock.locked()
        # Written now after a batch, or when nothing is out any more: the end of a
        # run (or a pause between its downloads) leaves the ledger exact and holds
        # nothing another process could use, even if the loop stops right after.
        if self._unsynced >= FLUSH_EVERY or (block.out == 0 and not waiting):
            with contextlib.suppress(StoreBusy):  # the timer tries again
                self._sync(0)
        self._arm_timer()
        if state is not None:
            state.bytes_changed.set()

    def _arm_timer(self) -> None:
        """One timer on the loop writes settled downloads within ``FLUSH_DELAY`` and
        keeps the block's lease alive while downloads run."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop to keep the lease alive: it may expire and be charged
        state = self._state()
        delay = self._flush_delay if self._unsynced else self.settings.lease / 3
        due = loop.time() + delay
        if state.timer is not None:
            if state.timer.when() <= due:
                return
            state.timer.cancel()
        state.timer = loop.call_at(due, self._tick, state)

    def _tick(self, state: _LoopState) -> None:
        state.timer = None
        if self._closed or (not self._unsynced and self._block.id is None):
            return
        try:
            self._sync(0)
        except StoreBusy:
            state.timer = state.loop.call_later(_BUSY_RETRY, self._tick, state)
            return
        except LimitsError:
            # A failed write only risks the lease running out, which charges the
            # block: too cautious, never over budget. The next tick tries again.
            pass
        if self._block.id is not None or self._unsynced:
            self._arm_timer()

    # -- waiting -------------------------------------------------------------------

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._loop_state
        if state is None or state.loop is not loop:
            state = self._loop_state = _LoopState(loop, self.settings)
        return state

    def _notify_follower(
        self, channel: str, lock: asyncio.Lock, on_wait: WaitCallback | None
    ) -> bool:
        """A task queuing behind one that waits on a budget waits on it too: say so."""
        wait = self._waits.get(channel)
        if on_wait is not None and lock.locked() and wait is not None:
            on_wait(*wait)
            return True
        return False

    async def _admit(
        self,
        attempt: Callable[[], Decision],
        channel: str,
        on_wait: WaitCallback | None,
        changed: asyncio.Event | None,
        *,
        notified: bool,
    ) -> Decision:
        busy_since: float | None = None
        busy_delay = _BUSY_RETRY / 4
        try:
            while True:
                if changed is not None:
                    # Cleared *before* asking: a settlement after the answer wakes us.
                    changed.clear()
                try:
                    decision = attempt()
                except StoreBusy:
                    # Another process holds the lock: wait a moment on a loop timer
                    # (SQLite's own busy wait would sleep on the loop's thread).
                    now = self._clock.now()
                    busy_since = now if busy_since is None else busy_since
                    if now - busy_since > _BUSY_LIMIT:
                        raise LimitsError(
                            f"the limits store stayed locked for {_BUSY_LIMIT:.0f} s",
                            path=self._store.path,
                        ) from None
                    await asyncio.sleep(busy_delay)
                    busy_delay = min(busy_delay * 2, _BUSY_RETRY * 4)
                    continue
                busy_since, busy_delay = None, _BUSY_RETRY / 4
                if decision.granted:
                    return decision
                now = self._clock.now()
                resume_at = max(decision.wait_until, now + _MIN_WAIT)
                if resume_at - now >= self.settings.notify_after:
                    wait = (decision.reason, resume_at, decision.spent, decision.budget)
                    self._waits[channel] = wait
                    if on_wait is not None and not notified:
                        notified = True
                        on_wait(*wait)
                wake_at = min(resume_at, now + self._poll) if decision.poll else resume_at
                await self._sleep(wake_at - now, changed)
        finally:
            self._waits.pop(channel, None)

    @staticmethod
    async def _sleep(delay: float, changed: asyncio.Event | None) -> None:
        if changed is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await changed.wait()

    # -- reading and closing -------------------------------------------------------

    def snapshot(self) -> LimitsSnapshot:
        """Spent budgets of every process of this user, and this process's waits.

        A store too busy to read at this instant gives the last snapshot again."""
        try:
            if self._unsynced and not self._closed:
                self._sync(0)
            return self._read_snapshot()
        except StoreBusy:
            if self._last_snapshot is None:
                raise
            return self._last_snapshot

    def _read_snapshot(self) -> LimitsSnapshot:
        now = self._clock.now()
        usage = self._store.usage(
            now, self._request_rules, self._byte_rules, self._hosts if self._hosts else None
        )
        s = self.settings

        def window(
            name: str, state: WindowState, budget: int, length: float, in_flight: int = 0
        ) -> WindowUsage:
            return WindowUsage(name, state.used, budget, length, in_flight, state.next_free_at)

        self._last_snapshot = LimitsSnapshot(
            at=now,
            requests_minute=window(
                "requests per minute", usage.requests_minute, s.requests_per_minute, s.minute
            ),
            requests_day=window("requests per day", usage.requests_day, s.requests_per_day, s.day),
            bytes_hour=window(
                "bytes per hour", usage.media_hour, s.hourly_bytes, s.hour, usage.in_flight
            ),
            bytes_day=window(
                "bytes per day", usage.media_day, s.daily_bytes, s.day, usage.in_flight
            ),
            bytes_in_flight=usage.in_flight,
            bytes_in_flight_here=usage.in_flight_here,
            paused_until=usage.paused_until,
            slow_until=usage.slow_until,
            waiting=tuple((reason, at) for reason, at, _, _ in self._waits.values()),
            pauses=tuple(self._store.pauses(now)),
        )
        return self._last_snapshot

    def _check_open(self) -> None:
        if self._closed:
            raise LimitsError("these limits were closed", path=self._store.path)

    def close(self) -> None:
        """Stop; reservations still held are charged at their estimate (their
        downloads did not say how much they received)."""
        if self._closed:
            return
        state = self._loop_state
        if state is not None:
            for timer in (state.timer, state.backoff_retry):
                if timer is not None:
                    timer.cancel()
            state.timer = state.backoff_retry = None
        try:
            for reservation in list(self._held.values()):
                reservation.release(received=reservation.held)
            if (self._unsynced or self._block.id is not None) and not self._store.readonly:
                # The last write may wait a little for the lock: the run is over.
                self._store.set_busy_timeout(_BUSY_LIMIT / 10)
                try:
                    with contextlib.suppress(StoreBusy):  # then the lease charges it
                        self._sync(0)
                finally:
                    self._store.set_busy_timeout(0)  # the store may be shared
        finally:
            self._closed = True
            _forget(self)
            if self._owns_store:
                self._store.close()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> Limits:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# The one deliberate piece of global state: the limits are per user, so every run in
# the process must go through the same instance (same pace queue, same leases).
_shared: dict[LimitSettings, Limits] = {}
_shared_lock = threading.Lock()


def default_limits(settings: LimitSettings | None = None) -> Limits:
    """The process-wide :class:`Limits` for these settings (created on first use).

    Equal settings (with the state folder resolved) give the same instance. Different
    settings on the same folder give different instances, which still share the
    store's pace and windows, each checking its own budgets.
    """
    settings = settings if settings is not None else LimitSettings()
    settings = dataclasses.replace(settings, state_dir=settings.resolved_state_dir())
    with _shared_lock:
        limits = _shared.get(settings)
        if limits is None or limits.closed:
            limits = _shared[settings] = Limits(settings)
        return limits


def _forget(limits: Limits) -> None:
    with _shared_lock:
        if _shared.get(limits.settings) is limits:
            del _shared[limits.settings]
