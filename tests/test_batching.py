"""The script batcher: calls wait about two slow rounds at most, and a batch written at once
is settled as its replies say."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from service.store.batching import MAX_BATCH, MAX_BATCHES_IN_FLIGHT, BatchedScript, ScriptBatcher
from service.store.raw_redis import pack
from service.store.transport import Command, Transport, evalsha

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


# --- batches written at once (the raw transport's fast path) ---


class WritingTransport(Transport):
    """Writes each batch at once and answers it a loop turn later with `answer(commands)`;
    what the slow path (run_scripts) sends is kept in `pipelined`."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.written: list[int] = []  # calls per batch written at once
        self.pipelined: list[Command] = []
        self.loaded: list[str] = []

    def write_scripts(self, calls: Sequence[Any]) -> asyncio.Future[list[Any]] | None:
        commands = evalsha(calls, 0, 0)
        b"".join([pack(command) for command in commands])  # as RawTransport: may raise
        self.written.append(len(commands))
        replies = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(self._settle, replies, commands)
        return replies

    def _settle(self, replies: asyncio.Future[list[Any]], commands: list[Command]) -> None:
        try:
            replies.set_result(self.answer(commands))
        except Exception as error:  # the connection broke
            replies.set_exception(error)

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        self.pipelined += commands
        return [f"again {command[3]}" for command in commands]

    async def load_script(self, source: str) -> None:
        self.loaded.append(source)

    async def aclose(self) -> None:
        pass


def calls_through(redis: WritingTransport, keys: list[Any]) -> list[Any]:
    """One call per key, all at once, through a batcher over `redis`: each reply or error."""

    async def calls() -> list[Any]:
        script = BatchedScript("return KEYS[1]", "0" * 40, ScriptBatcher(redis), writes=True)
        every = asyncio.gather(*(script([key], []) for key in keys), return_exceptions=True)
        return await asyncio.wait_for(every, 2)  # a call never settled fails, not hangs

    return asyncio.run(calls())


def test_a_written_batch_is_answered_from_its_replies() -> None:
    """Each call gets its own reply, in order, and nothing goes the slow way."""
    redis = WritingTransport(lambda commands: [f"reply {command[3]}" for command in commands])
    keys = [f"key {index}" for index in range(MAX_BATCHES_IN_FLIGHT + 2)]
    assert calls_through(redis, keys) == [f"reply {key}" for key in keys]
    # The first calls leave one by one while batches are free; the last two queue together.
    assert redis.written == [1] * MAX_BATCHES_IN_FLIGHT + [2]
    assert redis.pipelined == []


def test_a_lost_script_in_a_written_batch_is_loaded_and_sent_again() -> None:
    """NOSCRIPT (Redis restarted) sends the batch's lost calls again; the others keep theirs."""

    def answer(commands: list[Command]) -> list[Any]:
        return [NoScriptError("NOSCRIPT") if command[3] == "b" else "kept" for command in commands]

    redis = WritingTransport(answer)
    assert calls_through(redis, ["a", "b", "c"]) == ["kept", "again b", "kept"]
    assert redis.loaded == ["return KEYS[1]"]
    assert [command[3] for command in redis.pipelined] == ["b"]


def test_a_written_batch_whose_connection_broke_fails_every_call() -> None:
    """Every call of a batch whose connection broke gets the ConnectionError (503 E103)."""

    def answer(commands: list[Command]) -> list[Any]:
        raise RedisConnectionError("connection to Redis lost")

    replies = calls_through(WritingTransport(answer), ["a", "b", "c"])
    assert [type(reply) for reply in replies] == [RedisConnectionError] * 3


def test_a_call_that_cannot_be_written_fails_its_batch_and_no_other() -> None:
    """A call hiredis cannot pack fails its own batch; the calls after it are answered."""
    redis = WritingTransport(lambda commands: [f"reply {command[3]}" for command in commands])
    replies = calls_through(redis, [object(), "b"])
    assert isinstance(replies[0], TypeError)
    assert replies[1] == "reply b"
