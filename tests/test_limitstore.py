"""The durable ledger: exact sliding windows, durability, cross-connection atomicity, leases."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inat_async.errors import LimitsError
from inat_async.limitstore import (
    FILENAME,
    PRUNE_CHUNK,
    ByteRules,
    LimitStore,
    RequestRules,
)

T0 = 1_000_000.0
#: A request budget that only the windows under test can stop (no pace).
WINDOWS_ONLY = RequestRules(per_minute=60, burst=60, per_day=100)
#: Byte rules without the hourly pace, so only the windows decide.
BYTES = ByteRules(hourly=1_000, daily=2_500, hour=100.0, day=400.0, burst=1.0, lease=30.0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LimitStore]:
    s = LimitStore.in_dir(tmp_path)
    yield s
    s.close()


def in_window(rows: list[tuple[float, int]], now: float, length: float) -> int:
    """The naive definition the store's cumulative arithmetic must agree with."""
    return sum(amount for at, amount in rows if at > now - length)


# -- requests -------------------------------------------------------------------------


def test_minute_window_is_exact_and_says_when_it_frees(store: LimitStore) -> None:
    for i in range(60):
        assert store.take_request(T0 + i * 0.5, WINDOWS_ONLY).granted
    refused = store.take_request(T0 + 30.0, WINDOWS_ONLY)
    assert not refused.granted
    assert refused.reason == "requests per minute"
    # The oldest slot (at T0) leaves the window (t - 60, t] at exactly T0 + 60.
    assert refused.wait_until == pytest.approx(T0 + 60.0)
    assert not store.take_request(T0 + 59.999, WINDOWS_ONLY).granted
    assert store.take_request(T0 + 60.0, WINDOWS_ONLY).granted
    assert not store.take_request(T0 + 60.0, WINDOWS_ONLY).granted


def test_daily_budget_stops_requests(store: LimitStore) -> None:
    rules = RequestRules(per_minute=60, burst=5, per_day=3)
    assert [store.take_request(T0 + i * 10, rules).granted for i in range(3)] == [True] * 3
    refused = store.take_request(T0 + 1_000, rules)
    assert (refused.granted, refused.reason) == (False, "daily request budget")
    assert refused.wait_until == pytest.approx(T0 + 86_400)
    assert store.take_request(T0 + 86_400, rules).granted


def test_shared_pace_is_burst_then_steady(store: LimitStore) -> None:
    rules = RequestRules(per_minute=60, burst=5, per_day=10_000)
    assert all(store.take_request(T0, rules).granted for _ in range(5))
    refused = store.take_request(T0, rules)
    assert (refused.granted, refused.reason) == (False, "request pace")
    assert refused.wait_until == pytest.approx(T0 + 1.0)
    assert store.take_request(T0 + 1.0, rules).granted
    assert not store.take_request(T0 + 1.5, rules).granted
    assert store.take_request(T0 + 2.0, rules).granted


def test_backoff_pauses_then_slows(store: LimitStore) -> None:
    rules = RequestRules(per_minute=60, burst=1, per_day=10_000)
    store.set_backoff(T0 + 30, T0 + 100)
    store.set_backoff(T0 + 10, T0 + 20)  # an earlier pause never shortens a later one
    refused = store.take_request(T0 + 5, rules)
    assert refused.reason.startswith("API asked to slow down")
    assert refused.wait_until == T0 + 30
    assert store.take_request(T0 + 30, rules).granted
    # slowed: 2 s apart instead of 1 s
    assert not store.take_request(T0 + 31, rules).granted
    assert store.take_request(T0 + 32, rules).granted


# -- bytes ----------------------------------------------------------------------------


def test_reservations_count_until_settled(store: LimitStore) -> None:
    a = store.try_reserve(T0, 600, BYTES)
    assert a.granted
    refused = store.try_reserve(T0 + 1, 600, BYTES)
    assert (refused.granted, refused.reason) == (False, "hourly byte budget")
    assert a.reservation_id is not None
    store.settle(T0 + 2, a.reservation_id, estimate=600, charged=500, rules=BYTES)
    assert store.history("media") == [(T0 + 2, 500)]
    assert store.try_reserve(T0 + 3, 500, BYTES).granted  # 500 + 500 <= 1000
    refused = store.try_reserve(T0 + 3, 1, BYTES)
    assert not refused.granted
    assert refused.wait_until == pytest.approx(T0 + 102)  # when the 500 leave the hour


def test_wake_time_lets_exactly_enough_leave(store: LimitStore) -> None:
    for i, size in enumerate([100, 200, 300, 400]):
        d = store.try_reserve(T0 + i, size, BYTES)
        assert d.reservation_id is not None
        store.settle(T0 + i, d.reservation_id, estimate=size, charged=size, rules=BYTES)
    # 1000 spent; 250 more needs the 100 and the 200 gone: the 200 leaves at T0 + 1 + 100.
    refused = store.try_reserve(T0 + 10, 250, BYTES)
    assert refused.wait_until == pytest.approx(T0 + 101)
    assert not store.try_reserve(T0 + 100.5, 250, BYTES).granted
    assert store.try_reserve(T0 + 101, 250, BYTES).granted


def test_daily_byte_window(store: LimitStore) -> None:
    now = T0
    for _ in range(5):
        d = store.try_reserve(now, 500, BYTES)
        assert d.granted and d.reservation_id is not None
        store.settle(now, d.reservation_id, estimate=500, charged=500, rules=BYTES)
        now += 60  # never more than two in one hour
    refused = store.try_reserve(now, 1, BYTES)
    assert (refused.granted, refused.reason) == (False, "daily byte budget")
    assert refused.wait_until == pytest.approx(T0 + 400)


def test_oversized_request_is_clamped_and_admitted_alone(store: LimitStore) -> None:
    big = store.try_reserve(T0, 5_000, BYTES)
    assert big.granted and big.held == 1_000
    assert not store.try_reserve(T0, 1, BYTES).granted


def test_hourly_pace_spreads_the_budget() -> None:
    rules = ByteRules(hourly=1_000, daily=10_000, hour=100.0, day=1_000.0, burst=0.2)
    s = LimitStore(":memory:")
    # 200 bytes back to back, then the other 800 spread over the 100 s: 8 per second,
    # so that the pace alone never puts more than the budget in a window.
    assert s.try_reserve(T0, 200, rules).granted
    refused = s.try_reserve(T0, 100, rules)
    assert (refused.granted, refused.reason) == (False, "hourly byte pace")
    assert refused.wait_until == pytest.approx(T0 + 12.5)
    assert not s.try_reserve(T0 + 12.4, 100, rules).granted
    assert s.try_reserve(T0 + 12.5, 100, rules).granted
    s.close()


def test_pace_refunds_what_a_failed_download_did_not_use() -> None:
    rules = ByteRules(hourly=1_000, daily=10_000, hour=100.0, day=1_000.0, burst=0.2)
    s = LimitStore(":memory:")
    d = s.try_reserve(T0, 200, rules)
    assert d.reservation_id is not None
    s.settle(T0, d.reservation_id, estimate=200, charged=0, rules=rules)
    assert s.try_reserve(T0, 200, rules).granted
    s.close()


# -- durability, processes, leases ----------------------------------------------------


def test_reopened_store_keeps_spent_budget(tmp_path: Path) -> None:
    with LimitStore.in_dir(tmp_path) as first:
        for i in range(3):
            assert first.take_request(T0 + i, RequestRules(60, 5, 3)).granted
        d = first.try_reserve(T0, 900, BYTES)
        assert d.reservation_id is not None
        first.settle(T0 + 1, d.reservation_id, estimate=900, charged=950, rules=BYTES)
    assert (tmp_path / FILENAME).exists()
    with LimitStore.in_dir(tmp_path) as again:
        usage = again.usage(T0 + 5, RequestRules(60, 5, 3), BYTES)
        assert usage.requests_day.used == 3
        assert usage.media_hour.used == 950
        assert not again.take_request(T0 + 5, RequestRules(60, 5, 3)).granted
        assert not again.try_reserve(T0 + 5, 100, BYTES).granted


def test_two_connections_share_the_windows(tmp_path: Path) -> None:
    a, b = LimitStore.in_dir(tmp_path), LimitStore.in_dir(tmp_path)
    granted = [(a if i % 2 else b).take_request(T0, WINDOWS_ONLY).granted for i in range(80)]
    assert granted.count(True) == 60
    ra = a.try_reserve(T0, 700, BYTES)
    assert ra.granted
    refused = b.try_reserve(T0, 700, BYTES)
    assert not refused.granted
    assert refused.poll  # bytes held by another owner may come back any time
    a.close()
    b.close()


def test_concurrent_connections_never_overbook(tmp_path: Path) -> None:
    """Threads with their own connections race for the same budget (like processes)."""
    rules = ByteRules(hourly=10_000, daily=10_000, hour=1e6, day=1e6, burst=1.0)
    LimitStore.in_dir(tmp_path).close()  # create the schema once
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            with LimitStore.in_dir(tmp_path) as s:
                for _ in range(200):
                    d = s.try_reserve(T0, 137, rules)
                    if d.granted and d.reservation_id is not None:
                        s.settle(T0, d.reservation_id, estimate=137, charged=137, rules=rules)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with LimitStore.in_dir(tmp_path) as s:
        total = sum(amount for _, amount in s.history("media"))
    assert total == (10_000 // 137) * 137


def test_crashed_owner_is_charged_after_its_lease(tmp_path: Path) -> None:
    crashed = LimitStore.in_dir(tmp_path)
    assert crashed.try_reserve(T0, 800, BYTES).granted
    crashed.close()  # never settles: the process died
    other = LimitStore.in_dir(tmp_path)
    refused = other.try_reserve(T0 + 10, 800, BYTES)
    assert not refused.granted  # the lease (30 s) still holds the bytes
    assert other.try_reserve(T0 + 30, 100, BYTES).granted
    # The dead download is charged at its estimate: we cannot know what it received.
    assert other.history("media") == [(T0 + 30, 800)]
    assert [h.nbytes for h in other.held()] == [100]
    other.close()


def test_renewed_lease_survives_and_late_settle_charges_only_the_excess(tmp_path: Path) -> None:
    owner, other = LimitStore.in_dir(tmp_path), LimitStore.in_dir(tmp_path)
    d = owner.try_reserve(T0, 300, BYTES)
    assert d.reservation_id is not None
    owner.renew(T0 + 20, [d.reservation_id], BYTES.lease)
    other.try_reserve(T0 + 40, 1, BYTES)  # would have expired at T0 + 30 without renewal
    assert d.reservation_id in {h.id for h in other.held()}
    other.try_reserve(T0 + 60, 1, BYTES)  # now it expires and is charged 300
    owner.settle(T0 + 61, d.reservation_id, estimate=300, charged=350, rules=BYTES)
    assert owner.history("media") == [(T0 + 60, 300), (T0 + 61, 50)]
    owner.close()
    other.close()


def test_rows_are_never_dated_before_the_newest(store: LimitStore) -> None:
    """Another process's clock a little behind keeps rows ordered (on the safe side)."""
    assert store.take_request(T0 + 1.0, WINDOWS_ONLY).granted
    assert store.take_request(T0 + 0.5, WINDOWS_ONLY).granted
    assert store.history("requests") == [(T0 + 1.0, 1), (T0 + 1.0, 1)]


def test_old_rows_are_pruned_and_counts_stay_exact(store: LimitStore) -> None:
    rules = RequestRules(per_minute=60, burst=60, per_day=100, minute=60.0, day=600.0)
    for i in range(10):
        store.take_request(T0 + i, rules)
    for i in range(5):
        store.take_request(T0 + 10_000 + i, rules)
    assert len(store.history("requests")) == 5
    assert store.usage(T0 + 10_004, rules, BYTES).requests_minute.used == 5


def test_old_rows_are_pruned_in_small_chunks(store: LimitStore) -> None:
    """A day of a million rows deleted at once held the lock every run shares for 0.8 s:
    each decision now deletes at most PRUNE_CHUNK, the next ones go on until done."""
    rules = RequestRules(per_minute=60, burst=60, per_day=100, minute=60.0, day=600.0)
    old = 2 * PRUNE_CHUNK + 500
    store._conn.executemany(
        "INSERT INTO requests (at, amount, cum) VALUES (?, 1, ?)",
        [(T0 + i * 0.001, i + 1) for i in range(old)],
    )
    now = T0 + 10_000
    remaining = []
    for i in range(4):
        assert store.take_request(now + i, rules).granted
        remaining.append(len(store.history("requests")))
    # Each transaction deleted at most a chunk; then the old rows were gone.
    assert remaining == [old + 1 - PRUNE_CHUNK, old + 2 - 2 * PRUNE_CHUNK, 3, 4]
    assert store.usage(now + 3, rules, BYTES).requests_minute.used == 4


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    LimitStore.in_dir(tmp_path).close()
    conn = sqlite3.connect(tmp_path / FILENAME)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(LimitsError, match="newer"):
        LimitStore.in_dir(tmp_path)


def test_unusable_state_dir_is_a_limits_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(LimitsError, match="cannot open the limits store"):
        LimitStore.in_dir(blocker / "state")


def test_uses_wal(store: LimitStore, tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / FILENAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


# -- properties -----------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.floats(0, 3), st.integers(1, 4)),  # (gap before, requests at once)
        min_size=1,
        max_size=80,
    ),
    st.integers(1, 6),
    st.integers(1, 12),
)
def test_request_windows_hold_for_any_arrivals(
    arrivals: list[tuple[float, int]], burst: int, per_minute: int
) -> None:
    rules = RequestRules(
        per_minute=max(per_minute, burst), burst=burst, per_day=25, minute=10.0, day=60.0
    )
    s = LimitStore(":memory:")
    now = T0
    for gap, count in arrivals:
        now += gap
        for _ in range(count):
            s.take_request(now, rules)
    times = [at for at, _ in s.history("requests")]
    s.close()
    for t in times:
        assert sum(1 for u in times if t - rules.minute < u <= t) <= rules.per_minute
        assert sum(1 for u in times if t - rules.day < u <= t) <= rules.per_day
    # The pace: any span d holds at most burst + d / interval requests.
    for i, t in enumerate(times):
        for j in range(i, len(times)):
            span = times[j] - t
            assert j - i + 1 <= rules.burst + span / rules.interval + 1e-6
