"""The app's parts, wired once by create_app.

The route modules get only the parts they use, when app.py builds them; nothing
looks these up per request. The lifespan jobs, tests and tools reach them as
`app.services`.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.auth import Authenticator
from service.clock import Clock
from service.connect import transport_for
from service.event_hub import EventHub
from service.event_log import EventLog
from service.keyfile import import_key_file
from service.outage import OutageLog
from service.ratelimit import RateLimiter
from service.readiness import Readiness
from service.scripts import Scripts
from service.settings import Settings
from service.store.api_keys import KeyStore
from service.store.batching import ScriptBatcher
from service.store.bookings import BookingStore
from service.store.client import RedisClient
from service.store.migration import ListIndexMigration
from service.store.rate_counts import RateCounts
from service.store.reschedule import Rescheduler
from service.store.resources import ResourceStore
from service.store.slots import SlotStore
from service.store.transport import Transport


@dataclass(frozen=True, slots=True)
class Services:
    """Settings, clock, Redis, its stores, and the pod's authenticator, limits and logs."""

    settings: Settings
    clock: Clock
    redis: RedisClient
    batcher: ScriptBatcher  # the scripts' way to Redis; aclose() closes its own connection
    scripts: Scripts
    keys: KeyStore
    authenticator: Authenticator
    resources: ResourceStore
    slots: SlotStore
    bookings: BookingStore
    rescheduler: Rescheduler
    rate_limiter: RateLimiter
    outage: OutageLog
    readiness: Readiness
    events: EventLog
    event_hub: EventHub

    async def warm_up(self) -> None:
        """Load every script into Redis and import the provisioned API keys, if any."""
        await self.scripts.preload(self.redis)
        # Builds the list indexes of data written by earlier versions, once (migration.py).
        await ListIndexMigration(self.redis, self.scripts, self.resources.index).run()
        if self.settings.keys_file is not None:
            await import_key_file(self.keys, self.settings.keys_file)

    @classmethod
    def build(
        cls,
        settings: Settings,
        redis: RedisClient,
        clock: Clock,
        transport: Transport | None = None,
    ) -> Services:
        """Wire every store to one Redis client and one clock; script calls go through
        `transport`, by default the one REDIS_URL calls for (connect.transport_for)."""
        # WAIT must answer before the socket times out, or a slow replica reads as an outage.
        ack_timeout_ms = int(settings.redis_timeout_s * 800)
        batcher = ScriptBatcher(
            transport or transport_for(settings, redis), settings.replica_acks, ack_timeout_ms
        )
        scripts = Scripts.register(batcher)
        keys = KeyStore(redis, clock)
        bookings = BookingStore(redis, scripts, clock)
        events = EventLog(redis, scripts, clock)

        async def warm_up() -> None:
            await services.warm_up()

        services = cls(
            settings=settings,
            clock=clock,
            redis=redis,
            batcher=batcher,
            scripts=scripts,
            keys=keys,
            authenticator=Authenticator(keys, clock, settings.key_cache_s),
            resources=ResourceStore(redis, scripts, clock),
            slots=SlotStore(redis, scripts, clock, settings.max_locks_per_key),
            bookings=bookings,
            rescheduler=Rescheduler(redis, scripts, clock, bookings),
            rate_limiter=RateLimiter(
                RateCounts(redis),
                clock,
                {"public": settings.rate_limit_public, "secret": settings.rate_limit_secret},
            ),
            outage=OutageLog(),
            readiness=Readiness(redis, scripts, warm_up),
            events=events,
            event_hub=EventHub(redis, events),
        )
        return services
