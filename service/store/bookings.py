"""Bookings: create (one script, one round trip), status changes, moves, lists."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from service import keyspace
from service.clock import Clock
from service.errors import BookingNotFound, SlotNotFound
from service.ids import canonical_id, new_child_id, same_shard
from service.records import BookingRecord, from_flat, from_hash, to_flat
from service.scripts import Scripts
from service.store.client import RedisClient
from service.store.listing import merged_page
from service.store.refusals import check, until_fresh

# The hash's values are all strings: strict=False reads "1764..." as an int.
_booking_json = msgspec.json.Decoder(BookingRecord, strict=False)
RECEIPT_TTL_MS = 24 * 3600 * 1000
_MAX_HOPS = 16  # forwarding addresses followed before giving up (a booking moved that often)
STALE_PAUSE_S = 0.05  # a move in flight settles in milliseconds; its healer within seconds


@dataclass(frozen=True, slots=True)
class BookingFilter:
    """GET /bookings filters."""

    status: str | None = None
    slot_id: str | None = None
    resource_id: str | None = None


class BookingStore:
    """The only code that reads or changes bookings in Redis."""

    def __init__(self, redis: RedisClient, scripts: Scripts, clock: Clock) -> None:
        self._redis = redis
        self._scripts = scripts
        self._clock = clock

    async def create(
        self,
        environment: str,
        slot_id: str,
        holder: str,
        metadata_json: str,
        idempotency_hash: str | None = None,
    ) -> BookingRecord:
        """Book a place; a matching lock is released in the same script."""
        _checked_slot(slot_id)
        now_ms = self._clock()
        record = BookingRecord(
            id=new_child_id(slot_id),
            environment=environment,
            slot_id=slot_id,
            resource_id="",
            metadata=metadata_json,
            created_ms=now_ms,
            updated_ms=now_ms,
        )
        keys = [
            keyspace.slot(slot_id),
            keyspace.lock(slot_id),
            keyspace.resource(slot_id),
            keyspace.resource_bookings(slot_id),
            keyspace.slot_bookings(slot_id),
            keyspace.booking(record.id),
            keyspace.receipt(slot_id, idempotency_hash or "none"),
            keyspace.holds(slot_id, holder),
            keyspace.held(slot_id),
            keyspace.lock_ends(slot_id),
            keyspace.events(slot_id),
            keyspace.resource_slots(slot_id),
        ]
        ttl_ms = RECEIPT_TTL_MS if idempotency_hash else 0
        args = [environment, now_ms, holder, record.id, ttl_ms, *to_flat(record)]
        reply = await self._scripts.create_booking(keys, args)
        if reply[0] == "REPLAY":  # the first attempt with this Idempotency-Key booked
            return await self.get(environment, reply[1])
        check(reply, now_ms)
        record.resource_id = reply[1]
        return record

    async def get(self, environment: str, booking_id: str) -> BookingRecord:
        """The booking, following forwarding addresses left by reschedules."""
        if canonical_id(booking_id) != booking_id:
            raise BookingNotFound("booking not found")
        key = keyspace.booking(booking_id)
        for _ in range(_MAX_HOPS):
            record = await self._read(environment, key)
            if record is None:
                break
            if record.pending_intent:
                return await self._settled_side(environment, record)
            if not record.moved_to_slot:
                return record
            key = keyspace.booking(booking_id, record.moved_to_slot)
        raise BookingNotFound("booking not found")

    async def _read(self, environment: str, key: str) -> BookingRecord | None:
        fields = await self._redis.hgetall(key)
        if not fields or fields.get("environment") != environment:
            return None
        return from_hash(fields, BookingRecord)

    async def _settled_side(self, environment: str, pending: BookingRecord) -> BookingRecord:
        """Where a booking in mid-move is: still on its source until the source releases it.

        Only a move back to the booking's home resource is read this way (a pending
        record there stands where the forwarding address was), so it needs a look at
        the source to answer right.
        """
        source_key = keyspace.booking(pending.id, pending.pending_from_slot)
        source = await self._read(environment, source_key)
        if source is None or source.moved_to_slot == pending.slot_id:
            return pending
        return source

    async def update_metadata(
        self, environment: str, booking_id: str, metadata_json: str
    ) -> BookingRecord:
        """Replace the metadata."""

        async def attempt(found: BookingRecord) -> list[Any]:
            keys = [keyspace.booking(booking_id, found.slot_id)]
            reply: list[Any] = await self._scripts.update_booking(
                keys, [environment, self._clock(), metadata_json]
            )
            return reply

        _, reply = await self._where_it_is(environment, booking_id, attempt)
        return from_flat(reply[1], BookingRecord)

    async def set_status(
        self, environment: str, booking_id: str, status: str, holder: str = ""
    ) -> BookingRecord:
        """Cancel ("cancelled") or enable ("active"); the same status again is a no-op."""

        async def attempt(found: BookingRecord) -> list[Any]:
            slot_id = found.slot_id
            keys = [
                keyspace.booking(booking_id, slot_id),
                keyspace.slot(slot_id),
                keyspace.lock(slot_id),
                keyspace.resource(slot_id),
                keyspace.holds(slot_id, holder),
                keyspace.held(slot_id),
                keyspace.lock_ends(slot_id),
                keyspace.events(slot_id),
                keyspace.resource_slots(slot_id),
                keyspace.resource_bookings(slot_id),
                keyspace.slot_bookings(slot_id),
            ]
            reply: list[Any] = await self._scripts.set_booking_status(
                keys, [environment, status, self._clock(), holder, slot_id]
            )
            return reply

        _, reply = await self._where_it_is(environment, booking_id, attempt)
        return from_flat(reply[1], BookingRecord)

    async def delete(self, environment: str, booking_id: str) -> BookingRecord:
        """Delete for good; returns the booking as it was."""

        async def attempt(found: BookingRecord) -> list[Any]:
            slot_id = found.slot_id
            keys = [
                keyspace.booking(booking_id, slot_id),
                keyspace.slot(slot_id),
                keyspace.resource(slot_id),
                keyspace.resource_bookings(slot_id),
                keyspace.slot_bookings(slot_id),
                keyspace.lock(slot_id),
                keyspace.events(slot_id),
                keyspace.held(slot_id),
                keyspace.resource_slots(slot_id),
                keyspace.lock_ends(slot_id),
            ]
            reply: list[Any] = await self._scripts.delete_booking(
                keys, [environment, slot_id, booking_id]
            )
            return reply

        found, _ = await self._where_it_is(environment, booking_id, attempt)
        return found

    async def _where_it_is(
        self,
        environment: str,
        booking_id: str,
        attempt: Callable[[BookingRecord], Awaitable[list[Any]]],
    ) -> tuple[BookingRecord, list[Any]]:
        """Run a script on the booking where it lives; again if it moved meanwhile (STALE).

        A booking is addressed through the slot it was found on, and a reschedule may
        move it between the look-up and the script; the script then answers STALE.
        """

        async def once() -> tuple[BookingRecord, list[Any]] | None:
            found = await self.get(environment, booking_id)
            reply = await attempt(found)
            if reply[0] == "STALE":
                return None
            return found, check(reply, self._clock())

        return await until_fresh("the booking", once, STALE_PAUSE_S)

    async def move_within_resource(
        self, environment: str, found: BookingRecord, target_slot_id: str, holder: str
    ) -> list[Any]:
        """One script moves a booking between two slots of one resource (one shard)."""
        booking_id, source_slot_id = found.id, found.slot_id
        keys = [
            keyspace.booking(booking_id, source_slot_id),
            keyspace.slot(source_slot_id),
            keyspace.slot_bookings(source_slot_id),
            keyspace.slot(target_slot_id),
            keyspace.lock(target_slot_id),
            keyspace.slot_bookings(target_slot_id),
            keyspace.resource(target_slot_id),
            keyspace.holds(target_slot_id, holder),
            keyspace.held(target_slot_id),
            keyspace.lock(source_slot_id),
            keyspace.held(source_slot_id),
            keyspace.lock_ends(target_slot_id),
            keyspace.events(target_slot_id),
            keyspace.resource_slots(target_slot_id),
        ]
        args = [
            environment,
            self._clock(),
            holder,
            booking_id,
            source_slot_id,
            target_slot_id,
        ]
        reply: list[Any] = await self._scripts.reschedule_booking(keys, args)
        return reply

    async def page(
        self,
        environment: str,
        resource_ids: list[str],
        where: BookingFilter,
        offset: int,
        limit: int,
    ) -> tuple[list[BookingRecord], int]:
        """Bookings [offset, offset + limit) that pass `where`, oldest first; and the total."""
        if where.slot_id is not None:
            if where.resource_id is not None and not same_shard(where.slot_id, where.resource_id):
                return [], 0  # a slot lives in its resource's tag: not this resource's slot
            owners = [where.slot_id]
        else:
            owners = resource_ids

        async def keys(owner_id: str, count: int) -> tuple[int, list[tuple[int, str]]]:
            reply = await self._list(environment, owner_id, where, (0, count), False)
            flat = reply[2:]
            return int(reply[1]), [
                (int(created_ms), str(booking_id))
                for created_ms, booking_id in zip(flat[::2], flat[1::2], strict=True)
            ]

        async def records(owner_id: str, at: int, count: int) -> tuple[int, list[BookingRecord]]:
            reply = await self._list(environment, owner_id, where, (at, count), True)
            return int(reply[1]), [_booking_json.decode(fields) for fields in reply[2:]]

        def created(record: BookingRecord) -> tuple[int, str]:
            return record.created_ms, record.id

        return await merged_page(owners, offset, limit, keys, records, created)

    async def _list(
        self,
        environment: str,
        owner_id: str,
        where: BookingFilter,
        window: tuple[int, int],
        with_records: bool,
    ) -> list[Any]:
        """One call of lua/list_bookings.lua on a resource's (or, with slot_id, a slot's) index."""
        index_key = (
            keyspace.resource_bookings(owner_id)
            if where.slot_id is None
            else keyspace.slot_bookings(where.slot_id)
        )
        keys = [keyspace.resource(owner_id), index_key, keyspace.booking_prefix(owner_id)]
        args = [
            environment,
            where.resource_id or "",
            where.status or "",
            window[0],
            window[1],
            int(with_records),
        ]
        reply: list[Any] = await self._scripts.list_bookings(keys, args)
        return reply if reply[0] == "OK" else ["OK", 0]


def _checked_slot(slot_id: str) -> str:
    if canonical_id(slot_id) != slot_id:
        raise SlotNotFound("slot not found")
    return slot_id
