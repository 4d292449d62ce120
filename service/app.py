"""The service as an ASGI app: its parts wired to its routes, start-up and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from service.clock import Clock, system_clock_ms
from service.cors import CorsPolicy
from service.dispatch import Dispatcher
from service.idempotency import Idempotency
from service.logs import AccessLog
from service.outage import OUTAGE_ERRORS, OutageLog
from service.ratelimit import FLUSH_INTERVAL_S
from service.readiness import CHECK_INTERVAL_S
from service.routes import demo
from service.routes.bookings import BookingRoutes
from service.routes.common import Gate
from service.routes.events import EventRoutes
from service.routes.ops import ops_routes
from service.routes.resources import ResourceRoutes
from service.routes.slots import SlotRoutes
from service.routing import Route
from service.services import Services
from service.settings import Settings
from service.store.client import RedisClient
from service.store.idempotency import IdempotencyRecords
from service.store.transport import Transport

logger = logging.getLogger("slotlock")


HEAL_INTERVAL_S = 5.0


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


class SlotlockApp(Dispatcher):
    """The service; `services` are its parts, for its jobs, tests and tools (not its routes)."""

    def __init__(self, services: Services, routes: list[Route], *, owns_redis: bool) -> None:
        settings = services.settings
        super().__init__(
            routes,
            cors=CorsPolicy(settings.cors_origins),
            access_log=AccessLog.for_this_process(),
            outage=services.outage,
            retry_after_s=settings.retry_after_s,
            lifespan=self._running,
        )
        self.services = services
        self._owns_redis = owns_redis

    @contextlib.asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        """Start-up (scripts, migration, readiness, background jobs), then shutdown.

        What start-up opened is closed even when start-up itself fails.
        """
        jobs: list[asyncio.Task[None]] = []
        try:
            await self._warm_up()
            jobs = self._start_jobs()
            yield
        finally:
            await self._stop(jobs)

    async def _warm_up(self) -> None:
        found = self.services
        try:
            await found.readiness.warm_up()
            await found.readiness.check()  # logs an evicting policy or a replica at once
        except OUTAGE_ERRORS as error:
            # Start anyway: /readyz stays 503 and warms up once Redis answers.
            logger.error("redis unreachable at start-up: %s", type(error).__name__)

    def _start_jobs(self) -> list[asyncio.Task[None]]:
        found = self.services
        return [
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

    async def _stop(self, jobs: list[asyncio.Task[None]]) -> None:
        found = self.services
        await found.event_hub.close()
        for job in jobs:
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
        await found.batcher.aclose()
        if self._owns_redis:
            await found.redis.aclose()


def create_app(
    settings: Settings,
    redis: RedisClient,
    clock: Clock = system_clock_ms,
    *,
    owns_redis: bool = False,
    transport: Transport | None = None,
) -> SlotlockApp:
    """The service on `redis`; with `owns_redis` it closes the client when it stops.
    `transport` replaces the way script calls reach Redis (tests inject replies there)."""
    found = Services.build(settings, redis, clock, transport)
    return SlotlockApp(found, routes_of(found), owns_redis=owns_redis)


def routes_of(found: Services) -> list[Route]:
    """Every route, each endpoint given the parts it uses; every POST takes an Idempotency-Key."""
    settings = found.settings
    gate = Gate(found.authenticator, found.rate_limiter, settings.max_body_bytes)
    slots = SlotRoutes(
        gate,
        found.slots,
        found.resources,
        found.events,
        found.clock,
        max_lock_s=settings.max_lock_s,
        max_lock_s_public=settings.max_lock_s_public,
    )
    routes = [
        *slots.routes(),
        *BookingRoutes(gate, found.bookings, found.resources, found.rescheduler).routes(),
        *ResourceRoutes(gate, found.resources, found.slots).routes(),
        *EventRoutes(gate, found.resources, found.events, found.event_hub).routes(),
        *ops_routes(found.readiness, settings.retry_after_s),
    ]
    if settings.demo:
        routes += demo.ROUTES
    records = IdempotencyRecords(found.redis)
    idempotency = Idempotency(records, found.clock, found.outage, settings.max_body_bytes)
    return [
        route.wrapped(idempotency.wrap) if route.method == "POST" else route for route in routes
    ]
