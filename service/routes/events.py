"""GET /resources/:id/events: a resource's slot changes as Server-Sent Events.

List, then watch (Kubernetes' list-then-watch): GET /slots?resource_id= answers
meta.event_id; a stream from it (Last-Event-ID or ?last_event_id=) misses nothing, and a
position Redis no longer holds (or never issued) gets one `reset`. Framing, pings and
disconnects are written here rather than with sse-starlette: its EventSourceResponse runs
its own task group and pinger per stream, and a stream here needs only a queue read with
a timeout (the pod's one reader fills the queues, service/event_hub.py); three lines of
framing do not earn a dependency and a second task per open stream.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from service.auth import Caller
from service.errors import ResourceNotFound, SecretKeyRequired
from service.event_hub import EventHub, Watcher
from service.event_log import EventLog, StoredEvent, reset_message
from service.routes.common import Gate, header, path_id
from service.routing import Route
from service.store.resources import ResourceStore

PING_INTERVAL_S = 15.0
PING = b": ping\n\n"


class EventRoutes:
    """The event stream's endpoint, on the stores and the pod's stream reader it uses."""

    def __init__(
        self, gate: Gate, resources: ResourceStore, events: EventLog, hub: EventHub
    ) -> None:
        self.gate = gate
        self.resources = resources
        self.events = events
        self.hub = hub

    def routes(self) -> list[Route]:
        """The event stream's route."""
        return [Route("/resources/{resource_id}/events", "GET", self.resource_events)]

    async def resource_events(self, request: Request) -> Response:
        who = await self._stream_caller(request)
        resource_id = path_id(request, "resource_id", ResourceNotFound, "resource")
        await self.resources.get(who.environment, resource_id)
        asked = header(request, b"last-event-id") or request.query_params.get("last_event_id")
        now_id = await self.events.last_id(resource_id)
        position = asked if asked is not None else now_id
        # Watch before replaying: what the reader gets from now on overlaps the replay
        # instead of leaving a gap; the stream skips ids it already sent. (The reader starts
        # at the stream's end, never at a client's word, which may be any text.)
        watcher = self.hub.watch(resource_id, now_id)
        return EventStream(
            self.events,
            resource_id,
            position,
            resumed=asked is not None,
            watcher=watcher,
            hub_unwatch=self.hub.unwatch,
        )

    async def _stream_caller(self, request: Request) -> Caller:
        """The header's key, or `?key=` (a browser's EventSource sends no headers): public only."""
        query_key = request.query_params.get("key")
        if header(request, b"authorization") is not None or query_key is None:
            return await self.gate.caller(request)
        who = await self.gate.authenticator.authenticate(f"Bearer {query_key}")
        if who.is_secret:
            raise SecretKeyRequired("a secret key never goes in a URL: send it in the header")
        self.gate.rate_limiter.admit(who)
        return who


class EventStream(Response):
    """The open stream: replay from its position, then live events, pings, and its end."""

    media_type = "text/event-stream"

    def __init__(
        self,
        log: EventLog,
        resource_id: str,
        position: str,
        *,
        resumed: bool,
        watcher: Watcher,
        hub_unwatch: object,
    ) -> None:
        super().__init__(headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
        self._log = log
        self._resource_id = resource_id
        self._position = position
        self._resumed = resumed
        self._watcher = watcher
        self._unwatch = hub_unwatch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        streaming = asyncio.ensure_future(self._stream(send))
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({streaming, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streaming, gone):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task
            self._unwatch(self._watcher)  # type: ignore[operator]
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _stream(self, send: Send) -> None:
        sent = self._position
        if self._resumed:
            await self._log.sweep([self._resource_id])  # ended locks first: no replay misses one
            if not await self._log.resumable(self._resource_id, sent):
                sent = await self._log.last_id(self._resource_id)
                await _write(send, reset_message(sent))
            while True:
                page = await self._log.after(self._resource_id, sent)
                for event in page:
                    await _write(send, event.message())
                    sent = event.id
                    if event.ends_stream():
                        return
                if not page:
                    break
        await self._live(send, sent)

    async def _live(self, send: Send, sent: str) -> None:
        last = StoredEvent(sent, "", "").order()
        queue = self._watcher.queue
        while True:
            try:
                first = await asyncio.wait_for(queue.get(), PING_INTERVAL_S)
            except TimeoutError:
                await _write(send, PING)
                continue
            # What else is queued goes out in the same write: one send per burst, not per event.
            batch = [first]
            while not queue.empty() and batch[-1] is not None:
                batch.append(queue.get_nowait())
            chunks, ended = [], False
            for event in batch:
                if event is None:
                    ended = True  # cut off (too slow) or the pod shuts down: the client resumes
                    break
                if event.order() <= last:
                    continue  # already sent by the replay
                chunks.append(event.message())
                last = event.order()
                if event.ends_stream():
                    ended = True
                    break
            if chunks:
                await _write(send, b"".join(chunks))
            if ended:
                return


async def _write(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _disconnected(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
