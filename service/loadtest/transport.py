"""How requests reach the service: one small interface, two HTTP clients behind it.

- "aiohttp": a full HTTP client (TLS, chunked bodies, any server); the default
  of `slotlock loadtest`.
- "raw": a minimal HTTP/1.1 keep-alive client written on asyncio's Protocol,
  about 4-5x cheaper per request than aiohttp; the default of `slotlock bench`,
  whose generator must outrun a server on a core of its own.
"""

from __future__ import annotations

from typing import Protocol

CLIENTS = ("aiohttp", "raw")


class TransportError(Exception):
    """No HTTP answer: refused or broken connection, timeout, malformed response."""


class Transport(Protocol):
    """Sends one request and returns the answer's status and body."""

    async def request(
        self, method: str, path: str, body: bytes | None, token: str
    ) -> tuple[int, bytes]:
        """Send `method path` with `Authorization: Bearer token`; raises TransportError."""
        ...

    async def close(self) -> None:
        """Close every connection."""
        ...


def open_transport(client: str, base_url: str, connections: int, timeout_s: float) -> Transport:
    """A transport of kind `client` ("aiohttp" or "raw") to `base_url`."""
    if client == "raw":
        from service.loadtest.raw_http import RawTransport

        return RawTransport(base_url, timeout_s)
    if client == "aiohttp":
        from service.loadtest.aiohttp_transport import AiohttpTransport

        return AiohttpTransport(base_url, connections, timeout_s)
    raise ValueError(f"unknown client {client!r}; expected one of {', '.join(CLIENTS)}")
