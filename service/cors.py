"""CORS, so a booking page can call the service from the browser with a public key.

Starlette's CORSMiddleware decides everything: whether a preflight is accepted
and with which headers, and which headers an answer gets for a request's
Origin. Two things are arranged differently from mounting it as is:

- An accepted preflight answers 204 No Content (Starlette: 200 "OK"). The
  dispatcher (service/dispatch.py) answers it first, before authentication and
  rate limiting, as browsers send it without the Authorization header.
- The headers an answer gets depend only on its Origin: none, one of the
  listed origins, or any other. CorsPolicy asks Starlette once per such case,
  at start-up, and the dispatcher adds the answer to every response it sends,
  errors and event streams included. Starlette's own path (a Headers
  copy, a KeyError per request without Origin, MutableHeaders edits, a wrapped
  `send`) cost about a tenth of a lock (README, "Instructions per request").
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from service.scope import scope_header

ALLOWED_METHODS = ("GET", "POST", "PATCH", "DELETE")
# Besides the CORS-safelisted ones, which Starlette always allows.
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
# Stands for every origin that is not listed (.invalid never names a real host).
ANY_OTHER_ORIGIN = "https://any-other-origin.invalid"

RawHeaders = list[tuple[bytes, bytes]]


class CorsPolicy:
    """API.md's CORS for `origins` (`("*",)` or a list), decided by Starlette."""

    def __init__(self, origins: tuple[str, ...]) -> None:
        self._starlette = CORSMiddleware(
            _never_called,
            allow_origins=origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            max_age=PREFLIGHT_MAX_AGE_S,
        )
        listed = () if "*" in origins else origins
        self._added = {origin: self._decided(origin) for origin in (None, *listed)}
        self._added_for_others = self._decided(ANY_OTHER_ORIGIN)

    def answer_headers(self, scope: Scope) -> RawHeaders:
        """The CORS headers for an answer to the request `scope` (not a preflight)."""
        return self._added.get(scope_header(scope, b"origin"), self._added_for_others)

    def preflight(self, scope: Scope) -> Response | None:
        """The answer to a preflight (204 when accepted, 400 when not); None for other requests."""
        headers = Headers(scope=scope)
        if "origin" not in headers or "access-control-request-method" not in headers:
            return None
        answer = self._starlette.preflight_response(request_headers=headers)
        if answer.status_code != 200:
            return answer  # refused: 400 naming what (origin, method, headers)
        kept = {
            name: value
            for name, value in answer.headers.items()
            if name not in ("content-length", "content-type")
        }
        return Response(status_code=204, headers=kept)

    def _decided(self, origin: str | None) -> RawHeaders:
        """What Starlette's `send` adds to an answer for a request from `origin`."""
        started: list[Message] = []

        async def keep(message: Message) -> None:
            started.append(message)

        raw = [] if origin is None else [(b"origin", origin.encode("latin-1"))]
        start: Message = {"type": "http.response.start", "status": 200, "headers": []}
        # Run to completion at once, with no event loop (create_app may run inside one):
        # `send` awaits only `keep`, which never waits.
        step = self._starlette.send(start, send=keep, request_headers=Headers(raw=raw))
        try:
            step.send(None)
        except StopIteration:
            return list(started[0]["headers"])
        step.close()
        raise RuntimeError("Starlette's CORSMiddleware.send waited; service/cors.py needs a look")


async def _never_called(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("CorsPolicy uses CORSMiddleware for its decisions only")
