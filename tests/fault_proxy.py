"""A TCP proxy in front of one Redis that can lose replies: a partition in mid-request.

    proxy = ReplyLosingProxy(redis_port); await proxy.start()    # REDIS_URL at proxy.url
    proxy.arm(b":receipt:")                 # the next connection that sends this loses its replies
    proxy.arm(b":receipt:", everywhere=True)   # ... and so does every connection, from then on
    proxy.disarm()

Requests always reach Redis (so the command runs); only what comes back is lost.
A connection that lost a reply stays silent until its client drops it; `disarm`
lets replies through on the others again.
"""

from __future__ import annotations

import asyncio
import contextlib

from tests.redis_servers import free_port

_CHUNK = 65536


class ReplyLosingProxy:
    """Forwards 127.0.0.1:port to a Redis port; armed, it swallows replies."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._marker: bytes | None = None
        self._everywhere = False
        self._all_silent = False
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """REDIS_URL for a client of the proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Listen on self.port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def arm(self, marker: bytes, *, everywhere: bool = False) -> None:
        """Lose the replies of the next connection whose request holds `marker` (or all)."""
        self._marker, self._everywhere = marker, everywhere

    def disarm(self) -> None:
        """Pass replies again on new connections, and on old ones not yet silenced."""
        self._marker, self._everywhere, self._all_silent = None, False, False

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            redis_in, redis_out = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:  # Redis is down: so is the connection through the proxy
            client_out.close()
            return
        silent = [False]

        async def requests() -> None:
            while data := await client_in.read(_CHUNK):
                if self._marker is not None and self._marker in data:
                    silent[0], self._all_silent = True, self._everywhere
                    self._marker = None
                redis_out.write(data)
                await redis_out.drain()

        async def replies() -> None:
            while data := await redis_in.read(_CHUNK):
                silent[0] = silent[0] or self._all_silent  # once silenced, silent for good
                if not silent[0]:
                    client_out.write(data)
                    await client_out.drain()

        pumps = [asyncio.create_task(requests()), asyncio.create_task(replies())]
        _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pending:
            pump.cancel()
        for pump in pumps:
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await pump  # a reset connection ends its pump with OSError
        for writer in (redis_out, client_out):
            writer.close()
