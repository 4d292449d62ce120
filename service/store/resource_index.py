"""An environment's resource indexes: by creation, by status, by name.

They live in the environment's hash tag, each resource in its own, so no script changes
a resource and its index entries at once. Every change therefore runs in three steps:
mark the resource as changing (`resource-changes`), change its hash, then bring the
indexes to the hash's revision and clear the mark (lua/index_resource.lua, which never
goes back to an older revision). A crash between the steps leaves the mark. A list
first settles every marked resource: it reads the hash and indexes what it says; a
resource whose hash is missing is left out of the list while its mark is young (a
create or delete in flight) and dropped from the indexes once the mark is a minute
old. So a list's total is exact, whatever crashed when.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from service import keyspace
from service.clock import Clock
from service.records import ResourceRecord, from_hash
from service.scripts import Scripts
from service.store.calls.resources import ResourceCalls
from service.store.client import RedisClient

SETTLE_AFTER_MS = 60_000  # no change takes this long; a mark this old was left by a crash


def name_hash(name: str) -> str:
    """How a name appears in its index's key: fixed length, any characters."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


class ResourceIndex:
    """Keeps and reads one environment's resource indexes (any environment, by argument)."""

    def __init__(self, redis: RedisClient, scripts: Scripts, clock: Clock) -> None:
        self._redis = redis
        self._calls = ResourceCalls(scripts)
        self._clock = clock

    async def mark(self, environment: str, resource_id: str) -> int:
        """Note that the resource is about to change; returns the mark's time."""
        mark_ms = self._clock()
        await self._redis.zadd(
            keyspace.environment_resource_changes(environment), {resource_id: mark_ms}
        )
        return mark_ms

    async def show(self, record: ResourceRecord, settled_ms: int | None) -> None:
        """Index the resource as `record` says; clear its mark if set at or before settled_ms."""
        await self._apply(
            record.environment,
            record.id,
            _State(record.revision, record.status, name_hash(record.name), record.created_ms),
            settled_ms,
        )

    async def drop(self, environment: str, resource_id: str, settled_ms: int | None) -> None:
        """Take a resource that is gone for good out of the indexes."""
        await self._apply(environment, resource_id, _GONE, settled_ms)

    async def _apply(
        self, environment: str, resource_id: str, state: _State, settled_ms: int | None
    ) -> None:
        await self._calls.index_resource(
            all_key=keyspace.environment_resources(environment),
            state_key=keyspace.environment_resource_index(environment),
            names_prefix=keyspace.environment_resource_names(environment),
            changes_key=keyspace.environment_resource_changes(environment),
            resource_id=resource_id,
            revision=state.revision,
            status=state.status,
            name_hash=state.name_hash,
            created_ms=state.created_ms,
            settled_ms=settled_ms,
        )

    async def settle(self, environment: str) -> list[str]:
        """Index every marked resource as its hash says now; returns those to leave out."""
        marks: list[tuple[str, float]] = await self._redis.zrange(  # type: ignore[assignment]
            keyspace.environment_resource_changes(environment), 0, -1, withscores=True
        )
        if not marks:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for resource_id, _ in marks:
            pipe.hgetall(keyspace.resource(resource_id))
        hashes: list[dict[str, str]] = await pipe.execute()
        settled_ms = self._clock() - SETTLE_AFTER_MS
        unsettled = []
        for (resource_id, mark_ms), fields in zip(marks, hashes, strict=True):
            if fields.get("id") == resource_id and fields.get("environment") == environment:
                await self.show(from_hash(fields, ResourceRecord), settled_ms)
            elif mark_ms <= settled_ms:
                await self.drop(environment, resource_id, settled_ms)
            else:
                unsettled.append(resource_id)
        return unsettled

    async def page(
        self, environment: str, name: str | None, status: str | None, offset: int, limit: int
    ) -> tuple[list[str], int]:
        """Resource ids [offset, offset + limit) that pass the filters, oldest first; the total."""
        unsettled = await self.settle(environment)
        page = await self._calls.list_resources(
            all_key=keyspace.environment_resources(environment),
            names_prefix=keyspace.environment_resource_names(environment),
            name_hash="" if name is None else name_hash(name),
            status=status or "",
            offset=offset,
            limit=limit,
            unsettled=unsettled,
        )
        return page.resource_ids, page.total


class _State(NamedTuple):
    """What the indexes show of a resource: its hash's revision, status, name and creation."""

    revision: int
    status: str  # "" once gone for good
    name_hash: str
    created_ms: int


_GONE = _State(0, "", "", 0)
