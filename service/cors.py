"""CORS, so a booking page can call the service from the browser with a public key.

Starlette's CORSMiddleware does the work; this module only sets it up as API.md
asks and answers an accepted preflight with 204 No Content instead of its 200 "OK".
It wraps the whole app, outside RequestContext, so that every answer carries the
CORS headers: errors, E001 and the lock/unlock hot path included. A preflight is
answered here, before authentication and rate limiting, as browsers send it
without the Authorization header.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.middleware import scope_header
from service.settings import Settings

ALLOWED_METHODS = ("GET", "POST", "PATCH", "DELETE")
# Besides the CORS-safelisted ones (Content-Type among them, which Starlette always allows).
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "X-Request-ID",
    "Last-Event-ID",
)
# What a page may read of an answer besides the safelisted headers.
EXPOSED_HEADERS = ("Retry-After", "X-Request-ID")
PREFLIGHT_MAX_AGE_S = 600  # how long a browser may reuse a preflight's answer


class Cors(CORSMiddleware):
    """Starlette's CORSMiddleware, 204 for an accepted preflight, cheap on every other request.

    Starlette's own path for a plain request copies the request headers into a
    Headers object, looks the origin up there (a KeyError when there is none), and
    edits the response headers through MutableHeaders: about a tenth of what a lock
    costs (README, "Instructions per request"). Yet the headers it adds depend only
    on the origin: none, one of the allowed list, or any other. So Starlette's
    `send` decides them once per such case, and every later answer replays them.
    """

    def __init__(self, app: ASGIApp, /, **options: Any) -> None:
        super().__init__(app, **options)
        self._added: dict[str | None, list[tuple[bytes, bytes]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await super().__call__(scope, receive, send)  # preflights: Starlette's own path
            return
        origin = scope_header(scope, b"origin")
        added = self._added.get(self._case(origin))
        if added is None:
            added = await self._decide(origin)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def preflight_response(self, request_headers: Headers) -> Response:
        """Starlette's answer (its checks, its headers), as 204 when it accepts."""
        answer = super().preflight_response(request_headers=request_headers)
        if answer.status_code != 200:
            return answer  # refused: 400 naming what (origin, method, headers)
        headers = {
            name: value
            for name, value in answer.headers.items()
            if name not in ("content-length", "content-type")
        }
        return Response(status_code=204, headers=headers)

    def _case(self, origin: str | None) -> str | None:
        """The key of the headers `origin` gets: each allowed origin of a list has its own."""
        if origin is None:
            return None
        if not self.allow_all_origins and self.is_allowed_origin(origin):
            return origin
        return ""  # every origin alike: `*` answers them all the same, a list refuses them

    async def _decide(self, origin: str | None) -> list[tuple[bytes, bytes]]:
        """What Starlette's `send` adds to an answer for `origin`; kept for its case."""
        started: list[Message] = []

        async def keep(message: Message) -> None:
            started.append(message)

        raw = [] if origin is None else [(b"origin", origin.encode("latin-1"))]
        start: Message = {"type": "http.response.start", "status": 200, "headers": []}
        await self.send(start, send=keep, request_headers=Headers(raw=raw))
        added: list[tuple[bytes, bytes]] = list(started[0]["headers"])
        self._added[self._case(origin)] = added
        return added


def cors_middleware(settings: Settings) -> Middleware:
    """The Cors layer for `settings.cors_origins` (`*` or a list of origins)."""
    return Middleware(
        Cors,
        allow_origins=settings.cors_origins,
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        max_age=PREFLIGHT_MAX_AGE_S,
    )
