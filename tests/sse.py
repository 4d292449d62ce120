"""A Server-Sent Events client for tests: reads a stream in the background, keeps every event."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Received:
    """One event as the client got it, with the monotonic time it arrived."""

    id: str | None
    type: str
    data: Any
    at_s: float


class EventReader:
    """An open GET /resources/:id/events; `events` grows as messages arrive."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.events: list[Received] = []
        self.comments: list[str] = []
        self.ended = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
    ) -> EventReader:
        """Open the stream; the caller checks `response.status`."""
        response = await session.get(url, headers=headers or {})
        return cls(response)

    async def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            async for raw in self.response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith(":"):
                    self.comments.append(line)
                elif line == "":
                    if "event" in fields:
                        data = json.loads(fields.get("data", "null"))
                        got = Received(fields.get("id"), fields["event"], data, time.monotonic())
                        self.events.append(got)
                    fields = {}
                else:
                    name, _, value = line.partition(": ")
                    fields[name] = value
        except (aiohttp.ClientError, asyncio.CancelledError):
            pass
        finally:
            self.ended.set()

    async def wait_for(self, count: int, timeout_s: float = 5.0) -> list[Received]:
        """The first `count` events, waiting up to `timeout_s` for them."""
        deadline = time.monotonic() + timeout_s
        while len(self.events) < count and time.monotonic() < deadline:
            if self.ended.is_set():
                break
            await asyncio.sleep(0.02)
        return self.events[:count]

    def types(self) -> list[str]:
        """The event types received so far."""
        return [event.type for event in self.events]

    async def close(self) -> None:
        """Stop reading and close the connection."""
        self._task.cancel()
        self.response.close()
        await asyncio.gather(self._task, return_exceptions=True)
