"""The aiohttp transport: one ClientSession, a pool of keep-alive connections."""

from __future__ import annotations

import aiohttp

from service.loadtest.transport import TransportError


class AiohttpTransport:
    """Requests through aiohttp, bodies sent as prepared bytes and read as bytes."""

    def __init__(self, base_url: str, connections: int, timeout_s: float) -> None:
        self._base_url = base_url.rstrip("/")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, limit_per_host=connections),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            auto_decompress=False,
        )
        self._headers: dict[str, dict[str, str]] = {}

    async def request(
        self, method: str, path: str, body: bytes | None, token: str
    ) -> tuple[int, bytes]:
        """Send one request; raises TransportError when no answer arrives."""
        try:
            async with self._session.request(
                method, self._base_url + path, data=body, headers=self._headers_for(token)
            ) as response:
                return response.status, await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise TransportError(f"{type(error).__name__}: {error}") from error

    def _headers_for(self, token: str) -> dict[str, str]:
        headers = self._headers.get(token)
        if headers is None:
            headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
            self._headers[token] = headers
        return headers

    async def close(self) -> None:
        """Close the session and its connections."""
        await self._session.close()
