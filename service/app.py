"""The ASGI application: routes, error handlers, start-up (script preload) and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from service.clock import Clock, system_clock_ms
from service.cors import CorsPolicy, Preflights
from service.errors import ApiError, MethodNotAllowed, RouteNotFound, StoreUnavailable
from service.hot_routes import HotRoutes
from service.idempotency import Idempotency
from service.logs import AccessLog
from service.middleware import RequestContext
from service.outage import OUTAGE_ERRORS, OutageLog
from service.ratelimit import FLUSH_INTERVAL_S
from service.readiness import CHECK_INTERVAL_S
from service.responses import failure
from service.routes import bookings, demo, events, ops, resources, slots
from service.services import Services
from service.settings import Settings
from service.store.client import RedisClient

logger = logging.getLogger("slotlock")


HEAL_INTERVAL_S = 5.0
GC_YOUNG_THRESHOLD = 20_000  # CPython's default is 700 allocations


async def every(
    interval_s: float, job: Callable[[], Awaitable[object]], name: str, outage: OutageLog
) -> None:
    """Run a background job every `interval_s` until its task is cancelled.

    An outage it meets goes to the process's outage log, once, like the requests'
    (a job that returns False did not reach Redis, so it tells nothing of it).

    A cancellation can be lost inside the job: on Python 3.11, redis-py's commands can
    swallow a CancelledError that arrives as they finish (asyncio.wait_for's race,
    CPython gh-86296) or turn it into a ConnectionError. The task still counts the
    request (Task.cancelling), so the loop checks it and stops; otherwise the app's
    shutdown would wait for this job forever, and the process would never exit.
    """
    this_task = asyncio.current_task()
    assert this_task is not None
    while not this_task.cancelling():
        await asyncio.sleep(interval_s)
        try:
            reached_redis = await job()
        except OUTAGE_ERRORS as error:
            outage.failure(error)  # try again next round
            continue
        except Exception:
            if not this_task.cancelling():
                logger.exception("%s failed; trying again next round", name)
            continue
        if reached_redis is not False:
            outage.success()


class SlotlockApp(Starlette):
    """Starlette without its outermost ServerErrorMiddleware.

    RequestContext, the first middleware inside it, answers every unexpected
    exception itself (E001, logged under the request id), so ServerErrorMiddleware
    could never see one; it only cost every request a layer and a wrapped `send`.
    """

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        assert isinstance(stack, ServerErrorMiddleware)
        return stack.app


def create_app(
    settings: Settings,
    redis: RedisClient,
    clock: Clock = system_clock_ms,
    *,
    owns_redis: bool = False,
) -> SlotlockApp:
    """The service on `redis`; with `owns_redis` it closes the client when it stops."""
    found = Services.build(settings, redis, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await found.readiness.warm_up()
            await found.readiness.check()  # logs an evicting policy or a replica at once
        except OUTAGE_ERRORS as error:
            # Start anyway: /readyz stays 503 and warms up once Redis answers.
            logger.error("redis unreachable at start-up: %s", type(error).__name__)
        # Objects built at start-up live as long as the process: keep them out of every
        # collection, and collect the young generation less often. Both cut the pauses
        # that set the p99 under load (see the README's Performance section).
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        jobs = [
            # Settles half-done cross-resource reschedules, in every pod.
            asyncio.create_task(
                every(HEAL_INTERVAL_S, found.rescheduler.heal, "healer", found.outage)
            ),
            # Notices an eviction policy or a role changed at run time, even unprobed.
            asyncio.create_task(
                every(CHECK_INTERVAL_S, found.readiness.check, "readiness", found.outage)
            ),
            # Shares this pod's rate-limit counts with the others.
            asyncio.create_task(
                every(FLUSH_INTERVAL_S, found.rate_limiter.flush, "rate limits", found.outage)
            ),
        ]
        yield
        await found.event_hub.close()
        for job in jobs:
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
        await found.scripts.aclose()
        if owns_redis:
            await redis.aclose()

    async def api_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        return failure(error)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        if error.status_code == 405:
            return failure(MethodNotAllowed(f"{request.method} is not allowed on this path"))
        return failure(RouteNotFound("no such route"))

    async def redis_down(request: Request, error: Exception) -> Response:
        found.outage.failure(error)
        retry_after_s = settings.retry_after_s
        return failure(StoreUnavailable("Redis is unreachable; retry", retry_after_s=retry_after_s))

    cors = CorsPolicy(settings.cors_origins)
    handlers = {ApiError: api_error, HTTPException: http_error} | dict.fromkeys(
        OUTAGE_ERRORS, redis_down
    )
    # Starlette tries routes in order: the hot path (slots: lock, unlock) comes first.
    routes = [*slots.ROUTES, *bookings.ROUTES, *resources.ROUTES, *events.ROUTES, *ops.ROUTES]
    if settings.demo:
        routes += demo.ROUTES
    app = SlotlockApp(
        routes=routes,
        middleware=[
            # CORS preflights, answered ahead of everything (no key, no rate limit).
            Middleware(Preflights, policy=cors),
            Middleware(
                RequestContext,
                access_log=AccessLog.for_this_process(),
                on_answer=found.outage.success,
                cors_headers=cors.answer_headers,
            ),
            Middleware(HotRoutes, routes=slots.HOT_ROUTES, exception_handlers=handlers),
            Middleware(Idempotency, services=found, routes=routes),
        ],
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    app.state.services = found
    return app
