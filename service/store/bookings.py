"""Bookings: create (one script, one round trip), status changes, moves, lists."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from service import keyspace
from service.clock import Clock
from service.errors import BookingNotFound, SlotNotFound
from service.ids import canonical_id, new_child_id, same_shard
from service.records import BookingRecord, from_hash, to_flat
from service.scripts import Scripts
from service.store.calls.bookings import BookingCalls, BookingPage, Replayed
from service.store.calls.common import Stale
from service.store.client import RedisClient
from service.store.listing import merged_page
from service.store.refusals import until_fresh

T = TypeVar("T")
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
        self._calls = BookingCalls(scripts)
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
        booked = await self._calls.create_booking(
            slot_key=keyspace.slot(slot_id),
            lock_key=keyspace.lock(slot_id),
            resource_key=keyspace.resource(slot_id),
            resource_bookings_key=keyspace.resource_bookings(slot_id),
            slot_bookings_key=keyspace.slot_bookings(slot_id),
            booking_key=keyspace.booking(record.id),
            receipt_key=keyspace.receipt(slot_id, idempotency_hash or "none"),
            holds_key=keyspace.holds(slot_id, holder),
            held_key=keyspace.held(slot_id),
            lock_ends_key=keyspace.lock_ends(slot_id),
            events_key=keyspace.events(slot_id),
            starts_key=keyspace.resource_slots(slot_id),
            environment=environment,
            now_ms=now_ms,
            holder=holder,
            booking_id=record.id,
            receipt_ttl_ms=RECEIPT_TTL_MS if idempotency_hash else 0,
            fields=to_flat(record),
        )
        if isinstance(booked, Replayed):  # the first attempt with this Idempotency-Key booked
            return await self.get(environment, booked.booking_id)
        record.resource_id = booked.resource_id
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

        async def attempt(found: BookingRecord) -> BookingRecord | Stale:
            return await self._calls.update_booking(
                booking_key=keyspace.booking(booking_id, found.slot_id),
                environment=environment,
                now_ms=self._clock(),
                metadata=metadata_json,
            )

        _, updated = await self._where_it_is(environment, booking_id, attempt)
        return updated

    async def set_status(
        self, environment: str, booking_id: str, status: str, holder: str = ""
    ) -> BookingRecord:
        """Cancel ("cancelled") or enable ("active"); the same status again is a no-op."""

        async def attempt(found: BookingRecord) -> BookingRecord | Stale:
            slot_id = found.slot_id
            return await self._calls.set_booking_status(
                booking_key=keyspace.booking(booking_id, slot_id),
                slot_key=keyspace.slot(slot_id),
                lock_key=keyspace.lock(slot_id),
                resource_key=keyspace.resource(slot_id),
                holds_key=keyspace.holds(slot_id, holder),
                held_key=keyspace.held(slot_id),
                lock_ends_key=keyspace.lock_ends(slot_id),
                events_key=keyspace.events(slot_id),
                starts_key=keyspace.resource_slots(slot_id),
                resource_bookings_key=keyspace.resource_bookings(slot_id),
                slot_bookings_key=keyspace.slot_bookings(slot_id),
                environment=environment,
                status=status,
                now_ms=self._clock(),
                holder=holder,
                slot_id=slot_id,
            )

        _, changed = await self._where_it_is(environment, booking_id, attempt)
        return changed

    async def delete(self, environment: str, booking_id: str) -> BookingRecord:
        """Delete for good; returns the booking as it was."""

        async def attempt(found: BookingRecord) -> Stale | None:
            slot_id = found.slot_id
            return await self._calls.delete_booking(
                booking_key=keyspace.booking(booking_id, slot_id),
                slot_key=keyspace.slot(slot_id),
                resource_key=keyspace.resource(slot_id),
                resource_bookings_key=keyspace.resource_bookings(slot_id),
                slot_bookings_key=keyspace.slot_bookings(slot_id),
                lock_key=keyspace.lock(slot_id),
                events_key=keyspace.events(slot_id),
                held_key=keyspace.held(slot_id),
                starts_key=keyspace.resource_slots(slot_id),
                lock_ends_key=keyspace.lock_ends(slot_id),
                environment=environment,
                slot_id=slot_id,
                booking_id=booking_id,
            )

        found, _ = await self._where_it_is(environment, booking_id, attempt)
        return found

    async def _where_it_is(
        self,
        environment: str,
        booking_id: str,
        attempt: Callable[[BookingRecord], Awaitable[T | Stale]],
    ) -> tuple[BookingRecord, T]:
        """Run a script on the booking where it lives; again if it moved meanwhile (STALE).

        A booking is addressed through the slot it was found on, and a reschedule may
        move it between the look-up and the script; the script then answers STALE.
        """

        async def once() -> tuple[BookingRecord, T] | Stale:
            found = await self.get(environment, booking_id)
            done = await attempt(found)
            return done if isinstance(done, Stale) else (found, done)

        return await until_fresh("the booking", once, STALE_PAUSE_S)

    async def move_within_resource(
        self, environment: str, found: BookingRecord, target_slot_id: str, holder: str
    ) -> BookingRecord | Stale:
        """One script moves a booking between two slots of one resource (one shard)."""
        booking_id, source, target = found.id, found.slot_id, target_slot_id
        return await self._calls.reschedule_booking(
            booking_key=keyspace.booking(booking_id, source),
            source_slot_key=keyspace.slot(source),
            source_bookings_key=keyspace.slot_bookings(source),
            target_slot_key=keyspace.slot(target),
            target_lock_key=keyspace.lock(target),
            target_bookings_key=keyspace.slot_bookings(target),
            resource_key=keyspace.resource(target),
            holds_key=keyspace.holds(target, holder),
            target_held_key=keyspace.held(target),
            source_lock_key=keyspace.lock(source),
            source_held_key=keyspace.held(source),
            lock_ends_key=keyspace.lock_ends(target),
            events_key=keyspace.events(target),
            starts_key=keyspace.resource_slots(target),
            environment=environment,
            now_ms=self._clock(),
            holder=holder,
            booking_id=booking_id,
            source_slot_id=source,
            target_slot_id=target,
        )

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
            page = await self._list(environment, owner_id, where, (0, count), False)
            return page.total, page.sort_keys

        async def records(owner_id: str, at: int, count: int) -> tuple[int, list[BookingRecord]]:
            page = await self._list(environment, owner_id, where, (at, count), True)
            return page.total, page.records

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
    ) -> BookingPage:
        """One call of lua/list_bookings.lua on a resource's (or, with slot_id, a slot's) index."""
        return await self._calls.list_bookings(
            resource_key=keyspace.resource(owner_id),
            index_key=(
                keyspace.resource_bookings(owner_id)
                if where.slot_id is None
                else keyspace.slot_bookings(where.slot_id)
            ),
            booking_prefix=keyspace.booking_prefix(owner_id),
            environment=environment,
            resource_id=where.resource_id or "",
            status=where.status or "",
            offset=window[0],
            limit=window[1],
            with_records=with_records,
        )


def _checked_slot(slot_id: str) -> str:
    if canonical_id(slot_id) != slot_id:
        raise SlotNotFound("slot not found")
    return slot_id
