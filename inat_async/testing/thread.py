"""Serving a :class:`FakeInatServer` from a background thread, for synchronous tests.

A CLI subprocess test cannot ``await``: it starts the server here, points the CLI at
``server.api_url``, and reads ``server.log`` afterwards. The server runs its own event
loop in the thread; its ``faults``, ``settings`` and ``log`` are safe to use from the test's
thread while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data import FakeDataset
    from .server import FakeInatServer


class ServerThread:
    """``with ServerThread(server) as server:`` serves until the block ends."""

    def __init__(self, server: FakeInatServer, *, start_timeout: float = 10.0) -> None:
        self.server = server
        self._start_timeout = start_timeout
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="fake-inat-server", daemon=True)

    def start(self) -> FakeInatServer:
        self._thread.start()
        if not self._ready.wait(self._start_timeout):
            raise RuntimeError("the fake iNaturalist server did not start in time")
        if self._error is not None:
            raise RuntimeError("the fake iNaturalist server failed to start") from self._error
        return self.server

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout=10)

    def __enter__(self) -> FakeInatServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as error:  # reported to the starting thread
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.close()


def run_in_thread(dataset: FakeDataset | None = None, **options: Any) -> ServerThread:
    """``with run_in_thread(dataset, api_latency=0.05) as server:`` (options as for
    :class:`FakeInatServer`)."""
    from .server import FakeInatServer

    return ServerThread(FakeInatServer(dataset, **options))
