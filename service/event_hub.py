"""Fan-out of change streams inside one pod: one reader task, a bounded queue per client.

However many clients watch, the pod reads Redis with one task: one XREAD over the
streams of every watched resource (BLOCK, so an event arrives as soon as it is written),
and, at most every SWEEP_INTERVAL_S, the expiry sweep of those resources. Each event goes
into the queue of every watcher of its resource. A watcher whose queue is full is cut off:
its queue is emptied and its stream ends, so a slow client holds at most QUEUE_SIZE events;
it resumes from its last id, which Redis still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref

from redis.asyncio.cluster import RedisCluster

from service import keyspace
from service.event_log import EventLog, StoredEvent
from service.outage import OUTAGE_ERRORS
from service.store.client import RedisClient

logger = logging.getLogger("slotlock")
_HUBS: weakref.WeakSet[EventHub] = weakref.WeakSet()

QUEUE_SIZE = 256
BLOCK_MS = 250
SWEEP_INTERVAL_S = 0.25
READ_COUNT = 500
RETRY_S = 0.5

Entry = tuple[str, dict[str, str]]  # an XREAD entry: id, fields


def end_every_stream() -> None:
    """End the open streams of every hub of this process: the server is shutting down.

    Called by the HTTP protocol's shutdown (service/http_protocol.py): uvicorn waits for
    open responses before the app's lifespan ends, so a stream must end first, and its
    client reconnects to another pod with its Last-Event-ID.
    """
    for hub in list(_HUBS):
        hub.end_streams()


class Watcher:
    """One open stream's queue; None in it means: end the stream (cut off or shutdown)."""

    def __init__(self, resource_id: str) -> None:
        self.resource_id = resource_id
        self.queue: asyncio.Queue[StoredEvent | None] = asyncio.Queue(QUEUE_SIZE + 1)
        self.cut_off = False

    def offer(self, event: StoredEvent | None) -> None:
        """Queue an event; on overflow drop the backlog and end the stream instead."""
        if self.cut_off:
            return
        if event is None or self.queue.qsize() >= QUEUE_SIZE:
            self.cut_off = event is not None
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(event)


class EventHub:
    """The pod's one reader of change streams and its watchers."""

    def __init__(self, redis: RedisClient, log: EventLog) -> None:
        self._redis = redis
        self._log = log
        self._watchers: dict[str, set[Watcher]] = {}
        self._positions: dict[str, str] = {}  # resource id -> last id the reader saw
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_sweep_s = 0.0
        _HUBS.add(self)

    def watch(self, resource_id: str, position: str) -> Watcher:
        """A new watcher; the reader delivers every event after `position` read from now on."""
        if self._closed:
            raise RuntimeError("the event hub is closed")
        watcher = Watcher(resource_id)
        self._watchers.setdefault(resource_id, set()).add(watcher)
        self._positions.setdefault(resource_id, position)
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        self._wake.set()
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        """Forget a watcher; the resource's stream is no longer read once nobody watches it."""
        found = self._watchers.get(watcher.resource_id)
        if found is None:
            return
        found.discard(watcher)
        if not found:
            del self._watchers[watcher.resource_id]
            self._positions.pop(watcher.resource_id, None)

    def end_streams(self) -> None:
        """End every stream (clients reconnect to another pod and resume); open no new one."""
        self._closed = True
        for found in list(self._watchers.values()):
            for watcher in found:
                watcher.offer(None)

    async def close(self) -> None:
        """End every stream and stop reading."""
        self.end_streams()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            if not self._positions:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._round()
            except OUTAGE_ERRORS as error:
                logger.warning("event reader: redis unreachable (%s)", type(error).__name__)
                await asyncio.sleep(RETRY_S)
            except Exception:
                logger.exception("event reader failed; reading again")
                await asyncio.sleep(RETRY_S)

    async def _round(self) -> None:
        """One sweep (when due) and one read of every watched stream."""
        if time.monotonic() - self._last_sweep_s >= SWEEP_INTERVAL_S:
            self._last_sweep_s = time.monotonic()
            await self._log.sweep(list(self._positions))
        streams = {keyspace.events(rid): pos for rid, pos in self._positions.items()}
        owners = {keyspace.events(rid): rid for rid in self._positions}
        for key, entries in await self._read(streams):
            resource_id = owners[str(key)]
            for entry_id, fields in entries:
                self._deliver(resource_id, StoredEvent.of(str(entry_id), fields))

    async def _read(self, streams: dict[str, str]) -> list[tuple[str, list[Entry]]]:
        if isinstance(self._redis, RedisCluster):
            # Streams of different resources live in different hash slots: one XREAD
            # each, pipelined (one round trip per node), then a pause instead of BLOCK.
            pipe = self._redis.pipeline(transaction=False)
            for key, position in streams.items():
                pipe.xread({key: position}, count=READ_COUNT)
            found = [pair for reply in await pipe.execute() for pair in (reply or [])]
            if not found:
                await asyncio.sleep(BLOCK_MS / 1000)
            return found
        reply: list[tuple[str, list[Entry]]] | None = await self._redis.xread(  # type: ignore[assignment]
            streams,  # type: ignore[arg-type]
            count=READ_COUNT,
            block=BLOCK_MS,
        )
        return reply or []

    def _deliver(self, resource_id: str, event: StoredEvent) -> None:
        if resource_id in self._positions:
            self._positions[resource_id] = event.id
        for watcher in list(self._watchers.get(resource_id, ())):
            watcher.offer(event)
