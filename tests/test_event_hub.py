"""The pod's fan-out: bounded queues per open stream, cut-off of slow clients, shutdown."""

from __future__ import annotations

import asyncio

from service.event_hub import QUEUE_SIZE, EventHub, Watcher, end_every_stream
from service.event_log import StoredEvent


def event(n: int) -> StoredEvent:
    """A stored event with id n-0."""
    return StoredEvent(f"{n}-0", "slot.updated", "{}")


def test_a_slow_watcher_is_cut_off_holding_nothing() -> None:
    """A watcher whose queue is full loses its backlog and gets the end-of-stream mark."""

    async def body() -> None:
        watcher = Watcher("r")
        for n in range(QUEUE_SIZE + 10):
            watcher.offer(event(n))
        assert watcher.cut_off
        assert watcher.queue.qsize() == 1
        assert await watcher.queue.get() is None

    asyncio.run(body())


def test_a_watcher_that_keeps_up_gets_every_event_in_order() -> None:
    """Below the bound every offered event comes out, in order."""

    async def body() -> None:
        watcher = Watcher("r")
        for n in range(QUEUE_SIZE):
            watcher.offer(event(n))
        got = [await watcher.queue.get() for _ in range(QUEUE_SIZE)]
        assert [e.id for e in got if e] == [f"{n}-0" for n in range(QUEUE_SIZE)]
        assert not watcher.cut_off

    asyncio.run(body())


def test_shutdown_ends_every_open_stream_and_refuses_new_ones() -> None:
    """end_every_stream puts the end mark in every watcher's queue of every hub."""

    async def body() -> None:
        hub = EventHub(None, None)  # type: ignore[arg-type]  # no reader runs without a watch
        watchers = [Watcher("a"), Watcher("b")]
        hub._watchers = {"a": {watchers[0]}, "b": {watchers[1]}}
        end_every_stream()
        assert [await w.queue.get() for w in watchers] == [None, None]
        try:
            hub.watch("c", "0-0")
        except RuntimeError:
            return
        raise AssertionError("a closed hub opened a stream")

    asyncio.run(body())
