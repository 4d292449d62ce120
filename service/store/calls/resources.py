"""Resources and their indexes: create_resource, update_resource, delete_resource,
list_resources, index_resource, and index_slots (the start-up migration's step)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from service.records import ResourceRecord, from_flat
from service.store.calls.common import STALE, ScriptCalls, Stale, as_int, as_list, as_str, as_strs
from service.store.refusals import refused


class ResourcePage(msgspec.Struct, frozen=True):
    """list_resources' OK: the page's resource ids and the total."""

    total: int
    resource_ids: list[str]


class ResourceCalls(ScriptCalls):
    """The scripts of resources and of an environment's resource indexes."""

    __slots__ = ()

    async def create_resource(self, *, resource_key: str, fields: Sequence[str]) -> bool:
        """Store the new resource; False when another one owns its home tag (TAG_TAKEN)."""
        reply = as_list(await self.scripts.create_resource([resource_key], list(fields)))
        return reply[0] == "OK"

    async def update_resource(
        self, *, resource_key: str, environment: str, resource_id: str, fields: Sequence[str | int]
    ) -> ResourceRecord:
        """Set some fields and count the revision; the resource after."""
        reply = as_list(
            await self.scripts.update_resource([resource_key], [environment, resource_id, *fields])
        )
        if reply[0] != "OK":
            raise refused(reply, 0)
        return from_flat(as_strs(reply[1]), ResourceRecord)

    async def delete_resource(
        self,
        *,
        resource_key: str,
        starts_key: str,
        resource_bookings_key: str,
        events_key: str,
        lock_ends_key: str,
        owned_keys: Sequence[str],
        environment: str,
        resource_id: str,
        slot_count: int,
        slot_ids: Sequence[str],
        booking_ids: Sequence[str],
    ) -> Stale | None:
        """Delete the resource with everything it owns, or STALE."""
        reply = as_list(
            await self.scripts.delete_resource(
                [
                    resource_key,
                    starts_key,
                    resource_bookings_key,
                    events_key,
                    lock_ends_key,
                    *owned_keys,
                ],
                [environment, resource_id, slot_count, *slot_ids, *booking_ids],
            )
        )
        if reply[0] == "STALE":
            return STALE
        if reply[0] != "OK":
            raise refused(reply, 0)
        return None

    async def list_resources(
        self,
        *,
        all_key: str,
        names_prefix: str,
        name_hash: str,
        status: str,
        offset: int,
        limit: int,
        unsettled: Sequence[str],
    ) -> ResourcePage:
        """One page of an environment's resource ids and the total."""
        reply = as_list(
            await self.scripts.list_resources(
                [all_key, names_prefix], [name_hash, status, offset, limit, *unsettled]
            )
        )
        return ResourcePage(as_int(reply[1]), [as_str(item) for item in reply[2:]])

    async def index_resource(
        self,
        *,
        all_key: str,
        state_key: str,
        names_prefix: str,
        changes_key: str,
        resource_id: str,
        revision: int,
        status: str,
        name_hash: str,
        created_ms: int,
        settled_ms: int | None,
    ) -> None:
        """Bring the indexes to this revision of the resource (never back to an older one)."""
        settled = "" if settled_ms is None else settled_ms  # "" keeps the change mark
        await self.scripts.index_resource(
            [all_key, state_key, names_prefix, changes_key],
            [resource_id, revision, status, name_hash, created_ms, settled],
        )

    async def index_slots(
        self,
        *,
        resource_key: str,
        starts_key: str,
        lock_ends_key: str,
        resource_bookings_key: str,
        slot_prefix: str,
        lock_prefix: str,
        slot_bookings_prefix: str,
        booking_prefix: str,
        held_prefix: str,
        after_ms: str,
        count: int,
        version: int,
    ) -> str | None:
        """Index the next `count` slots; the after_ms to call again with, None when done."""
        reply = as_list(
            await self.scripts.index_slots(
                [
                    resource_key,
                    starts_key,
                    lock_ends_key,
                    resource_bookings_key,
                    slot_prefix,
                    lock_prefix,
                    slot_bookings_prefix,
                    booking_prefix,
                    held_prefix,
                ],
                [after_ms, count, version],
            )
        )
        return as_str(reply[1]) if reply[0] == "MORE" else None
