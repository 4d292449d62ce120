"""The start-up migration to the list indexes (version 1), for data of earlier versions.

Earlier versions kept every slot, booking and resource in one plain index each, scored
by its sort key. Version 1 moves shut slots, cancelled bookings and published resources
into a second band (bands.py), files live locks and holds in the lock ends, and adds the
environment's per-name resource indexes. Every pod runs this when it starts, before it serves:

- once done, a global marker (`sl:{migrations}:lists`) makes it one GET;
- per resource, lua/index_slots.lua works through the slots in steps of a few hundred,
  each atomic and harmless to repeat, and marks the resource in its last step: an
  interrupted run resumes after the resources it finished;
- several pods at once each do the same idempotent steps, and skip what another marked.

Resource indexes are rebuilt from each resource's hash by lua/index_resource.lua,
which keeps the latest revision: rebuilding twice, or beside live changes, is harmless.
"""

from __future__ import annotations

import logging
import time

from service import keyspace
from service.records import ResourceRecord, from_hash
from service.scripts import Scripts
from service.store.bands import sort_key_of
from service.store.calls.resources import ResourceCalls
from service.store.client import RedisClient
from service.store.resource_index import ResourceIndex

logger = logging.getLogger("slotlock.migration")

LIST_INDEX_VERSION = 1
MIGRATION_NAME = "list-indexes"
SLOTS_PER_STEP = 500
_ENVIRONMENT_INDEX = "sl:{env:*}:resources"


class ListIndexMigration:
    """Builds the list indexes of data written before them, once."""

    def __init__(self, redis: RedisClient, scripts: Scripts, index: ResourceIndex) -> None:
        self._redis = redis
        self._calls = ResourceCalls(scripts)
        self._index = index

    async def run(self) -> bool:
        """Migrate if nobody has yet; returns whether there was anything to do."""
        marker = keyspace.migration(MIGRATION_NAME)
        if int(await self._redis.get(marker) or 0) >= LIST_INDEX_VERSION:
            return False
        started_s = time.monotonic()
        environments = await self._environments()
        logger.info("list indexes: building them for %d environments", len(environments))
        slot_count = 0
        for number, environment in enumerate(environments, start=1):
            slot_count += await self._environment(environment)
            logger.info(
                "list indexes: %d of %d environments done (%d slots so far)",
                number,
                len(environments),
                slot_count,
            )
        await self._redis.set(marker, LIST_INDEX_VERSION)
        took_s = time.monotonic() - started_s
        logger.info("list indexes: built, %d slots in %.1f s", slot_count, took_s)
        return True

    async def _environments(self) -> list[str]:
        found = set()
        async for key in self._redis.scan_iter(match=_ENVIRONMENT_INDEX, count=1000):
            found.add(key[len("sl:{env:") : -len("}:resources")])
        return sorted(found)

    async def _environment(self, environment: str) -> int:
        """Every resource of one environment: its slots, bookings and index entries."""
        entries: list[tuple[str, float]] = await self._redis.zrange(  # type: ignore[assignment]
            keyspace.environment_resources(environment), 0, -1, withscores=True
        )
        slot_count = 0
        for resource_id, score in entries:
            fields = await self._redis.hgetall(keyspace.resource(resource_id))
            if fields.get("id") != resource_id or fields.get("environment") != environment:
                # A create cut short, or under way: lists settle it through the mark.
                await self._redis.zadd(
                    keyspace.environment_resource_changes(environment),
                    {resource_id: sort_key_of(score)},
                )
                continue
            slot_count += await self._slots(resource_id)
            await self._index.show(from_hash(fields, ResourceRecord), None)
        return slot_count

    async def _slots(self, resource_id: str) -> int:
        """Index one resource's slots step by step; returns how many it holds."""
        slot_count = int(await self._redis.zcard(keyspace.resource_slots(resource_id)))
        after, done = "", 0
        while True:
            more = await self._calls.index_slots(
                resource_key=keyspace.resource(resource_id),
                starts_key=keyspace.resource_slots(resource_id),
                lock_ends_key=keyspace.lock_ends(resource_id),
                resource_bookings_key=keyspace.resource_bookings(resource_id),
                slot_prefix=keyspace.slot_prefix(resource_id),
                lock_prefix=keyspace.lock_prefix(resource_id),
                slot_bookings_prefix=keyspace.slot_bookings_prefix(resource_id),
                booking_prefix=keyspace.booking_prefix(resource_id),
                held_prefix=keyspace.held_prefix(resource_id),
                after_ms=after,
                count=SLOTS_PER_STEP,
                version=LIST_INDEX_VERSION,
            )
            if more is None:
                return slot_count
            after, done = more, done + SLOTS_PER_STEP
            if done % (SLOTS_PER_STEP * 20) == 0:
                logger.info(
                    "list indexes: resource %s: %d of %d slots", resource_id, done, slot_count
                )
