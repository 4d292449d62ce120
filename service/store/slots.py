"""Slots and their locks: one script call per change, one round trip per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service import keyspace
from service.clock import Clock
from service.errors import ResourceNotFound, SlotNotFound
from service.ids import canonical_id, new_child_id
from service.records import SlotRecord, to_flat
from service.scripts import Scripts
from service.store.bands import band_bounds, band_score, sort_key_of
from service.store.client import RedisClient, members
from service.store.listing import merged_page
from service.store.refusals import check, until_fresh
from service.views import SlotView


@dataclass(frozen=True, slots=True)
class SlotDraft:
    """A slot to create, checked but not yet stored."""

    start_ms: int
    end_ms: int
    capacity: int
    lockable: bool
    metadata_json: str


@dataclass(frozen=True, slots=True)
class SlotChanges:
    """A PATCH: None keeps the current value."""

    start_ms: int | None = None
    end_ms: int | None = None
    capacity: int | None = None
    lockable: bool | None = None
    metadata_json: str | None = None


@dataclass(frozen=True, slots=True)
class SlotFilter:
    """GET /slots filters (the resources to list are the caller's to find)."""

    available: bool | None = None
    starts_from_ms: int | None = None
    ends_by_ms: int | None = None


class SlotStore:
    """The only code that reads or changes slots and locks in Redis."""

    def __init__(
        self, redis: RedisClient, scripts: Scripts, clock: Clock, max_holds_per_key: int
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._clock = clock
        self._max_holds = max_holds_per_key

    async def get(self, environment: str, slot_id: str) -> SlotView:
        """One slot, as its owner's environment sees it."""
        now_ms = self._clock()
        keys = [*_view_keys(slot_id), keyspace.held(slot_id)]
        reply = await self._scripts.read_slot(keys, [environment, now_ms])
        return SlotView.from_script(check(reply, now_ms)[1])

    async def lock(
        self, environment: str, slot_id: str, holder: str, until_ms: int, quantity: int = 0
    ) -> tuple[SlotView, int]:
        """Take, move or convert a lock (quantity 0) or a hold of `quantity` places.

        Returns the slot and the fencing token, kept while the same key changes what it has.
        """
        keys = _lock_keys(slot_id, holder)
        now_ms = self._clock()
        args = [environment, holder, until_ms, now_ms, self._max_holds, quantity]
        _, token, view = check(await self._scripts.lock_slot(keys, args), now_ms)
        return SlotView.from_script(view), int(token)

    async def unlock(self, environment: str, slot_id: str, holder: str) -> SlotView:
        """Release `holder`'s lock or hold; harmless when it has none."""
        now_ms = self._clock()
        keys = _lock_keys(slot_id, holder)
        reply = await self._scripts.unlock_slot(keys, [environment, holder, now_ms])
        return SlotView.from_script(check(reply, now_ms)[1])

    async def create(
        self, environment: str, resource_id: str, drafts: list[SlotDraft]
    ) -> list[SlotView]:
        """Add slots to a resource, all or none; the caller checked them against each other."""
        if canonical_id(resource_id) != resource_id:
            raise ResourceNotFound("resource not found")
        now_ms = self._clock()
        records = [_new_record(environment, resource_id, draft, now_ms) for draft in drafts]
        field_count = len(to_flat(records[0]))

        async def attempt() -> list[SlotView] | None:
            neighbours = await self._neighbours(resource_id, [(r.end_ms, "") for r in records])
            keys = [
                keyspace.resource(resource_id),
                keyspace.resource_slots(resource_id),
                keyspace.events(resource_id),
            ]
            args: list[str | int] = [environment, field_count]
            for record, neighbour in zip(records, neighbours, strict=True):
                keys += [keyspace.slot(record.id), keyspace.slot(neighbour or record.id)]
                args += [record.id, record.start_ms, record.end_ms, neighbour, *to_flat(record)]
            reply = await self._scripts.create_slots(keys, args)
            if reply[0] == "STALE":
                return None
            check(reply, now_ms)
            _, status, disabled_before_s, timezone = reply
            return [
                SlotView(record, 0, status == "published", int(disabled_before_s), timezone)
                for record in records
            ]

        return await until_fresh("the slots of this resource", attempt)

    async def _neighbours(self, resource_id: str, ends: list[tuple[int, str]]) -> list[str]:
        """For each (end_ms, id to skip): the slot starting last before end_ms, or "".

        The index keeps open and shut slots in two bands: the neighbour is the later of
        the two bands' candidates.
        """
        pipe = self._redis.pipeline(transaction=False)
        index_key = keyspace.resource_slots(resource_id)
        for end_ms, _ in ends:
            for is_open in (True, False):
                low, _ = band_bounds(is_open)
                high = f"({band_score(end_ms, is_open)}"
                pipe.zrevrangebyscore(index_key, high, low, start=0, num=2, withscores=True)
        found: list[list[tuple[str, float]]] = await pipe.execute()
        neighbours = []
        for at, (_, skip) in enumerate(ends):
            candidates = [
                (sort_key_of(score), slot_id)
                for band in found[2 * at : 2 * at + 2]
                for slot_id, score in band
                if slot_id != skip
            ]
            # Within a band the first candidate that is not skipped starts last.
            neighbours.append(max(candidates)[1] if candidates else "")
        return neighbours

    async def update(self, environment: str, slot_id: str, changes: SlotChanges) -> SlotView:
        """Apply a PATCH in one script: range, overlap and capacity checked there."""
        view_keys = _view_keys(slot_id)

        async def attempt() -> SlotView | None:
            end_ms = changes.end_ms
            if end_ms is None:
                end_ms = int(await self._redis.hget(keyspace.slot(slot_id), "end_ms") or 0)
            (neighbour,) = await self._neighbours(slot_id, [(end_ms, slot_id)])
            keys = [
                *view_keys,
                keyspace.resource_slots(slot_id),
                keyspace.slot(neighbour or slot_id),
                keyspace.held(slot_id),
                keyspace.events(slot_id),
                keyspace.lock_ends(slot_id),
            ]
            now_ms = self._clock()
            args = [
                environment,
                now_ms,
                _or_keep(changes.start_ms),
                _or_keep(changes.end_ms),
                _or_keep(changes.capacity),
                _or_keep(None if changes.lockable is None else int(changes.lockable)),
                _or_keep(changes.metadata_json),
                neighbour,
            ]
            reply = await self._scripts.update_slot(keys, args)
            if reply[0] == "STALE":
                return None
            return SlotView.from_script(check(reply, now_ms)[1])

        return await until_fresh("the slots of this resource", attempt)

    async def set_status(self, environment: str, slot_id: str, status: str) -> SlotView:
        """Enable ("active") or disable ("disabled") a slot."""
        now_ms = self._clock()
        keys = [
            *_view_keys(slot_id),
            keyspace.held(slot_id),
            keyspace.events(slot_id),
            keyspace.resource_slots(slot_id),
            keyspace.lock_ends(slot_id),
        ]
        reply = await self._scripts.set_slot_status(keys, [environment, status, now_ms])
        return SlotView.from_script(check(reply, now_ms)[1])

    async def delete(self, environment: str, slot_id: str) -> None:
        """Delete a slot without active bookings, with its cancelled bookings."""

        async def attempt() -> list[Any] | None:
            booking_ids = await members(self._redis, keyspace.slot_bookings(slot_id))
            keys = [
                *_view_keys(slot_id),
                keyspace.resource_slots(slot_id),
                keyspace.slot_bookings(slot_id),
                keyspace.resource_bookings(slot_id),
                keyspace.held(slot_id),
                *_event_keys(slot_id),
                *[keyspace.booking(booking_id, slot_id) for booking_id in booking_ids],
            ]
            reply = await self._scripts.delete_slot(keys, [environment, *booking_ids])
            return None if reply[0] == "STALE" else reply

        check(await until_fresh("the bookings of this slot", attempt), self._clock())

    async def page(
        self,
        environment: str,
        resource_ids: list[str],
        where: SlotFilter,
        window: tuple[int, int],
        now_ms: int,
    ) -> tuple[list[SlotView], int]:
        """Slots [offset, offset + limit) of the resources passing `where`, by start; the total.

        `now_ms` decides which locks and booking windows have ended: the caller shows
        the views at the same instant, so each slot shows what the filter saw.
        """
        offset, limit = window

        async def keys(resource_id: str, count: int) -> tuple[int, list[tuple[int, str]]]:
            reply = await self._list(environment, resource_id, where, now_ms, (0, count), False)
            flat = reply[5:]
            return int(reply[1]), [
                (int(start), str(id_)) for start, id_ in zip(flat[::2], flat[1::2], strict=True)
            ]

        async def views(resource_id: str, at: int, count: int) -> tuple[int, list[SlotView]]:
            reply = await self._list(environment, resource_id, where, now_ms, (at, count), True)
            resource, flat = reply[2:5], reply[5:]
            return int(reply[1]), [
                SlotView.from_script([slot_json, locked_until_ms, *resource, held])
                for slot_json, locked_until_ms, held in zip(
                    flat[::3], flat[1::3], flat[2::3], strict=True
                )
            ]

        def start_of(view: SlotView) -> tuple[int, str]:
            return view.record.start_ms, view.record.id

        return await merged_page(resource_ids, offset, limit, keys, views, start_of)

    async def count_available(self, environment: str, resource_id: str) -> int:
        """How many of the resource's slots are `available` now: index work only."""
        where = SlotFilter(available=True)
        reply = await self._list(environment, resource_id, where, self._clock(), (0, 0), False)
        return int(reply[1])

    async def _list(
        self,
        environment: str,
        resource_id: str,
        where: SlotFilter,
        now_ms: int,
        window: tuple[int, int],
        with_views: bool,
    ) -> list[Any]:
        """One call of lua/list_slots.lua: ["OK", total, status, window, timezone, items...]."""
        keys = [
            keyspace.resource(resource_id),
            keyspace.resource_slots(resource_id),
            keyspace.lock_ends(resource_id),
            keyspace.slot_prefix(resource_id),
            keyspace.lock_prefix(resource_id),
            keyspace.held_prefix(resource_id),
        ]
        args = [
            environment,
            now_ms,
            "" if where.available is None else str(where.available).lower(),
            _or_keep(where.starts_from_ms),
            _or_keep(where.ends_by_ms),
            window[0],
            window[1],
            int(with_views),
        ]
        reply: list[Any] = await self._scripts.list_slots(keys, args)
        return reply if reply[0] == "OK" else ["OK", 0, "", 0, "UTC"]

    def now_ms(self) -> int:
        """The store's clock, for callers that render views."""
        return self._clock()


def _view_keys(slot_id: str) -> list[str]:
    if canonical_id(slot_id) != slot_id:
        raise SlotNotFound("slot not found")
    return [keyspace.slot(slot_id), keyspace.lock(slot_id), keyspace.resource(slot_id)]


def _hold_keys(slot_id: str, holder: str) -> list[str]:
    """The slot's view keys, the holder's cap set and the slot's partial holds."""
    return [
        *_view_keys(slot_id),
        keyspace.holds(slot_id, holder),
        keyspace.held(slot_id),
    ]


def _lock_keys(slot_id: str, holder: str) -> list[str]:
    """KEYS of lock_slot and unlock_slot: the hold's, then the events' (which the lists read)."""
    return [*_hold_keys(slot_id, holder), *_event_keys(slot_id)]


def _event_keys(slot_id: str) -> list[str]:
    """The resource's lock ends and change stream, which every lock-changing script takes last."""
    return [keyspace.lock_ends(slot_id), keyspace.events(slot_id)]


def _or_keep(value: object) -> str:
    return "" if value is None else str(value)


def _new_record(environment: str, resource_id: str, draft: SlotDraft, now_ms: int) -> SlotRecord:
    return SlotRecord(
        id=new_child_id(resource_id),
        environment=environment,
        resource_id=resource_id,
        start_ms=draft.start_ms,
        end_ms=draft.end_ms,
        capacity=draft.capacity,
        lockable=draft.lockable,
        metadata=draft.metadata_json,
        created_ms=now_ms,
        updated_ms=now_ms,
    )
