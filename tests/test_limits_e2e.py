"""The limits end to end: real processes, real HTTP, the fake server counting what arrives."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from support import start_cli

from inat_async.fetch import PhotoFetcher
from inat_async.limits import Limits, LimitSettings, Reservation
from inat_async.testing import FakeInatServer, FaultKind, build_dataset, run_in_thread

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeInatServer]:
    with run_in_thread(build_dataset({"Apis mellifera": 60, "Mantis religiosa": 30}, seed=5)) as s:
        yield s


def read_until(process: subprocess.Popen[str], needle: str, timeout: float = 30) -> str:
    """Lines of output up to the first that holds ``needle`` (the process keeps running)."""
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"never saw {needle!r}; output:\n{''.join(seen)}")


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    return process.returncode


def test_a_tiny_hourly_budget_pauses_the_run_and_a_restart_stays_paused(
    fake: FakeInatServer, tmp_path: Path
) -> None:
    (tmp_path / "species.csv").write_text("name\nApis mellifera\n")
    budget = 40_000
    args = [
        "run",
        "-o",
        "40",
        "-w",
        "4",
        "--plain",
        "--api-url",
        fake.api_url,
        "--requests-per-minute",
        "100000",
        "--hourly-limit",
        f"{budget}B",
    ]
    sent_before = fake.log.bytes_sent()
    process = start_cli(*args, cwd=tmp_path, state=tmp_path / "state", merge_stderr=True)
    output = read_until(process, "hourly byte budget")
    time.sleep(1.0)
    assert process.poll() is None, "a budget pauses the run; it never ends it"
    spent = fake.log.bytes_sent() - sent_before
    biggest = max(r.bytes_sent for r in fake.log.records("photo"))
    assert 0 < spent <= budget + 4 * biggest  # at most the photos in flight beyond it
    assert stop(process) == 130
    assert "going on at" in output or "resum" in output.lower()

    # The ledger is on disk: a new process knows the hour is spent and waits at once.
    sent_before = fake.log.bytes_sent()
    again = start_cli(*args, cwd=tmp_path, state=tmp_path / "state", merge_stderr=True)
    read_until(again, "hourly byte budget")
    time.sleep(0.5)
    assert again.poll() is None
    assert fake.log.bytes_sent() - sent_before <= 4 * biggest
    assert stop(again) == 130


def test_a_daily_request_budget_of_3_stops_requests_after_3(
    fake: FakeInatServer, tmp_path: Path
) -> None:
    (tmp_path / "species.csv").write_text("name\nApis mellifera\nMantis religiosa\n")
    before = len(fake.log.api_requests())
    process = start_cli(
        "run",
        "-o",
        "500",
        "--plain",
        "--api-url",
        fake.api_url,
        "--requests-per-day",
        "3",
        cwd=tmp_path,
        state=tmp_path / "state",
        merge_stderr=True,
    )
    read_until(process, "daily request budget")
    time.sleep(1.0)
    assert process.poll() is None
    assert len(fake.log.api_requests()) - before == 3
    assert stop(process) == 130


PACED_CLIENT = textwrap.dedent(
    """
    import asyncio, sys
    import aiohttp
    from inat_async import InatClient, LimitSettings, Limits

    async def main(api_url, state_dir, count):
        settings = LimitSettings(
            requests_per_minute=10, burst=2, minute=1.0, request_margin=0.1, state_dir=state_dir
        )
        async with Limits(settings) as limits, aiohttp.ClientSession() as session:
            client = InatClient(session, limits=limits, api_url=api_url)
            for _ in range(count):
                await client.resolve_taxon("Apis mellifera")

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


def test_two_processes_share_one_request_window(fake: FakeInatServer, tmp_path: Path) -> None:
    script = tmp_path / "paced.py"
    script.write_text(PACED_CLIENT)
    before = len(fake.log.api_requests())
    state = tmp_path / "shared-state"
    processes = [
        subprocess.Popen([sys.executable, str(script), fake.api_url, str(state), "12"])
        for _ in range(2)
    ]
    for process in processes:
        assert process.wait(timeout=60) == 0
    times = sorted(fake.log.api_times()[before:])
    assert len(times) == 24
    # The server's clock never sees more than 10 in any closed 1-second window: the
    # margin (0.1 s of this scaled minute) absorbs the jitter of connecting and loopback.
    for i, first in enumerate(times):
        assert sum(1 for t in times[i:] if t <= first + 1.0) <= 10, times
    # ...and the shared budget was used, not wasted: 24 requests at 10/s after a burst of 2.
    assert times[-1] - times[0] < 4.0


async def test_a_download_cancelled_mid_body_charges_the_bytes_it_received(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled after 300,000 of 1,000,000 bytes: those 300,000 count, no more, no less."""
    sent = 300_000
    hold, arrived = asyncio.Event(), asyncio.Event()
    count = Reservation.add_received

    def counting(self: Reservation, nbytes: int) -> None:
        count(self, nbytes)
        if self.received >= sent:
            arrived.set()

    monkeypatch.setattr(Reservation, "add_received", counting)

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.content_length = 1_000_000
        await response.prepare(request)
        await response.write(b"\xff" * sent)
        await hold.wait()  # never sends the rest
        return response

    app = web.Application()
    app.router.add_get("/photo.jpg", trickle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    settings = LimitSettings(state_dir=tmp_path / "state", hourly_bytes=10**9)
    try:
        async with Limits(settings) as limits, aiohttp.ClientSession() as session:
            fetcher = PhotoFetcher(session, limits=limits, estimate=800_000)
            task = asyncio.create_task(
                fetcher.download(
                    f"http://127.0.0.1:{port}/photo.jpg",
                    tmp_path / ".1_0.part",
                    lambda _: tmp_path / "1_0.jpg",
                )
            )
            async with asyncio.timeout(10):
                await arrived.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert [n for _, n in limits.store.history("media")] == [sent]
            assert limits.store.held() == []
        assert not (tmp_path / ".1_0.part").exists()
    finally:
        hold.set()
        await runner.cleanup()


def test_a_mirrors_429_pauses_that_mirror_only_for_minutes_and_can_be_cleared(
    fake: FakeInatServer, tmp_path: Path
) -> None:
    """A mirror answered `Retry-After: 99999999`: that blocked every later run of the
    user, against any server, for a day. Now it holds back that mirror alone."""
    (tmp_path / "species.csv").write_text("name\nApis mellifera\n")
    state = tmp_path / "state"
    with run_in_thread(build_dataset({"Apis mellifera": 5}, seed=3)) as mirror:
        mirror.faults.fail_api(FaultKind.TOO_MANY_REQUESTS, retry_after=99_999_999, times=None)
        blocked = start_cli(
            *("run", "-o", "3", "--plain", "--api-url", mirror.api_url, "--out", "m"),
            cwd=tmp_path,
            state=state,
            merge_stderr=True,
        )
        line = read_until(blocked, "asked to slow down").splitlines()[-1]
        assert "paused: the API asked to slow down (HTTP 429); going on at" in line
        assert "reached" not in line
        assert stop(blocked) == 130
        mirror_host = mirror.api_url.split("/")[2]
    healthy = start_cli(
        *("run", "-o", "3", "--plain", "--api-url", fake.api_url, "--out", "h"),
        cwd=tmp_path,
        state=state,
    )
    _, err = healthy.communicate(timeout=60)
    assert healthy.returncode == 0, err
    status = start_cli("status", "--out", "h", cwd=tmp_path, state=state)
    shown, _ = status.communicate(timeout=60)
    assert status.returncode == 0
    paused = next(line for line in shown.splitlines() if line.startswith("paused"))
    assert f"{mirror_host} asked to slow down (HTTP 429)" in paused
    assert "--clear-pause" in shown
    cleared = start_cli("status", "--out", "h", "--clear-pause", cwd=tmp_path, state=state)
    shown, _ = cleared.communicate(timeout=60)
    assert cleared.returncode == 0
    assert "cleared the HTTP 429 pauses of 1 API host(s)" in shown
    assert not any(line.startswith(("paused", "slowed")) for line in shown.splitlines())
