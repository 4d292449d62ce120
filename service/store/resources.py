"""Resources: their records, the environment's index, and whole-resource deletion."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from service import keyspace
from service.clock import Clock
from service.errors import ResourceNotFound
from service.ids import canonical_id, new_resource_id
from service.records import ResourceRecord, from_hash, to_flat
from service.scripts import Scripts
from service.store.calls.common import Stale
from service.store.calls.resources import ResourceCalls
from service.store.client import RedisClient, members
from service.store.refusals import until_fresh
from service.store.resource_index import ResourceIndex

_TAG_ATTEMPTS = 16


@dataclass(frozen=True, slots=True)
class ResourceDraft:
    """A resource to create, checked but not yet stored."""

    name: str
    timezone: str
    booking_disabled_before: int
    public_scheduling_enabled: bool
    metadata_json: str


class ResourceStore:
    """The only code that reads or changes resources in Redis."""

    def __init__(self, redis: RedisClient, scripts: Scripts, clock: Clock) -> None:
        self._redis = redis
        self._calls = ResourceCalls(scripts)
        self._clock = clock
        self.index = ResourceIndex(redis, scripts, clock)

    async def create(self, environment: str, draft: ResourceDraft) -> ResourceRecord:
        """Store a new resource under a home tag of its own, and index it.

        Marked as changing first (see resource_index.py): a crash before the end
        leaves a mark that lists settle, never a resource that no list can find.
        """
        for _ in range(_TAG_ATTEMPTS):
            record = _new_record(environment, draft, self._clock())
            mark_ms = await self.index.mark(environment, record.id)
            created = await self._calls.create_resource(
                resource_key=keyspace.resource(record.id), fields=to_flat(record)
            )
            if created:
                await self.index.show(record, mark_ms)
                return record
            await self.index.drop(environment, record.id, mark_ms)
        raise RuntimeError("no free home tag after several draws")

    async def get(self, environment: str, resource_id: str) -> ResourceRecord:
        """One resource of this environment."""
        key = keyspace.resource(_checked(resource_id))
        fields = await self._redis.hgetall(key)
        if not fields or fields.get("environment") != environment or fields["id"] != resource_id:
            raise ResourceNotFound("resource not found")
        return from_hash(fields, ResourceRecord)

    async def update(
        self, environment: str, resource_id: str, fields: dict[str, str | int]
    ) -> ResourceRecord:
        """Set some fields (name, status, settings, metadata) and stamp updated_ms."""
        indexed = "name" in fields or "status" in fields
        if indexed:
            await self.get(environment, resource_id)  # no mark for what is not there (404)
        mark_ms = await self.index.mark(environment, resource_id) if indexed else None
        now_ms = self._clock()
        flat: list[str | int] = []
        for name, value in {**fields, "updated_ms": now_ms}.items():
            flat += [name, value]
        record = await self._calls.update_resource(
            resource_key=keyspace.resource(_checked(resource_id)),
            environment=environment,
            resource_id=resource_id,
            fields=flat,
        )
        if indexed:
            await self.index.show(record, mark_ms)
        return record

    async def delete(self, environment: str, resource_id: str) -> None:
        """Delete the resource with every slot, lock and booking it owns."""
        await self.get(environment, resource_id)  # no mark for what is not there (404)
        mark_ms = await self.index.mark(environment, resource_id)
        await until_fresh(
            "the slots of this resource", lambda: self._delete_once(environment, resource_id)
        )
        await self.index.drop(environment, resource_id, mark_ms)

    async def _delete_once(self, environment: str, resource_id: str) -> Stale | None:
        slot_ids = await members(self._redis, keyspace.resource_slots(resource_id))
        booking_ids = await members(self._redis, keyspace.resource_bookings(resource_id))
        per_slot = [
            key
            for slot_id in slot_ids
            for key in (
                keyspace.slot(slot_id),
                keyspace.lock(slot_id),
                keyspace.slot_bookings(slot_id),
                keyspace.held(slot_id),
            )
        ]
        return await self._calls.delete_resource(
            resource_key=keyspace.resource(resource_id),
            starts_key=keyspace.resource_slots(resource_id),
            resource_bookings_key=keyspace.resource_bookings(resource_id),
            events_key=keyspace.events(resource_id),
            lock_ends_key=keyspace.lock_ends(resource_id),
            owned_keys=[
                *per_slot,
                *[keyspace.booking(booking_id, resource_id) for booking_id in booking_ids],
            ],
            environment=environment,
            resource_id=resource_id,
            slot_count=len(slot_ids),
            slot_ids=slot_ids,
            booking_ids=booking_ids,
        )

    async def ids(self, environment: str) -> list[str]:
        """Every resource id of the environment's index (some may be gone or not yet there)."""
        return await members(self._redis, keyspace.environment_resources(environment))

    async def page(
        self, environment: str, name: str | None, status: str | None, offset: int, limit: int
    ) -> tuple[list[ResourceRecord], int]:
        """Resources [offset, offset + limit) that pass the filters, oldest first; the total."""
        resource_ids, total = await self.index.page(environment, name, status, offset, limit)
        if not resource_ids:
            return [], total
        pipe = self._redis.pipeline(transaction=False)
        for resource_id in resource_ids:
            pipe.hgetall(keyspace.resource(resource_id))
        hashes: list[dict[str, str]] = await pipe.execute()
        # A resource deleted since its id was listed is left out of the page.
        return [
            from_hash(fields, ResourceRecord)
            for resource_id, fields in zip(resource_ids, hashes, strict=True)
            if fields.get("id") == resource_id and fields.get("environment") == environment
        ], total


def _checked(resource_id: str) -> str:
    if canonical_id(resource_id) != resource_id:
        raise ResourceNotFound("resource not found")
    return resource_id


def _new_record(environment: str, draft: ResourceDraft, now_ms: int) -> ResourceRecord:
    resource_id = new_resource_id()
    return ResourceRecord(
        id=resource_id,
        environment=environment,
        name=draft.name,
        short_id=secrets.token_hex(4),
        timezone=draft.timezone,
        booking_disabled_before=draft.booking_disabled_before,
        public_scheduling_enabled=draft.public_scheduling_enabled,
        metadata=draft.metadata_json,
        created_ms=now_ms,
        updated_ms=now_ms,
    )
