"""The photos waiting for a worker, served in the run's species order.

The walk queues a page's photos at once and may be several species ahead of the
workers; workers always take a photo of the earliest species that has one, so
species finish (and their CSV files are written) one after the other, as in the
species list, while the walk prepares the next ones. The walk bounds the backlog
itself (it asks for a page only below its look-ahead); :meth:`Backlog.put` never
waits, and ``on_low`` tells the walk when the backlog falls below ``low_water``.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class Backlog(Generic[T]):
    """A queue of items keyed by rank (lower first, FIFO within a rank).

    >>> backlog: Backlog[str] = Backlog()
    >>> backlog.put(1, ["b1"]); backlog.put(0, ["a1", "a2"])
    >>> backlog.get_nowait(), backlog.get_nowait(), backlog.get_nowait()
    ('a1', 'a2', 'b1')
    """

    def __init__(self, low_water: int = 0, on_low: Callable[[], None] | None = None) -> None:
        self._queues: dict[int, deque[T]] = {}
        #: Ranks with a non-empty queue, as a heap.
        self._ranks: list[int] = []
        self._size = 0
        self._closed = False
        self._getters: deque[asyncio.Future[None]] = deque()
        self._low_water = low_water
        self._on_low = on_low

    def __len__(self) -> int:
        return self._size

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, rank: int, items: Iterable[T]) -> None:
        """Queue ``items`` behind the others of ``rank``; never waits."""
        if self._closed:
            raise RuntimeError("put on a closed backlog")
        queue = self._queues.get(rank)
        added = 0
        for item in items:
            if queue is None:
                queue = self._queues[rank] = deque()
                heapq.heappush(self._ranks, rank)
            queue.append(item)
            added += 1
        self._size += added
        for _ in range(min(added, len(self._getters))):
            self._wake_one()

    def close(self) -> None:
        """No more items: getters drain what is queued, then get None."""
        self._closed = True
        while self._getters:
            self._wake_one()

    def get_nowait(self) -> T | None:
        """The next item, or None when none is queued now."""
        if not self._ranks:
            return None
        rank = self._ranks[0]
        queue = self._queues[rank]
        item = queue.popleft()
        if not queue:
            heapq.heappop(self._ranks)
            del self._queues[rank]
        self._size -= 1
        if self._size + 1 == self._low_water and self._on_low is not None:
            self._on_low()
        return item

    async def get(self) -> T | None:
        """The next item, waiting for one; None once closed and drained."""
        while True:
            item = self.get_nowait()
            if item is not None or self._closed:
                # A wake-up this getter did not need goes to the next one.
                if self._size and self._getters:
                    self._wake_one()
                return item
            waiter = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._getters:
                    self._getters.remove(waiter)
                elif self._size or self._closed:
                    self._wake_one()  # it was woken for an item it will not take
                raise

    def _wake_one(self) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
