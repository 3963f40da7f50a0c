"""The threads that do the photos' file work: one, and more only when the disk is slow.

Each photo's file work (hash, open, write, close, rename) is one hop off the loop. A
thread and the loop share the GIL, and each system call in a thread hands it over and
back: with the loop's default executor (``cpu_count + 4`` threads) those hand-overs cost
more than the file work itself (28,000 context switches for 2,678 photos against 14,000
with one thread, and 10-25 % more wall time at zero latency, on 2 cores). One thread keeps
up with a local disk. When work waited longer than :data:`GROW_AFTER` in the queue (a
network or failing disk, where each call blocks for tens of milliseconds), another thread
starts, up to :data:`MAX_THREADS`. The threshold is well above what waiting for the GIL
costs a busy run (a few to about twenty milliseconds at zero latency, where more threads
would only make it slower).

:class:`DiskThreads` is a :class:`concurrent.futures.Executor`, handed to ``aiofiles``
(its public ``executor=`` argument), so cancellation behaves as with any executor: work
not started yet is dropped, work running finishes.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

#: Most threads one run uses for its photos' files.
MAX_THREADS = 4
#: A hop that waited this long for a thread adds one (seconds).
GROW_AFTER = 0.25

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(slots=True)
class _Work:
    future: Future[Any]
    call: Callable[[], Any]
    queued: float


class DiskThreads(Executor):
    """A small executor that grows when its work waits (see the module docstring)."""

    def __init__(
        self,
        max_threads: int = MAX_THREADS,
        grow_after: float = GROW_AFTER,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1: {max_threads}")
        self._max = max_threads
        self._grow_after = grow_after
        self._clock = clock
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False

    @property
    def threads(self) -> int:
        """How many threads were started."""
        return len(self._threads)

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._queue.put(_Work(future, lambda: fn(*args, **kwargs), self._clock()))
            if not self._threads:
                self._start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        work = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if work is not None:
                        work.future.cancel()
            for _ in self._threads:
                self._queue.put(None)  # one stop per thread, after the work queued
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()

    def _start(self) -> None:
        thread = threading.Thread(
            target=self._run, name=f"inat-async-disk-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _run(self) -> None:
        while (work := self._queue.get()) is not None:
            if not work.future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            if self._clock() - work.queued > self._grow_after:
                with self._lock:
                    if not self._closed and len(self._threads) < self._max:
                        self._start()
            try:
                result = work.call()
            except BaseException as exc:
                work.future.set_exception(exc)
            else:
                work.future.set_result(result)
            del work  # no reference to a photo's bytes while this thread waits
