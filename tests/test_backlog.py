"""The backlog: the earliest species' photos first, FIFO within one, never loses an item."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inat_async.backlog import Backlog


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(1, 4)), max_size=30))
def test_items_come_out_by_rank_then_in_order(puts: list[tuple[int, int]]) -> None:
    backlog: Backlog[tuple[int, int]] = Backlog()
    serial = 0
    for rank, count in puts:
        backlog.put(rank, [(rank, serial + n) for n in range(count)])
        serial += count
    out = []
    while (item := backlog.get_nowait()) is not None:
        out.append(item)
    assert out == sorted(out)
    assert len(out) == serial and len(backlog) == 0


def test_a_rank_put_later_still_goes_first() -> None:
    backlog: Backlog[str] = Backlog()
    backlog.put(2, ["c1", "c2"])
    assert backlog.get_nowait() == "c1"
    backlog.put(0, ["a1"])
    assert [backlog.get_nowait(), backlog.get_nowait(), backlog.get_nowait()] == ["a1", "c2", None]


def test_falling_below_the_low_water_mark_is_reported_once() -> None:
    calls: list[int] = []
    backlog: Backlog[int] = Backlog(low_water=3, on_low=lambda: calls.append(len(backlog)))
    backlog.put(0, range(5))
    for _ in range(5):
        backlog.get_nowait()
    assert calls == [2]
    backlog.put(0, range(3))
    backlog.get_nowait()
    assert calls == [2, 2]


async def test_getters_wait_for_items_and_end_when_closed_and_drained() -> None:
    backlog: Backlog[int] = Backlog()
    got: list[int | None] = []

    async def getter() -> None:
        while (item := await backlog.get()) is not None:
            got.append(item)
            await asyncio.sleep(0)
        got.append(None)

    async with asyncio.TaskGroup() as group:
        for _ in range(3):
            group.create_task(getter())
        await asyncio.sleep(0)
        backlog.put(1, [10, 11])
        backlog.put(0, [1, 2, 3, 4])
        await asyncio.sleep(0)
        backlog.close()
    assert sorted(i for i in got if i is not None) == [1, 2, 3, 4, 10, 11]
    assert got.count(None) == 3
    with pytest.raises(RuntimeError):
        backlog.put(0, [5])


async def test_a_cancelled_getter_passes_its_wake_up_on() -> None:
    backlog: Backlog[int] = Backlog()
    first = asyncio.create_task(backlog.get())
    second = asyncio.create_task(backlog.get())
    await asyncio.sleep(0)
    backlog.put(0, [7])  # wakes `first`...
    first.cancel()  # ... which is cancelled before it runs: `second` must get the item
    assert await asyncio.wait_for(second, 1) == 7
    with pytest.raises(asyncio.CancelledError):
        await first
