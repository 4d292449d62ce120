"""Resources: their records, the environment's index, and whole-resource deletion."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from service import keyspace
from service.clock import Clock
from service.errors import ResourceNotFound
from service.ids import canonical_id, new_resource_id
from service.records import ResourceRecord, from_flat, from_hash, to_flat
from service.scripts import Scripts
from service.store.client import RedisClient, members, members_by_score, read_slot_views
from service.store.refusals import check, stale_attempts

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
        self._scripts = scripts
        self._clock = clock

    async def create(self, environment: str, draft: ResourceDraft) -> ResourceRecord:
        """Store a new resource under a home tag of its own, then index it.

        The index entry is written first: a crash in between leaves an entry
        that points at nothing, which readers skip and clear, never a resource
        that no list can find.
        """
        index_key = keyspace.environment_resources(environment)
        for _ in range(_TAG_ATTEMPTS):
            record = _new_record(environment, draft, self._clock())
            await self._redis.zadd(index_key, {record.id: record.created_ms})
            reply = await self._scripts.create_resource(
                [keyspace.resource(record.id)], to_flat(record)
            )
            if reply[0] == "OK":
                return record
            await self._redis.zrem(index_key, record.id)
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
        now_ms = self._clock()
        flat: list[str | int] = []
        for name, value in {**fields, "updated_ms": now_ms}.items():
            flat += [name, value]
        reply = await self._scripts.update_resource(
            [keyspace.resource(_checked(resource_id))], [environment, resource_id, *flat]
        )
        return from_flat(check(reply, now_ms)[1], ResourceRecord)

    async def delete(self, environment: str, resource_id: str) -> None:
        """Delete the resource with every slot, lock and booking it owns."""
        _checked(resource_id)
        for _ in stale_attempts("the slots of this resource"):
            reply = await self._delete_once(environment, resource_id)
            if reply[0] != "STALE":
                check(reply, self._clock())
                await self._redis.zrem(keyspace.environment_resources(environment), resource_id)
                return
        raise AssertionError("unreachable: stale_attempts raises when it runs out")

    async def _delete_once(self, environment: str, resource_id: str) -> list[Any]:
        slot_ids = await members(self._redis, keyspace.resource_slots(resource_id))
        booking_ids = await members(self._redis, keyspace.resource_bookings(resource_id))
        owned = [
            key
            for slot_id in slot_ids
            for key in (
                keyspace.slot(slot_id),
                keyspace.lock(slot_id),
                keyspace.slot_bookings(slot_id),
                keyspace.held(slot_id),
            )
        ] + [keyspace.booking(booking_id, resource_id) for booking_id in booking_ids]
        keys = [
            keyspace.resource(resource_id),
            keyspace.resource_slots(resource_id),
            keyspace.resource_bookings(resource_id),
            keyspace.events(resource_id),
            keyspace.lock_ends(resource_id),
            *owned,
        ]
        args = [environment, resource_id, len(slot_ids), *slot_ids, *booking_ids]
        result: list[Any] = await self._scripts.delete_resource(keys, args)
        return result

    async def list_all(self, environment: str) -> list[ResourceRecord]:
        """Every resource of the environment, oldest first; clears dangling index entries."""
        index_key = keyspace.environment_resources(environment)
        resource_ids = await members(self._redis, index_key)
        if not resource_ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for resource_id in resource_ids:
            pipe.hgetall(keyspace.resource(resource_id))
        hashes: list[dict[str, str]] = await pipe.execute()
        records, dangling = [], []
        for resource_id, fields in zip(resource_ids, hashes, strict=True):
            if fields.get("id") == resource_id and fields.get("environment") == environment:
                records.append(from_hash(fields, ResourceRecord))
            elif not fields or fields.get("id") != resource_id:
                dangling.append(resource_id)
        await self._clear_dangling(index_key, dangling)
        return records

    async def _clear_dangling(self, index_key: str, resource_ids: list[str]) -> None:
        # An entry is only dangling once its create has had time to finish; a
        # resource being created right now must not lose its index entry.
        settled_ms = self._clock() - 60_000
        stale = (
            [
                resource_id
                for resource_id, score in zip(
                    resource_ids, await self._redis.zmscore(index_key, resource_ids), strict=True
                )
                if score is not None and score < settled_ms
            ]
            if resource_ids
            else []
        )
        if stale:
            await self._redis.zrem(index_key, *stale)

    async def num_available_slots(self, resource: ResourceRecord) -> int:
        """How many of the resource's slots are `available` now.

        Only slots whose booking window is still open can be available, so
        only those are read.
        """
        now_ms = self._clock()
        opens_after_ms = now_ms + resource.booking_disabled_before * 1000
        slot_ids = await members_by_score(
            self._redis, keyspace.resource_slots(resource.id), f"({opens_after_ms}", "+inf"
        )
        views = await read_slot_views(self._redis, slot_ids, now_ms)
        return sum(view.available(now_ms) for view in views)


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
