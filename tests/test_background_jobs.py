"""The app's background jobs (the reschedule healer, the rate-limit flush) and its shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine

import fakeredis
import pytest
from starlette.testclient import TestClient

from service import app as app_module
from service.app import create_app, every
from service.outage import BusyScriptError, OutageLog
from service.settings import Settings

BOUND_S = 5.0  # a stop that takes longer than this is a hang


async def swallows_cancellation() -> None:
    """What a redis-py command on Python 3.11 sometimes does with a CancelledError."""
    try:
        await asyncio.sleep(1)
    except asyncio.CancelledError:
        raise ConnectionError("Error UNKNOWN while writing to socket. Connection lost.") from None


def finishes(scenario: Coroutine[None, None, None]) -> bool:
    """Whether `scenario` ends within BOUND_S, run in a thread so that a hang fails a test."""
    ended = threading.Event()

    def run() -> None:
        asyncio.run(scenario)
        ended.set()

    threading.Thread(target=run, daemon=True).start()
    return ended.wait(BOUND_S)


async def run_for(
    seconds: float,
    job: Callable[[], Awaitable[object]],
    name: str,
    outage: OutageLog | None = None,
) -> None:
    """`every` on `job` for `seconds`, then stopped as the app's shutdown stops it."""
    task = asyncio.create_task(every(0.001, job, name, outage or OutageLog()))
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_a_job_runs_again_and_again() -> None:
    """The job runs every interval while the app runs."""
    runs = 0

    async def count() -> None:
        nonlocal runs
        runs += 1

    assert finishes(run_for(0.05, count, "counter"))
    assert runs >= 3


def test_a_failing_job_is_logged_and_runs_again(caplog: pytest.LogCaptureFixture) -> None:
    """An unexpected error in one round is logged with the job's name; the next round runs."""
    runs = 0

    async def fail() -> None:
        nonlocal runs
        runs += 1
        raise ValueError("broken")

    assert finishes(run_for(0.05, fail, "the failing job"))
    assert runs >= 2
    assert "the failing job failed; trying again next round" in caplog.text


def test_a_job_stops_even_when_its_round_swallows_the_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A cancellation lost inside a round still stops the loop, and is not logged as a failure."""
    stopped = finishes(run_for(0.05, swallows_cancellation, "swallower"))  # inside a round
    assert stopped, "the job went on after its task was cancelled"
    assert "swallower failed" not in caplog.text


def test_the_app_shuts_down_while_a_job_swallows_the_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lifespan's end returns (so `slotlock serve` exits) with a round in flight."""
    monkeypatch.setattr(app_module, "HEAL_INTERVAL_S", 0.001)
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(version=(7,)))
    app = create_app(Settings(), redis)
    in_round = threading.Event()

    async def heal() -> None:
        in_round.set()
        await swallows_cancellation()

    monkeypatch.setattr(app.services.rescheduler, "heal", heal)
    client = TestClient(app)
    client.__enter__()
    assert in_round.wait(BOUND_S)
    stopped = threading.Event()

    def shut_down() -> None:
        client.__exit__(None, None, None)
        stopped.set()

    # In a thread of its own: a hang must fail this test, not stop the suite.
    threading.Thread(target=shut_down, daemon=True).start()
    assert stopped.wait(BOUND_S), "the app's shutdown waited for a background job forever"


def test_a_job_in_a_redis_outage_logs_its_start_and_end_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A job that meets BUSY every round logs one line, no traceback, and one when it is over."""
    outage = OutageLog()
    outage.QUIET_S = 0.05
    busy_until_s = 0.0

    async def flush() -> bool:
        if asyncio.get_running_loop().time() < busy_until_s:
            raise BusyScriptError("Redis is busy running a script.")
        return True

    async def scenario() -> None:
        nonlocal busy_until_s
        busy_until_s = asyncio.get_running_loop().time() + 0.1
        await run_for(0.3, flush, "rate limits", outage)

    assert finishes(scenario())
    assert caplog.text.count("redis unreachable: BusyScriptError") == 1
    assert caplog.text.count("redis reachable again") == 1
    assert "Traceback" not in caplog.text


def test_calls_that_fail_and_succeed_by_turns_are_one_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Reads that succeed between refused writes do not end the outage (OOM, one shard down)."""

    async def scenario() -> None:
        outage = OutageLog()
        outage.QUIET_S = 0.05
        for _ in range(20):
            outage.failure(ConnectionError("refused"))
            outage.success()
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)  # quiet: the end is logged without another call
        assert not outage.in_outage

    assert finishes(scenario())
    assert caplog.text.count("redis unreachable") == 1
    assert caplog.text.count("redis reachable again after 20 failed requests") == 1
