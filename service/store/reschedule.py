"""Rescheduling a booking: one script within a resource, a healed saga across two.

Slots of two resources live in two home tags, on two shards of a Cluster, and no
script can touch both. Such a move runs in three steps, each one atomic script,
announced first in an intent log:

    0. intent   ZADD sl:{reschedules}:intents  <intent>  deadline_ms
    1. reserve  target shard: a place is held and counted (no oversell possible)
    2. release  source shard: the booking leaves, keeping a forwarding address
    3. confirm  target shard: the reservation becomes the booking
    4. done     ZREM the intent

A crash or outage between steps leaves the intent in the log. Once its deadline
passes, any pod's healer settles it: abort_intent asks the source, atomically,
whether step 2 happened for this intent; if so the move goes forward (confirm),
if not the source is fenced against a late step 2 and the reservation is undone.
So a booking is never lost (it is on the source until step 2, and step 2 is only
possible while the reservation stands), and never counted twice once healed.
"""

from __future__ import annotations

import logging
import secrets

import msgspec

from service import keyspace
from service.clock import Clock
from service.errors import ApiError, SlotNotFound
from service.ids import canonical_id, same_shard
from service.records import BookingRecord, to_flat
from service.scripts import Scripts
from service.store.bookings import STALE_PAUSE_S, BookingStore
from service.store.calls.common import STALE, Stale
from service.store.calls.moves import Aborted, Gone, MoveCalls
from service.store.client import RedisClient
from service.store.refusals import until_fresh

logger = logging.getLogger("slotlock.reschedule")

INTENT_DEADLINE_MS = 15_000  # far beyond a healthy move; only then may the healer step in


class Intent(msgspec.Struct, frozen=True):
    """A cross-resource move, as logged before its first step."""

    intent_id: str
    environment: str
    booking_id: str
    source_slot_id: str
    target_slot_id: str
    status: str
    holder: str


class SimulatedCrash(RuntimeError):
    """Raised by a test's crash point between two steps of the saga."""


_intent_codec = (msgspec.json.Encoder(), msgspec.json.Decoder(Intent))


class Rescheduler:
    """Moves bookings between slots, and heals cross-resource moves left half-done."""

    def __init__(
        self, redis: RedisClient, scripts: Scripts, clock: Clock, bookings: BookingStore
    ) -> None:
        self._redis = redis
        self._moves = MoveCalls(scripts)
        self._clock = clock
        self._bookings = bookings
        self.crash_after: str | None = None  # tests: "intent", "reserve" or "release"

    async def reschedule(
        self, environment: str, booking_id: str, target_slot_id: str, holder: str
    ) -> BookingRecord:
        """Move the booking to `target_slot_id`, all or nothing."""
        if canonical_id(target_slot_id) != target_slot_id:
            raise SlotNotFound("slot not found")

        async def attempt() -> BookingRecord | Stale:
            found = await self._bookings.get(environment, booking_id)
            if found.slot_id == target_slot_id:
                return found
            if same_shard(found.slot_id, target_slot_id):
                return await self._bookings.move_within_resource(
                    environment, found, target_slot_id, holder
                )
            return await self._move_across(environment, found, target_slot_id, holder)

        return await until_fresh("the booking", attempt, STALE_PAUSE_S)

    async def _move_across(
        self, environment: str, found: BookingRecord, target_slot_id: str, holder: str
    ) -> BookingRecord | Stale:
        intent = Intent(
            intent_id=secrets.token_hex(8),
            environment=environment,
            booking_id=found.id,
            source_slot_id=found.slot_id,
            target_slot_id=target_slot_id,
            status=found.status,
            holder=holder if found.status == "active" else "",  # only a place consumes a lock
        )
        entry = _intent_codec[0].encode(intent)
        await self._redis.zadd(
            keyspace.reschedule_intents(), {entry: self._clock() + INTENT_DEADLINE_MS}
        )
        self._crash_point("intent")
        try:
            reserved = await self._reserve(intent, found)
        except ApiError:  # the target refuses the place: nothing to undo
            await self._redis.zrem(keyspace.reschedule_intents(), entry)
            raise
        if isinstance(reserved, Stale):
            await self._redis.zrem(keyspace.reschedule_intents(), entry)
            return reserved
        self._crash_point("reserve")
        try:
            released: Aborted | Stale | None = await self._release(intent)
        except ApiError:  # the booking is gone from the source
            await self._undo(intent, entry)
            raise
        if released is not None:  # aborted by the healer, or changed meanwhile: look again
            await self._undo(intent, entry)
            return STALE
        self._crash_point("release")
        confirmed = await self._confirm(intent)
        await self._redis.zrem(keyspace.reschedule_intents(), entry)
        # GONE: the booking was deleted on the target meanwhile; looking again says so.
        return STALE if isinstance(confirmed, Gone) else confirmed

    async def _undo(self, intent: Intent, entry: bytes) -> None:
        """Free the target's reservation and forget the intent: the source kept the booking."""
        await self._abort_place(intent)
        await self._redis.zrem(keyspace.reschedule_intents(), entry)

    async def heal(self) -> int:
        """Settle every logged move whose deadline has passed; returns how many."""
        intents_key = keyspace.reschedule_intents()
        entries: list[str] = await self._redis.zrangebyscore(  # type: ignore[assignment]
            intents_key, "-inf", self._clock()
        )
        for entry in entries:
            intent = _intent_codec[1].decode(entry)
            verdict = await self._moves.abort_intent(
                booking_key=keyspace.booking(intent.booking_id, intent.source_slot_id),
                intent_id=intent.intent_id,
            )
            if verdict == "RELEASED":
                await self._confirm(intent)
            else:
                await self._abort_place(intent)
            await self._redis.zrem(intents_key, entry)
            logger.warning(
                "healed a half-done reschedule",
                extra={"booking_id": intent.booking_id, "outcome": verdict.lower()},
            )
        return len(entries)

    async def _reserve(self, intent: Intent, found: BookingRecord) -> Stale | None:
        target = intent.target_slot_id
        moved = msgspec.structs.replace(
            found,
            slot_id=target,
            pending_intent=intent.intent_id,
            pending_from_slot=found.slot_id,
            moved_to_slot="",
        )
        return await self._moves.reserve_place(
            slot_key=keyspace.slot(target),
            lock_key=keyspace.lock(target),
            resource_key=keyspace.resource(target),
            booking_key=keyspace.booking(intent.booking_id, target),
            holds_key=keyspace.holds(target, intent.holder),
            held_key=keyspace.held(target),
            lock_ends_key=keyspace.lock_ends(target),
            events_key=keyspace.events(target),
            starts_key=keyspace.resource_slots(target),
            environment=intent.environment,
            now_ms=self._clock(),
            holder=intent.holder,
            intent_id=intent.intent_id,
            status=intent.status,
            fields=to_flat(moved),
        )

    async def _release(self, intent: Intent) -> Aborted | Stale | None:
        source = intent.source_slot_id
        return await self._moves.release_booking(
            booking_key=keyspace.booking(intent.booking_id, source),
            slot_key=keyspace.slot(source),
            resource_key=keyspace.resource(source),
            resource_bookings_key=keyspace.resource_bookings(source),
            slot_bookings_key=keyspace.slot_bookings(source),
            lock_key=keyspace.lock(source),
            events_key=keyspace.events(source),
            held_key=keyspace.held(source),
            starts_key=keyspace.resource_slots(source),
            environment=intent.environment,
            booking_id=intent.booking_id,
            source_slot_id=source,
            status=intent.status,
            target_slot_id=intent.target_slot_id,
            intent_id=intent.intent_id,
            now_ms=self._clock(),
        )

    async def _confirm(self, intent: Intent) -> BookingRecord | Gone:
        target = intent.target_slot_id
        return await self._moves.confirm_place(
            booking_key=keyspace.booking(intent.booking_id, target),
            resource_bookings_key=keyspace.resource_bookings(target),
            slot_bookings_key=keyspace.slot_bookings(target),
            lock_key=keyspace.lock(target),
            slot_key=keyspace.slot(target),
            resource_key=keyspace.resource(target),
            lock_ends_key=keyspace.lock_ends(target),
            events_key=keyspace.events(target),
            held_key=keyspace.held(target),
            booking_id=intent.booking_id,
            intent_id=intent.intent_id,
            holder=intent.holder,
        )

    async def _abort_place(self, intent: Intent) -> None:
        target = intent.target_slot_id
        await self._moves.abort_place(
            booking_key=keyspace.booking(intent.booking_id, target),
            slot_key=keyspace.slot(target),
            resource_key=keyspace.resource(target),
            lock_key=keyspace.lock(target),
            events_key=keyspace.events(target),
            held_key=keyspace.held(target),
            starts_key=keyspace.resource_slots(target),
            intent_id=intent.intent_id,
            source_slot_id=intent.source_slot_id,
        )

    def _crash_point(self, step: str) -> None:
        if self.crash_after == step:
            raise SimulatedCrash(f"simulated crash after the {step} step")
