"""The script batcher when Redis is slow: calls wait about two slow rounds, not many."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from service.store.batching import MAX_BATCH, MAX_BATCHES_IN_FLIGHT, BatchedScript, ScriptBatcher
from service.store.transport import Command, Transport

SLOW_ROUND_S = 0.2  # e.g. WAIT for a replica that is not there
CALLERS = 26  # the fault-load tests' users, holder and monitor: fewer than 4 full batches


class SlowTransport(Transport):
    """A transport whose every batch takes `round_s`, and answers each command OK."""

    def __init__(self, round_s: float = SLOW_ROUND_S) -> None:
        self.round_s = round_s
        self.rounds: list[int] = []  # calls per batch, in the order sent

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        self.rounds.append(len(commands))
        await asyncio.sleep(self.round_s)
        return ["OK"] * len(commands)

    async def load_script(self, source: str) -> None:
        raise AssertionError("no call answers NOSCRIPT here")

    async def aclose(self) -> None:
        pass


async def latencies_of_trickling_callers(redis: SlowTransport) -> list[float]:
    """CALLERS calls arriving 1 ms apart on a batcher over `redis`; each one's wait."""
    batcher = ScriptBatcher(redis)
    script = BatchedScript("return 1", "0" * 40, batcher, writes=True)

    async def one_call(delay_s: float) -> float:
        await asyncio.sleep(delay_s)
        started = time.monotonic()
        assert await script(["{tag}key"], ["argument"]) == "OK"
        return time.monotonic() - started

    return await asyncio.gather(*(one_call(index * 0.001) for index in range(CALLERS)))


def test_a_slow_redis_costs_a_call_about_two_rounds_at_most() -> None:
    """Calls that queue behind slow batches leave together in the next free one."""
    redis = SlowTransport()
    latencies = asyncio.run(latencies_of_trickling_callers(redis))
    # The first calls fill the free batches one by one; everything queued behind them
    # leaves in the first batch that frees up, not MAX_BATCH at a time.
    assert redis.rounds[:MAX_BATCHES_IN_FLIGHT] == [1] * MAX_BATCHES_IN_FLIGHT
    assert max(redis.rounds) > MAX_BATCH
    assert sum(redis.rounds) == CALLERS
    assert max(latencies) < 2.5 * SLOW_ROUND_S, latencies


def test_a_quick_redis_gets_small_batches() -> None:
    """While rounds are quick, a batch carries at most MAX_BATCH calls."""

    async def burst(redis: SlowTransport) -> None:
        batcher = ScriptBatcher(redis)
        script = BatchedScript("return 1", "0" * 40, batcher, writes=True)
        await asyncio.gather(*(script(["{tag}key"], []) for _ in range(100)))

    redis = SlowTransport(round_s=0.0)
    asyncio.run(burst(redis))
    assert sum(redis.rounds) == 100
    assert max(redis.rounds) == MAX_BATCH
