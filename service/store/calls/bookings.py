"""Booking changes and booking lists: create_booking, set_booking_status, update_booking,
delete_booking, reschedule_booking, list_bookings."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from service.records import BookingRecord, from_flat
from service.scripts import RedisReply
from service.store.calls.common import STALE, ScriptCalls, Stale, as_int, as_list, as_str, as_strs
from service.store.refusals import refused

SortKey = tuple[int, str]
# The hash's values are all strings: strict=False reads "1764..." as an int.
_booking_json = msgspec.json.Decoder(BookingRecord, strict=False)


class Booked(msgspec.Struct, frozen=True):
    """create_booking's OK: the booking's resource, read from the slot's."""

    resource_id: str


class Replayed(msgspec.Struct, frozen=True):
    """create_booking's REPLAY: this Idempotency-Key already booked; nothing changed."""

    booking_id: str


class BookingPage(msgspec.Struct, frozen=True):
    """list_bookings' OK: the total, and the page as records (with_records) or sort keys."""

    total: int
    records: list[BookingRecord]
    sort_keys: list[SortKey]


EMPTY_PAGE = BookingPage(0, [], [])


def booking_of(reply: list[RedisReply]) -> BookingRecord:
    """The booking of an {"OK", booking fields (HGETALL)} reply."""
    return from_flat(as_strs(reply[1]), BookingRecord)


class BookingCalls(ScriptCalls):
    """The scripts that create, change, move within a resource, delete and list bookings."""

    __slots__ = ()

    async def create_booking(
        self,
        *,
        slot_key: str,
        lock_key: str,
        resource_key: str,
        resource_bookings_key: str,
        slot_bookings_key: str,
        booking_key: str,
        receipt_key: str,
        holds_key: str,
        held_key: str,
        lock_ends_key: str,
        events_key: str,
        starts_key: str,
        environment: str,
        now_ms: int,
        holder: str,
        booking_id: str,
        receipt_ttl_ms: int,
        fields: Sequence[str],
    ) -> Booked | Replayed:
        """Book one place (consuming a matching lock or one place of a hold)."""
        reply = as_list(
            await self.scripts.create_booking(
                [
                    slot_key,
                    lock_key,
                    resource_key,
                    resource_bookings_key,
                    slot_bookings_key,
                    booking_key,
                    receipt_key,
                    holds_key,
                    held_key,
                    lock_ends_key,
                    events_key,
                    starts_key,
                ],
                [environment, now_ms, holder, booking_id, receipt_ttl_ms, *fields],
            )
        )
        if reply[0] == "OK":
            return Booked(as_str(reply[1]))
        if reply[0] == "REPLAY":
            return Replayed(as_str(reply[1]))
        raise refused(reply, now_ms)

    async def set_booking_status(
        self,
        *,
        booking_key: str,
        slot_key: str,
        lock_key: str,
        resource_key: str,
        holds_key: str,
        held_key: str,
        lock_ends_key: str,
        events_key: str,
        starts_key: str,
        resource_bookings_key: str,
        slot_bookings_key: str,
        environment: str,
        status: str,
        now_ms: int,
        holder: str,
        slot_id: str,
    ) -> BookingRecord | Stale:
        """Cancel ("cancelled") or enable ("active") the booking; it after, or STALE."""
        reply = as_list(
            await self.scripts.set_booking_status(
                [
                    booking_key,
                    slot_key,
                    lock_key,
                    resource_key,
                    holds_key,
                    held_key,
                    lock_ends_key,
                    events_key,
                    starts_key,
                    resource_bookings_key,
                    slot_bookings_key,
                ],
                [environment, status, now_ms, holder, slot_id],
            )
        )
        return _booking_or_stale(reply, now_ms)

    async def update_booking(
        self, *, booking_key: str, environment: str, now_ms: int, metadata: str
    ) -> BookingRecord | Stale:
        """Replace the metadata; the booking after, or STALE."""
        reply = as_list(
            await self.scripts.update_booking([booking_key], [environment, now_ms, metadata])
        )
        return _booking_or_stale(reply, now_ms)

    async def delete_booking(
        self,
        *,
        booking_key: str,
        slot_key: str,
        resource_key: str,
        resource_bookings_key: str,
        slot_bookings_key: str,
        lock_key: str,
        events_key: str,
        held_key: str,
        starts_key: str,
        lock_ends_key: str,
        environment: str,
        slot_id: str,
        booking_id: str,
    ) -> Stale | None:
        """Delete the booking for good, or STALE."""
        reply = as_list(
            await self.scripts.delete_booking(
                [
                    booking_key,
                    slot_key,
                    resource_key,
                    resource_bookings_key,
                    slot_bookings_key,
                    lock_key,
                    events_key,
                    held_key,
                    starts_key,
                    lock_ends_key,
                ],
                [environment, slot_id, booking_id],
            )
        )
        if reply[0] == "STALE":
            return STALE
        if reply[0] != "OK":
            raise refused(reply, 0)
        return None

    async def reschedule_booking(
        self,
        *,
        booking_key: str,
        source_slot_key: str,
        source_bookings_key: str,
        target_slot_key: str,
        target_lock_key: str,
        target_bookings_key: str,
        resource_key: str,
        holds_key: str,
        target_held_key: str,
        source_lock_key: str,
        source_held_key: str,
        lock_ends_key: str,
        events_key: str,
        starts_key: str,
        environment: str,
        now_ms: int,
        holder: str,
        booking_id: str,
        source_slot_id: str,
        target_slot_id: str,
    ) -> BookingRecord | Stale:
        """Move the booking between two slots of one resource; it after, or STALE."""
        reply = as_list(
            await self.scripts.reschedule_booking(
                [
                    booking_key,
                    source_slot_key,
                    source_bookings_key,
                    target_slot_key,
                    target_lock_key,
                    target_bookings_key,
                    resource_key,
                    holds_key,
                    target_held_key,
                    source_lock_key,
                    source_held_key,
                    lock_ends_key,
                    events_key,
                    starts_key,
                ],
                [environment, now_ms, holder, booking_id, source_slot_id, target_slot_id],
            )
        )
        return _booking_or_stale(reply, now_ms)

    async def list_bookings(
        self,
        *,
        resource_key: str,
        index_key: str,
        booking_prefix: str,
        environment: str,
        resource_id: str,
        status: str,
        offset: int,
        limit: int,
        with_records: bool,
    ) -> BookingPage:
        """One page of a resource's (or slot's) bookings and the total (empty when none)."""
        reply = as_list(
            await self.scripts.list_bookings(
                [resource_key, index_key, booking_prefix],
                [environment, resource_id, status, offset, limit, int(with_records)],
            )
        )
        if reply[0] != "OK":
            return EMPTY_PAGE  # NO_RESOURCE
        total, flat = as_int(reply[1]), reply[2:]
        if with_records:
            return BookingPage(total, [_booking_json.decode(as_str(item)) for item in flat], [])
        keys = [
            (as_int(created_ms), as_str(booking_id))
            for created_ms, booking_id in zip(flat[::2], flat[1::2], strict=True)
        ]
        return BookingPage(total, [], keys)


def _booking_or_stale(reply: list[RedisReply], now_ms: int) -> BookingRecord | Stale:
    if reply[0] == "STALE":
        return STALE
    if reply[0] != "OK":
        raise refused(reply, now_ms)
    return booking_of(reply)
