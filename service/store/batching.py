"""Script calls from concurrent requests, sent together: one pipeline, one write.

Each request still makes exactly one Redis call (its EVALSHA), but the calls
that arrive while a batch is on the wire leave together in the next one. That
spares a socket write, a pool checkout and redis-py's per-call machinery for
all but one call of a batch, which is where a single worker spent most of its
Redis time (see the README's Performance section).

Order and atomicity are unchanged: each script is still atomic on its own, and
calls of one batch run in the order they were made.

How a batch reaches Redis (and its NOSCRIPT fallback, and the WAIT for replicas
with `replica_acks` = N > 0) is the transport's (service/store/transport.py).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any

from service import operation
from service.store.transport import Transport

# Redis answers a batch only once it has run all of it, and a lock script costs it some
# 20 us. Batches of at most 8 come back within about 0.2 ms, and 3 on the wire keep Redis
# busy while the worker answers the last one. With 2 batches of any size, the worker sat
# idle a fifth of the time waiting for long batches (bench: 78-80% busy -> 96-99%, the
# same CPU per request, a fifth more requests/s; README, "Performance"). Since the
# worker's own HTTP protocol made it faster, 4 on the wire left it 92-94% busy and 3 keep
# it at 98% (bench, lock: 16,900-17,000 -> 17,600-17,900 req/s): each extra batch is a
# write and a read more for Redis, on the core it shares with the load generator.
MAX_BATCHES_IN_FLIGHT = 3
MAX_BATCH = 8
# But when Redis is slow (a WAIT for an absent replica, a server about to time out),
# batches of 8 would drain a queue 24 calls per slow round, and a call could wait
# several rounds: seconds. A call that has waited this long for a free slot is a
# sign of that (a healthy round takes well under a millisecond), so the next batch
# takes the whole queue, and no call waits more than about two slow rounds.
BACKLOG_AFTER_S = 0.005


@dataclass(slots=True)
class _Call:
    script: BatchedScript
    keys: list[Any]
    args: list[Any]
    done: asyncio.Future[Any]
    queued_s: float  # loop time


class ScriptBatcher:
    """Queues EVALSHA calls and sends them in small pipelines, a few at a time."""

    def __init__(
        self, transport: Transport, replica_acks: int = 0, ack_timeout_ms: int = 1000
    ) -> None:
        self._transport = transport
        self._replica_acks = replica_acks
        self._ack_timeout_ms = ack_timeout_ms
        self._queue: list[_Call] = []
        self._in_flight = 0
        self._sending: set[asyncio.Task[None]] = set()

    def call(self, script: Any, keys: list[Any], args: list[Any]) -> asyncio.Future[Any]:
        """Queue `script` for the next batch; the future is its reply or its error.

        A plain function returning the future, not a coroutine: a lock's await chain is
        one frame shorter, which every request pays twice (made, and resumed by the reply).
        """
        loop = asyncio.get_running_loop()
        call = _Call(script, keys, args, loop.create_future(), loop.time())
        self._queue.append(call)
        self._maybe_send()
        return call.done

    def _maybe_send(self) -> None:
        if self._queue and self._in_flight < MAX_BATCHES_IN_FLIGHT:
            loop = asyncio.get_running_loop()
            backlogged = loop.time() - self._queue[0].queued_s > BACKLOG_AFTER_S
            size = len(self._queue) if backlogged else MAX_BATCH
            batch, self._queue = self._queue[:size], self._queue[size:]
            self._in_flight += 1
            # Written at once where the transport can (no WAIT to add): its replies are
            # settled in a callback. Otherwise, and after an error reply, a task does it.
            try:
                written = None if self._replica_acks else self._transport.write_scripts(batch)
            except Exception as error:  # a call that cannot be packed fails its batch only
                _fail(batch, error)
                self._in_flight -= 1
                self._maybe_send()
                return
            if written is not None:
                written.add_done_callback(functools.partial(self._replied, batch))
            else:
                self._start(self._send(batch))

    def _replied(self, batch: list[_Call], written: asyncio.Future[list[Any]]) -> None:
        error = written.exception() if not written.cancelled() else asyncio.CancelledError()
        if error is None:
            replies = written.result()
            if any(isinstance(reply, Exception) for reply in replies):
                self._start(self._send(batch, replies))  # NOSCRIPT, LOADING, OOM...: rare
                return
            for call, reply in zip(batch, replies, strict=True):
                _settle(call, reply)
        else:
            _fail(batch, error)
        self._in_flight -= 1
        self._maybe_send()

    def _start(self, sending: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(sending)
        self._sending.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call], replies: list[Any] | None = None) -> None:
        """Run `batch` whole through the transport, or finish it from its first `replies`."""
        try:
            if replies is None:
                replies = await self._transport.run_scripts(
                    batch, self._replica_acks, self._ack_timeout_ms
                )
            else:
                replies = await self._transport.after_errors(
                    batch, replies, self._replica_acks, self._ack_timeout_ms
                )
            for call, reply in zip(batch, replies, strict=True):
                _settle(call, reply)
        except BaseException as error:
            _fail(batch, error)
            if not isinstance(error, Exception):
                raise
        finally:
            self._in_flight -= 1
            self._maybe_send()

    async def aclose(self) -> None:
        """Close the transport's own connection, if it has one."""
        await self._transport.aclose()


class BatchedScript:
    """A registered script whose calls go through a ScriptBatcher."""

    def __init__(self, source: str, sha: str, batcher: ScriptBatcher, *, writes: bool) -> None:
        self.script = source
        self.sha = sha
        self.writes = writes  # whether the script can change state (WAIT then applies)
        self.batcher = batcher

    def __call__(self, keys: list[Any], args: list[Any]) -> Awaitable[Any]:
        """EVALSHA with these KEYS and ARGV, in the next batch: await the reply."""
        operation.reached()  # from here on, its Idempotency-Key keeps the answer
        return self.batcher.call(self, keys, args)


def _fail(batch: list[_Call], error: BaseException) -> None:
    for call in batch:
        if not call.done.done():
            call.done.set_exception(error)


def _settle(call: _Call, reply: Any) -> None:
    if call.done.done():
        return  # the request was cancelled (client gone); its script still ran whole
    if isinstance(reply, Exception):
        call.done.set_exception(reply)
    else:
        call.done.set_result(reply)
