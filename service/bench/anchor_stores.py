"""Where the anchors keep their state: nowhere (the ceiling), or in Redis with one plain
redis-py EVALSHA per request (the naive anchor).

Keys (the anchors' own, beside nothing of slotlock's):
  bench:lock:<slot id>      the lock string, "<lock_key>" until its PXAT
  bench:slot:<slot id>      a slot hash, written by `seed_slots` before a naive phase
  bench:booking:<id>        a booking hash, one per POST /bookings answered 200

The naive scripts do what a straightforward implementation would: read the slot
hash; check the slot and a free place, write the booking hash and bump the
slot's counters. They have none of slotlock's locks, holds, indexes, events or
idempotency: the anchor is the floor a service that keeps data in Redis stands
on, not a second slotlock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import msgspec
import redis
from redis.asyncio import Redis

LOCK_LUA = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1
"""
UNLOCK_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
READ_LUA = """
return redis.call('HGETALL', KEYS[1])
"""
# KEYS[1] slot hash, KEYS[2] booking hash; ARGV: booking id, slot id, metadata JSON, now (ISO).
# Returns {"OK", resource id}, {"SLOT_NOT_FOUND"}, {"SLOT_DISABLED"} or {"SLOT_FULL"}.
BOOK_LUA = """
local slot = redis.call('HMGET', KEYS[1], 'resource_id', 'status', 'capacity',
                        'num_active_bookings')
local resource_id = slot[1]
if not resource_id then
  return {'SLOT_NOT_FOUND'}
end
if slot[2] ~= 'active' then
  return {'SLOT_DISABLED'}
end
if tonumber(slot[4]) >= tonumber(slot[3]) then
  return {'SLOT_FULL'}
end
redis.call('HSET', KEYS[2], 'id', ARGV[1], 'slot_id', ARGV[2], 'resource_id', resource_id,
           'status', 'active', 'metadata', ARGV[3], 'created_at', ARGV[4], 'updated_at', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'num_bookings', 1)
redis.call('HINCRBY', KEYS[1], 'num_active_bookings', 1)
return {'OK', resource_id}
"""


def slot_key(slot_id: str) -> str:
    """The naive anchor's slot hash."""
    return f"bench:slot:{slot_id}"


def booking_key(booking_id: str) -> str:
    """The naive anchor's booking hash."""
    return f"bench:booking:{booking_id}"


class AnchorSlot(msgspec.Struct, kw_only=True):
    """A slot as the naive anchor keeps it: every field a string in a Redis hash."""

    id: str
    resource_id: str
    start_date: str
    end_date: str
    capacity: int
    status: str
    lockable: bool
    num_bookings: int
    num_active_bookings: int
    num_cancelled_bookings: int
    metadata: str  # JSON, as stored
    created_at: str
    updated_at: str


# What the ceiling answers for every slot, and what seed_slots writes (with each id).
TEMPLATE = AnchorSlot(
    id="",
    resource_id="00000000-0000-4000-8000-000000000000",
    start_date="2030-01-01T10:00:00+00:00",
    end_date="2030-01-01T10:30:00+00:00",
    capacity=1,
    status="active",
    lockable=True,
    num_bookings=0,
    num_active_bookings=0,
    num_cancelled_bookings=0,
    metadata="{}",
    created_at="2030-01-01T00:00:00.000Z",
    updated_at="2030-01-01T00:00:00.000Z",
)


class Refused(Exception):
    """A request an anchor turns down: its status, error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


_REFUSALS = {  # a script's status: the answer's status, code and message
    "SLOT_NOT_FOUND": (404, "E025", "slot not found"),
    "SLOT_DISABLED": (422, "E051", "the slot is disabled"),
    "SLOT_FULL": (422, "E049", "the slot has no free place"),
}


def refusal(status: str) -> Refused:
    """The refusal a naive script's status stands for."""
    return Refused(*_REFUSALS[status])


class AnchorStore(Protocol):
    """Where an anchor keeps its locks, slots and bookings."""

    async def lock(self, slot_id: str, lock_key: str, until_ms: int) -> bool:
        """Take or move the lock; False when another key holds it."""
        ...

    async def unlock(self, slot_id: str, lock_key: str) -> None:
        """Release the lock if `lock_key` holds it."""
        ...

    async def read(self, slot_id: str) -> AnchorSlot:
        """The slot; Refused (404) when there is none."""
        ...

    async def book(self, booking_id: str, slot_id: str, metadata: str, now: str) -> str:
        """Book one place; the slot's resource id, or Refused."""
        ...


class NoStore:
    """Keeps nothing: every lock is granted, every slot is the template (the ceiling)."""

    async def lock(self, slot_id: str, lock_key: str, until_ms: int) -> bool:
        """Grant it."""
        return True

    async def unlock(self, slot_id: str, lock_key: str) -> None:
        """Nothing to release."""

    async def read(self, slot_id: str) -> AnchorSlot:
        """The template under this id."""
        return msgspec.structs.replace(TEMPLATE, id=slot_id)

    async def book(self, booking_id: str, slot_id: str, metadata: str, now: str) -> str:
        """Booked, in the template's resource."""
        return TEMPLATE.resource_id


class ScriptStore:
    """One EVALSHA per call, through redis-py's script objects (the naive anchor)."""

    def __init__(self, redis: Redis) -> None:
        self._lock = redis.register_script(LOCK_LUA)
        self._unlock = redis.register_script(UNLOCK_LUA)
        self._read = redis.register_script(READ_LUA)
        self._book = redis.register_script(BOOK_LUA)

    async def lock(self, slot_id: str, lock_key: str, until_ms: int) -> bool:
        """SET the lock unless another key holds it."""
        return bool(await self._lock([f"bench:lock:{slot_id}"], [lock_key, until_ms]))

    async def unlock(self, slot_id: str, lock_key: str) -> None:
        """Compare and delete."""
        await self._unlock([f"bench:lock:{slot_id}"], [lock_key])

    async def read(self, slot_id: str) -> AnchorSlot:
        """HGETALL of the slot hash, its strings converted to the slot's types."""
        flat = await self._read([slot_key(slot_id)])
        if not flat:
            raise refusal("SLOT_NOT_FOUND")
        return msgspec.convert(dict(zip(flat[::2], flat[1::2], strict=True)), AnchorSlot,
                               strict=False)  # fmt: skip

    async def book(self, booking_id: str, slot_id: str, metadata: str, now: str) -> str:
        """Check the slot and a free place, write the booking, count it on the slot."""
        keys = [slot_key(slot_id), booking_key(booking_id)]
        reply = await self._book(keys, [booking_id, slot_id, metadata, now])
        if reply[0] != "OK":
            raise refusal(reply[0])
        return str(reply[1])


def seed_slots(client: redis.Redis, slot_ids: Iterable[str], capacity: int) -> None:
    """Write the naive anchor's slot hashes: the template under each id, with `capacity`."""
    fields = msgspec.to_builtins(msgspec.structs.replace(TEMPLATE, capacity=capacity))
    fields["lockable"] = "true"  # a hash keeps strings; strict=False reads "true" back as True
    pipeline = client.pipeline(transaction=False)
    for slot_id in slot_ids:
        pipeline.hset(slot_key(slot_id), mapping={**fields, "id": slot_id})
    pipeline.execute()
