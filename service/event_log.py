"""A resource's change stream in Redis (lua/lib/events.lua): positions, replay, the expiry sweep.

The scripts that change slots append the events; this module only reads them, checks a
client's position, renders an entry as the SSE message GET /resources/:id/events sends,
and moves the ends of locks that ran out by themselves into the stream (expire_locks.lua).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError

from service import keyspace
from service.clock import Clock
from service.scripts import Scripts
from service.store.calls.locks import ExpiringSlot, LockCalls
from service.store.client import RedisClient
from service.views import SlotView

START = "0-0"  # the position before a stream's first event
REPLAY_PAGE = 500
_EVENT_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
_view_decoder = msgspec.json.Decoder(list[Any])
_encoder = msgspec.json.Encoder()


def id_order(event_id: str) -> tuple[int, int] | None:
    """An event id as a comparable pair, or None for text that is no event id."""
    match = _EVENT_ID.match(event_id)
    return (int(match[1]), int(match[2])) if match else None


# A slot event's fields after its type, in the order of lib/slot_view.lua's view (data: the
# slot's fields as JSON); lib/events.lua's slot_event stores them.
_VIEW_FIELDS = (
    "data",
    "locked_until",
    "resource_status",
    "booking_disabled_before",
    "timezone",
    "held",
)


@dataclass(slots=True)
class StoredEvent:
    """One stream entry: its id, its type, its data and, for a slot event, the slot's view
    (SlotView.from_script's list) as the script stored it."""

    id: str
    type: str
    data: str
    view: list[Any] | None = None
    _message: bytes | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, entry_id: str, fields: dict[str, str]) -> StoredEvent:
        """From an XRANGE/XREAD entry."""
        view = [fields[name] for name in _VIEW_FIELDS] if "locked_until" in fields else None
        return cls(entry_id, fields.get("type", ""), fields.get("data", "{}"), view)

    def order(self) -> tuple[int, int]:
        """Its id as a comparable pair."""
        found = id_order(self.id)
        assert found is not None, self.id
        return found

    def ends_stream(self) -> bool:
        """Whether no event can follow (the resource is gone)."""
        return self.type == "resource.deleted"

    def message(self) -> bytes:
        """The SSE message, rendered once however many streams send it."""
        if self._message is None:
            self._message = self._render()
        return self._message

    def _render(self) -> bytes:
        """The SSE message: a slot as GET /slots/:id showed it right after the change.

        The view is rendered at the event's own instant (its id's ms, Redis's clock), so a
        replayed slot.locked still shows its lock, and nothing a view leaves out (lock_key,
        holder, environment, booking metadata) can reach a client.
        """
        if self.type.startswith("slot.") and self.type != "slot.deleted":
            # Entries written before the view's parts had fields of their own hold the whole
            # view as one JSON array in data; they stay readable while the stream keeps them.
            stored = self.view if self.view is not None else _view_decoder.decode(self.data)
            view = SlotView.from_script(stored)
            data = _encoder.encode({"slot": view.to_payload(self.order()[0])})
        else:
            data = self.data.encode()
        return b"id: %s\nevent: %s\ndata: %s\n\n" % (self.id.encode(), self.type.encode(), data)


def reset_message(position: str) -> bytes:
    """The `reset` event: the client lists again; the stream goes on from `position`."""
    return b"id: %s\nevent: reset\ndata: {}\n\n" % position.encode()


class EventLog:
    """Reads one resource's stream and sweeps its ended locks into it."""

    def __init__(self, redis: RedisClient, scripts: Scripts, clock: Clock) -> None:
        self._redis = redis
        self._locks = LockCalls(scripts)
        self._clock = clock

    async def last_id(self, resource_id: str) -> str:
        """The stream's position now (START for a resource with no events yet)."""
        newest = await self._redis.xrevrange(keyspace.events(resource_id), count=1)
        return str(newest[0][0]) if newest else START

    async def resumable(self, resource_id: str, position: str) -> bool:
        """Whether every event after `position` is still kept and `position` was issued.

        Trimming drops a stream's oldest entries only (nothing calls XDEL), so every event
        after a position that is still in the stream is there too. A position no longer in
        it is refused even when it was the last one trimmed (Redis keeps no record of which
        ids it trimmed): such a client lists again, which is always safe.
        """
        wanted = id_order(position)
        if wanted is None:
            return False
        key = keyspace.events(resource_id)
        try:
            info: dict[str, Any] = await self._redis.xinfo_stream(key)
        except ResponseError:  # no stream: nothing was ever issued
            return position == START
        if wanted > (id_order(str(info.get("last-generated-id", START))) or (0, 0)):
            return False
        if position == START:  # the list of a resource with no events yet: nothing dropped since
            return int(info.get("entries-added", info["length"])) == int(info["length"])
        return bool(await self._redis.xrange(key, position, position, count=1))

    async def after(self, resource_id: str, position: str) -> list[StoredEvent]:
        """Up to REPLAY_PAGE events after `position`, oldest first."""
        entries: list[tuple[str, dict[str, str]]] = await self._redis.xrange(  # type: ignore[assignment]
            keyspace.events(resource_id), f"({position}", "+", count=REPLAY_PAGE
        )
        return [StoredEvent.of(str(entry_id), fields) for entry_id, fields in entries]

    async def sweep(self, resource_ids: list[str]) -> int:
        """Write slot.unlocked for every lock of these resources that ran out by itself.

        Idempotent (expire_locks.lua skips what is settled), so every pod that watches a
        resource may sweep it. Returns how many events it wrote.

        Every caller is a read that sweeps first (a list, a stream's replay, the pod's
        stream reader), so a full or read-only Redis, which refuses the sweep's writes,
        leaves the ended locks for a later sweep and the read goes on: a list is exact
        without the sweep (list_slots.lua checks every entry of lock-ends, due or not),
        and the slot.unlocked events come later, after any position read meanwhile.
        """
        if not resource_ids:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        now_ms = self._clock()
        for resource_id in resource_ids:
            pipe.zrangebyscore(keyspace.lock_ends(resource_id), "-inf", now_ms, start=0, num=100)
        due_lists: list[list[str]] = await pipe.execute()
        written = 0
        for resource_id, due in zip(resource_ids, due_lists, strict=True):
            if due:
                with contextlib.suppress(OutOfMemoryError, ReadOnlyError):
                    written += await self._expire(resource_id, due)
        return written

    async def _expire(self, resource_id: str, slot_ids: list[str]) -> int:
        return await self._locks.expire_locks(
            lock_ends_key=keyspace.lock_ends(resource_id),
            events_key=keyspace.events(resource_id),
            resource_key=keyspace.resource(resource_id),
            per_slot=[
                ExpiringSlot(keyspace.slot(slot_id), keyspace.lock(slot_id), keyspace.held(slot_id))
                for slot_id in slot_ids
            ],
            now_ms=self._clock(),
            slot_ids=slot_ids,
        )
