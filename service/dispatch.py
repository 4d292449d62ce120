"""The ASGI application: every request's one path, from its route to its answer's last header.

One plain-ASGI class serves every route, in this order:

- a CORS preflight is answered first (no key, no rate limit, no request id), as
  browsers send it without the Authorization header;
- the route is found in the RouteTable (root path stripped); an unknown path is
  404 E002, a known one with another method 405 E002, and a path whose
  trailing-slash twin is known redirects there (as Starlette's router did);
- the endpoint's exception becomes its answer here, in one place: an ApiError
  its envelope, a Redis outage 503 E103 with Retry-After, anything else 500 E001
  logged under the request id;
- every answer then gets the headers every answer carries (hardening, the
  request id, CORS for the request's Origin), and is counted in the metrics and
  the access log under its route template (answered.py, once per loop turn).

The headers go into the answer's own `raw_headers` before it is sent, so no
`send` is wrapped: each endpoint builds a new answer per request.
"""

from __future__ import annotations

import logging
import os
import re
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from mypy_extensions import mypyc_attr
from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from service.answered import AnsweredRequests
from service.cors import CorsPolicy
from service.errors import (
    ApiError,
    InternalError,
    MethodNotAllowed,
    RouteNotFound,
    StoreUnavailable,
)
from service.logs import AccessLog
from service.outage import OUTAGE_ERRORS, OutageLog
from service.responses import HARDENING_HEADERS, Answer, failure
from service.routing import Route, RouteTable
from service.scope import route_path, scope_header

error_log = logging.getLogger("slotlock.error")

Lifespan = Callable[[], AbstractAsyncContextManager[None]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_HARDENING = [(name.encode(), value.encode()) for name, value in HARDENING_HEADERS.items()]
UNMATCHED = "unmatched"  # the route template of an answer no route gave


# Compiled by mypyc (service/native.py), and extended by SlotlockApp (app.py), which is not.
@mypyc_attr(allow_interpreted_subclasses=True)
class Dispatcher:
    """ASGI app: HTTP requests to their routes' endpoints; lifespan to start-up and shutdown."""

    def __init__(
        self,
        routes: list[Route],
        *,
        cors: CorsPolicy,
        access_log: AccessLog,
        outage: OutageLog,
        retry_after_s: int,
        lifespan: Lifespan,
    ) -> None:
        self.routes = routes
        self._table = RouteTable(routes)
        self._cors = cors
        self._answered = AnsweredRequests(access_log)
        self._outage = outage  # told of every failure to reach Redis, and every answer below 500
        self._retry_after_s = retry_after_s
        self._lifespan = lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve an HTTP request here (not in a method of its own: a frame fewer that every
        request passes through twice, made and resumed by its Redis reply)."""
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            preflight = self._cors.preflight(scope)
            if preflight is not None:
                await preflight(scope, receive, send)
                return
        started = time.perf_counter()
        request_id = _request_id(scope)
        template, response = await self._answer(scope, receive, request_id)
        response.raw_headers += [
            *_HARDENING,
            (b"x-request-id", request_id.encode()),
            *self._cors.answer_headers(scope),
        ]
        try:
            await response(scope, receive, send)
        except Exception:
            # Sending failed (a stream broke off midway): nothing more can be answered.
            error_log.exception("unexpected failure", extra={"request_id": request_id})
            raise
        finally:
            status = response.status_code
            duration_s = time.perf_counter() - started
            self._answered.add(
                request_id, scope["method"], scope["path"], template, status, duration_s
            )
            if status < 500:
                self._outage.success()

    async def _answer(self, scope: Scope, receive: Receive, request_id: str) -> tuple[str, Answer]:
        """The route template and the answer: the endpoint's, or its exception's."""
        template_path = UNMATCHED
        try:
            found = self._table.find(route_path(scope))
            if found is None:
                return UNMATCHED, self._unrouted(scope)
            template, scope["path_params"] = found
            template_path = template.path
            endpoint = template.endpoints.get(scope["method"])
            if endpoint is None:
                raise MethodNotAllowed(f"{scope['method']} is not allowed on this path")
            return template_path, await endpoint(Request(scope, receive))
        except ApiError as error:
            return template_path, failure(error)
        except OUTAGE_ERRORS as error:
            self._outage.failure(error)
            unavailable = StoreUnavailable(
                "Redis is unreachable; retry", retry_after_s=self._retry_after_s
            )
            return template_path, failure(unavailable)
        except Exception:
            error_log.exception("unexpected failure", extra={"request_id": request_id})
            return template_path, failure(InternalError("unexpected failure; see the service log"))

    def _unrouted(self, scope: Scope) -> Response:
        """No route: a redirect to the path's trailing-slash twin if that has one; else 404."""
        if route_path(scope) != "/":
            path: str = scope["path"]
            twin = {**scope, "path": path.rstrip("/") if path.endswith("/") else path + "/"}
            if self._table.find(route_path(twin)) is not None:
                return RedirectResponse(str(URL(scope=twin)))
        raise RouteNotFound("no such route")

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._run_lifespan(receive, send)
        else:  # a websocket: no route takes one
            await send({"type": "websocket.close", "code": 1000})

    async def _run_lifespan(self, receive: Receive, send: Send) -> None:
        """The ASGI lifespan protocol around `lifespan` (as Starlette's router runs it)."""
        started = False
        failure: BaseException | None = None
        await receive()  # lifespan.startup
        try:
            async with self._lifespan():
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()  # lifespan.shutdown
                self._answered.flush()  # the last turn's answers, before the loop stops
        except BaseException as error:
            failure = error  # told after the block: nothing compiled awaits in an `except`
        if failure is not None:
            failed = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            message = "".join(traceback.format_exception(failure))
            await send({"type": failed, "message": message})
            raise failure
        await send({"type": "lifespan.shutdown.complete"})


def _request_id(scope: Scope) -> str:
    sent = scope_header(scope, b"x-request-id")
    if sent is not None and _REQUEST_ID.match(sent):
        return sent
    if not _random_ids:
        _draw_random_ids()
    return _random_ids.pop()


# Ids are 128 random bits, as unique as uuid4().hex and telling nothing (a counter would
# tell how many requests a pod served), drawn 256 at a time: one getrandom() system call
# per 256 requests instead of one each. A forked worker drops the parent's unused ones.
_RANDOM_IDS_PER_DRAW = 256
_random_ids: list[str] = []


def _draw_random_ids() -> None:
    drawn = os.urandom(16 * _RANDOM_IDS_PER_DRAW).hex()
    _random_ids[:] = [drawn[start : start + 32] for start in range(0, len(drawn), 32)]


os.register_at_fork(after_in_child=_random_ids.clear)
