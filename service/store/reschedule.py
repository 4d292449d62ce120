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
from typing import Any

import msgspec

from service import keyspace
from service.clock import Clock
from service.errors import SlotNotFound
from service.ids import canonical_id, same_shard
from service.records import BookingRecord, from_flat, to_flat
from service.scripts import Scripts
from service.store.bookings import STALE_PAUSE_S, BookingStore
from service.store.client import RedisClient
from service.store.refusals import check, until_fresh

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
        self._scripts = scripts
        self._clock = clock
        self._bookings = bookings
        self.crash_after: str | None = None  # tests: "intent", "reserve" or "release"

    async def reschedule(
        self, environment: str, booking_id: str, target_slot_id: str, holder: str
    ) -> BookingRecord:
        """Move the booking to `target_slot_id`, all or nothing."""
        if canonical_id(target_slot_id) != target_slot_id:
            raise SlotNotFound("slot not found")

        async def attempt() -> BookingRecord | None:
            found = await self._bookings.get(environment, booking_id)
            if found.slot_id == target_slot_id:
                return found
            if same_shard(found.slot_id, target_slot_id):
                reply = await self._bookings.move_within_resource(
                    environment, found, target_slot_id, holder
                )
            else:
                reply = await self._move_across(environment, found, target_slot_id, holder)
            if reply[0] == "STALE":
                return None
            return from_flat(check(reply, self._clock())[1], BookingRecord)

        return await until_fresh("the booking", attempt, STALE_PAUSE_S)

    async def _move_across(
        self, environment: str, found: BookingRecord, target_slot_id: str, holder: str
    ) -> list[Any]:
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
        reserved = await self._reserve(intent, found)
        if reserved[0] != "OK":
            await self._redis.zrem(keyspace.reschedule_intents(), entry)
            return reserved
        self._crash_point("reserve")
        released = await self._release(intent)
        if released[0] != "OK":
            await self._abort_place(intent)
            await self._redis.zrem(keyspace.reschedule_intents(), entry)
            return ["STALE"] if released[0] in ("STALE", "ABORTED") else released
        self._crash_point("release")
        confirmed = await self._confirm(intent)
        await self._redis.zrem(keyspace.reschedule_intents(), entry)
        # GONE: the booking was deleted on the target meanwhile; looking again says so.
        return ["STALE"] if confirmed[0] == "GONE" else confirmed

    async def heal(self) -> int:
        """Settle every logged move whose deadline has passed; returns how many."""
        intents_key = keyspace.reschedule_intents()
        entries: list[str] = await self._redis.zrangebyscore(  # type: ignore[assignment]
            intents_key, "-inf", self._clock()
        )
        for entry in entries:
            intent = _intent_codec[1].decode(entry)
            verdict = await self._scripts.abort_intent(
                [keyspace.booking(intent.booking_id, intent.source_slot_id)], [intent.intent_id]
            )
            if verdict[0] == "RELEASED":
                await self._confirm(intent)
            else:
                await self._abort_place(intent)
            await self._redis.zrem(intents_key, entry)
            logger.warning(
                "healed a half-done reschedule",
                extra={"booking_id": intent.booking_id, "outcome": verdict[0].lower()},
            )
        return len(entries)

    async def _reserve(self, intent: Intent, found: BookingRecord) -> list[Any]:
        target = intent.target_slot_id
        moved = msgspec.structs.replace(
            found,
            slot_id=target,
            pending_intent=intent.intent_id,
            pending_from_slot=found.slot_id,
            moved_to_slot="",
        )
        keys = [
            keyspace.slot(target),
            keyspace.lock(target),
            keyspace.resource(target),
            keyspace.booking(intent.booking_id, target),
            keyspace.holds(target, intent.holder),
            keyspace.held(target),
            keyspace.lock_ends(target),
            keyspace.events(target),
            keyspace.resource_slots(target),
        ]
        args = [
            intent.environment,
            self._clock(),
            intent.holder,
            intent.intent_id,
            intent.status,
            *to_flat(moved),
        ]
        reply: list[Any] = await self._scripts.reserve_place(keys, args)
        return reply

    async def _release(self, intent: Intent) -> list[Any]:
        source = intent.source_slot_id
        keys = [
            keyspace.booking(intent.booking_id, source),
            keyspace.slot(source),
            keyspace.resource(source),
            keyspace.resource_bookings(source),
            keyspace.slot_bookings(source),
            keyspace.lock(source),
            keyspace.events(source),
            keyspace.held(source),
            keyspace.resource_slots(source),
        ]
        args = [
            intent.environment,
            intent.booking_id,
            source,
            intent.status,
            intent.target_slot_id,
            intent.intent_id,
            self._clock(),
        ]
        reply: list[Any] = await self._scripts.release_booking(keys, args)
        return reply

    async def _confirm(self, intent: Intent) -> list[Any]:
        target = intent.target_slot_id
        keys = [
            keyspace.booking(intent.booking_id, target),
            keyspace.resource_bookings(target),
            keyspace.slot_bookings(target),
            keyspace.lock(target),
            keyspace.slot(target),
            keyspace.resource(target),
            keyspace.lock_ends(target),
            keyspace.events(target),
            keyspace.held(target),
        ]
        reply: list[Any] = await self._scripts.confirm_place(
            keys, [intent.booking_id, intent.intent_id, intent.holder]
        )
        return reply

    async def _abort_place(self, intent: Intent) -> None:
        target = intent.target_slot_id
        keys = [
            keyspace.booking(intent.booking_id, target),
            keyspace.slot(target),
            keyspace.resource(target),
            keyspace.lock(target),
            keyspace.events(target),
            keyspace.held(target),
            keyspace.resource_slots(target),
        ]
        await self._scripts.abort_place(keys, [intent.intent_id, intent.source_slot_id])

    def _crash_point(self, step: str) -> None:
        if self.crash_after == step:
            raise SimulatedCrash(f"simulated crash after the {step} step")
