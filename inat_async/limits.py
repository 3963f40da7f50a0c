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
from .limitstore import ByteRules, Decision, LimitStore, Pause, RequestRules, WindowState

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

    __slots__ = ("_limits", "_settled", "held", "id", "received", "requested")

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
        release (a failure, a cancellation mid-body) charges them exactly."""
        self.received += nbytes

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
        self.renewal: asyncio.TimerHandle | None = None


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
        self._request_rules = settings.request_rules()
        self._byte_rules = settings.byte_rules()
        # After the pause of a 429 the pace stays halved this long.
        self._slow_for = 5 * settings.minute
        # Another process's download may settle at any time and nothing tells us: a
        # reservation blocked by bytes held elsewhere asks again this often.
        self._poll = min(1.0, settings.minute / 60)
        self._held: dict[int, Reservation] = {}
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
                lambda: self._store.take_request(self._clock.now(), self._request_rules, host),
                "requests",
                on_wait,
                None,
                notified=notified,
            )

    def try_request(self, *, host: str = "") -> bool:
        """Take a request slot now if one is free, without waiting (nor the in-process
        pacer: the store's shared pace still applies)."""
        self._check_open()
        return self._store.take_request(self._clock.now(), self._request_rules, host).granted

    def backoff(self, retry_after: float, *, host: str = "") -> None:
        """``host`` answered a 429: nobody, in any process, sends it a request before
        ``retry_after`` seconds from now (at most ``max_pause``); for five (window)
        minutes after that the spacing is doubled and bursts are off."""
        self._check_open()
        self._hosts.add(host)
        retry_after = min(max(0.0, float(retry_after)), self.settings.max_pause)
        paused_until = self._clock.now() + retry_after
        self._store.set_backoff(paused_until, paused_until + self._slow_for, host)

    def pauses(self) -> list[Pause]:
        """The 429 pauses and slow-downs still running, per API host, of every process."""
        return self._store.pauses(self._clock.now())

    def clear_pauses(self, host: str | None = None) -> int:
        """End the 429 pauses (and slow-downs) of ``host`` (see :func:`api_host`), or of
        every host, for every process: how many hosts had one."""
        self._check_open()
        return self._store.clear_backoff(host)

    # -- bytes ---------------------------------------------------------------------

    async def reserve(self, nbytes: int, on_wait: WaitCallback | None = None) -> Reservation:
        """Wait until the hourly and daily byte windows can take ``nbytes`` (an
        estimate), then hold them until the reservation is settled."""
        self._check_open()
        if nbytes < 0:
            raise ValueError(f"cannot reserve a negative number of bytes: {nbytes}")
        state = self._state()
        notified = self._notify_follower("bytes", state.bytes_lock, on_wait)
        async with state.bytes_lock:
            decision = await self._admit(
                lambda: self._store.try_reserve(self._clock.now(), nbytes, self._byte_rules),
                "bytes",
                on_wait,
                state.bytes_changed,
                notified=notified,
            )
            # No await between the grant and handing the reservation over: a
            # cancellation cannot leave a held row without an owner object.
            return self._hold(decision, nbytes)

    def try_reserve(self, nbytes: int) -> Reservation | None:
        """Hold ``nbytes`` now if the budgets allow, else None (no waiting)."""
        self._check_open()
        decision = self._store.try_reserve(self._clock.now(), nbytes, self._byte_rules)
        return self._hold(decision, nbytes) if decision.granted else None

    def _hold(self, decision: Decision, requested: int) -> Reservation:
        assert decision.reservation_id is not None
        reservation = Reservation(self, decision.reservation_id, requested, decision.held)
        self._held[reservation.id] = reservation
        self._arm_renewal()
        return reservation

    def _settle(self, reservation: Reservation, charged: int) -> None:
        # Settled first: if the store fails below, the row's lease runs out and the
        # estimate is charged, which is safe; settling twice would not be.
        reservation._settled = True
        self._held.pop(reservation.id, None)
        if self._closed:
            return
        self._store.settle(
            self._clock.now(),
            reservation.id,
            estimate=reservation.held,
            charged=charged,
            rules=self._byte_rules,
        )
        state = self._loop_state
        if state is not None:
            state.bytes_changed.set()

    def _arm_renewal(self) -> None:
        """Keep the leases of held reservations alive with a timer on the loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop to keep them alive: they may expire and be charged
        state = self._state()
        if state.renewal is None:
            state.renewal = loop.call_later(self.settings.lease / 3, self._renew, state)

    def _renew(self, state: _LoopState) -> None:
        state.renewal = None
        if self._closed or not self._held:
            return
        with contextlib.suppress(LimitsError):
            # A failed renewal only risks the lease running out, which charges the
            # estimate: too cautious, never over budget. The next tick tries again.
            self._store.renew(self._clock.now(), self._held, self.settings.lease)
        state.renewal = state.loop.call_later(self.settings.lease / 3, self._renew, state)

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
        try:
            while True:
                if changed is not None:
                    # Cleared *before* asking: a settlement after the answer wakes us.
                    changed.clear()
                decision = attempt()
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
        """Spent budgets of every process of this user, and this process's waits."""
        now = self._clock.now()
        usage = self._store.usage(
            now, self._request_rules, self._byte_rules, self._hosts if self._hosts else None
        )
        s = self.settings

        def window(
            name: str, state: WindowState, budget: int, length: float, in_flight: int = 0
        ) -> WindowUsage:
            return WindowUsage(name, state.used, budget, length, in_flight, state.next_free_at)

        return LimitsSnapshot(
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

    def _check_open(self) -> None:
        if self._closed:
            raise LimitsError("these limits were closed", path=self._store.path)

    def close(self) -> None:
        """Stop; reservations still held are charged at their estimate (their
        downloads did not say how much they received)."""
        if self._closed:
            return
        state = self._loop_state
        if state is not None and state.renewal is not None:
            state.renewal.cancel()
            state.renewal = None
        try:
            for reservation in list(self._held.values()):
                reservation.release(received=reservation.held)
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
