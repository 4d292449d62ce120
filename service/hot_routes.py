"""Lock and unlock, the hot path, served without Starlette's routing layers.

When a popular slot opens, lock and unlock are nearly all the traffic. Through
Starlette each of them passes ExceptionMiddleware, the Router (a regex per
route until one matches), Route.handle, request_response and its exception
wrapper, each adding a call frame and a wrapped `send`; together about a tenth
of the CPU a lock costs (README, "Performance"). HotRoutes, a middleware right
inside RequestContext, matches these few routes itself and calls their
endpoints with the app's own exception handlers, so answers, metrics and logs
are the same either way.

Everything else goes the usual way, as does any request with an
Idempotency-Key (the Idempotency middleware must see it) or a root path
(Starlette's router strips it; these patterns do not).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from service.middleware import scope_header

ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


class HotRoutes:
    """ASGI middleware: `routes` straight to their endpoints, the rest to `app`."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[Route],
        exception_handlers: Mapping[Any, ExceptionHandler],
    ) -> None:
        self.app = app
        self.routes = routes
        self.exception_handlers = exception_handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route, path_params = self._match(scope)
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # the template that metrics and the access log report
        scope["path_params"] = path_params
        request = Request(scope, receive)
        try:
            response: Response = await route.endpoint(request)
        except Exception as error:
            handler = self._handler_for(error)
            if handler is None:
                raise  # RequestContext turns it into E001
            response = await handler(request, error)
        await response(scope, receive, send)

    def _match(self, scope: Scope) -> tuple[Route | None, dict[str, Any]]:
        if scope["type"] != "http" or scope.get("root_path"):
            return None, {}
        method, path = scope["method"], scope["path"]
        for route in self.routes:
            if route.methods is None or method not in route.methods:
                continue
            match = route.path_regex.match(path)
            if match is None:
                continue
            if scope_header(scope, b"idempotency-key") is not None:
                return None, {}
            return route, {
                name: route.param_convertors[name].convert(value)
                for name, value in match.groupdict().items()
            }
        return None, {}

    def _handler_for(self, error: Exception) -> ExceptionHandler | None:
        # As Starlette looks them up: the most specific class with a handler wins.
        for cls in type(error).__mro__:
            if cls in self.exception_handlers:
                return self.exception_handlers[cls]
        return None
