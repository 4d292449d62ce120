"""Slot changes and slot lists: create_slots, update_slot, set_slot_status, delete_slot,
list_slots."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from service.store.calls.common import STALE, ScriptCalls, Stale, as_int, as_list, as_str
from service.store.refusals import refused
from service.views import SlotView

SortKey = tuple[int, str]


class NewSlot(msgspec.Struct, frozen=True):
    """create_slots' group per slot: KEYS (its hash, its neighbour's) and ARGV."""

    slot_key: str
    neighbour_key: str  # the slot starting last before its end; its own key if none
    slot_id: str
    start_ms: int
    end_ms: int
    neighbour_id: str  # "" for none
    fields: Sequence[str]  # field_count field/value entries for HSET


class SlotsCreated(msgspec.Struct, frozen=True):
    """create_slots' OK: what the new slots' views need of their resource."""

    resource_status: str
    booking_disabled_before_s: int
    timezone: str


class SlotPage(msgspec.Struct, frozen=True):
    """list_slots' OK: the total, and the page as views (with_views) or sort keys."""

    total: int
    views: list[SlotView]
    sort_keys: list[SortKey]


EMPTY_PAGE = SlotPage(0, [], [])


class SlotCalls(ScriptCalls):
    """The scripts that create, change, delete and list slots."""

    __slots__ = ()

    async def create_slots(
        self,
        *,
        resource_key: str,
        starts_key: str,
        events_key: str,
        per_slot: Sequence[NewSlot],
        environment: str,
        field_count: int,
    ) -> SlotsCreated | Stale:
        """Add the slots, all or none; E024 on overlap, STALE when a neighbour moved."""
        keys = [resource_key, starts_key, events_key]
        args: list[str | int] = [environment, field_count]
        for slot in per_slot:
            keys += [slot.slot_key, slot.neighbour_key]
            args += [slot.slot_id, slot.start_ms, slot.end_ms, slot.neighbour_id, *slot.fields]
        reply = as_list(await self.scripts.create_slots(keys, args))
        if reply[0] == "STALE":
            return STALE
        if reply[0] != "OK":
            raise refused(reply, 0)
        return SlotsCreated(as_str(reply[1]), as_int(reply[2]), as_str(reply[3]))

    async def update_slot(
        self,
        *,
        slot_key: str,
        lock_key: str,
        resource_key: str,
        starts_key: str,
        neighbour_key: str,
        held_key: str,
        events_key: str,
        lock_ends_key: str,
        environment: str,
        now_ms: int,
        start_ms: str,
        end_ms: str,
        capacity: str,
        lockable: str,
        metadata: str,
        neighbour_id: str,
    ) -> SlotView | Stale:
        """Apply a PATCH ("" keeps a value); the slot after it, or STALE."""
        reply = as_list(
            await self.scripts.update_slot(
                [
                    slot_key,
                    lock_key,
                    resource_key,
                    starts_key,
                    neighbour_key,
                    held_key,
                    events_key,
                    lock_ends_key,
                ],
                [environment, now_ms, start_ms, end_ms, capacity, lockable, metadata, neighbour_id],
            )
        )
        if reply[0] == "STALE":
            return STALE
        if reply[0] != "OK":
            raise refused(reply, now_ms)
        return SlotView.from_script(as_list(reply[1]))

    async def set_slot_status(
        self,
        *,
        slot_key: str,
        lock_key: str,
        resource_key: str,
        held_key: str,
        events_key: str,
        starts_key: str,
        lock_ends_key: str,
        environment: str,
        status: str,
        now_ms: int,
    ) -> SlotView:
        """Enable ("active") or disable ("disabled") the slot; the slot after it."""
        reply = as_list(
            await self.scripts.set_slot_status(
                [slot_key, lock_key, resource_key, held_key, events_key, starts_key, lock_ends_key],
                [environment, status, now_ms],
            )
        )
        if reply[0] != "OK":
            raise refused(reply, now_ms)
        return SlotView.from_script(as_list(reply[1]))

    async def delete_slot(
        self,
        *,
        slot_key: str,
        lock_key: str,
        resource_key: str,
        starts_key: str,
        slot_bookings_key: str,
        resource_bookings_key: str,
        held_key: str,
        lock_ends_key: str,
        events_key: str,
        booking_keys: Sequence[str],
        environment: str,
        booking_ids: Sequence[str],
    ) -> Stale | None:
        """Delete a slot without active bookings (else E060), or STALE."""
        keys = [
            slot_key,
            lock_key,
            resource_key,
            starts_key,
            slot_bookings_key,
            resource_bookings_key,
            held_key,
            lock_ends_key,
            events_key,
            *booking_keys,
        ]
        reply = as_list(await self.scripts.delete_slot(keys, [environment, *booking_ids]))
        if reply[0] == "STALE":
            return STALE
        if reply[0] != "OK":
            raise refused(reply, 0)
        return None

    async def list_slots(
        self,
        *,
        resource_key: str,
        starts_key: str,
        lock_ends_key: str,
        slot_prefix: str,
        lock_prefix: str,
        held_prefix: str,
        environment: str,
        now_ms: int,
        available: str,
        from_ms: str,
        until_ms: str,
        offset: int,
        limit: int,
        with_views: bool,
    ) -> SlotPage:
        """One page of a resource's slots and the total (empty when it is not there)."""
        reply = as_list(
            await self.scripts.list_slots(
                [resource_key, starts_key, lock_ends_key, slot_prefix, lock_prefix, held_prefix],
                [environment, now_ms, available, from_ms, until_ms, offset, limit, int(with_views)],
            )
        )
        if reply[0] != "OK":
            return EMPTY_PAGE  # NO_RESOURCE
        total, flat = as_int(reply[1]), reply[5:]
        if not with_views:
            keys = [
                (as_int(start), as_str(id_))
                for start, id_ in zip(flat[::2], flat[1::2], strict=True)
            ]
            return SlotPage(total, [], keys)
        resource = reply[2:5]  # its status, booking_disabled_before and timezone
        views = [
            SlotView.from_script([slot_json, locked_until_ms, *resource, held])
            for slot_json, locked_until_ms, held in zip(
                flat[::3], flat[1::3], flat[2::3], strict=True
            )
        ]
        return SlotPage(total, views, [])
