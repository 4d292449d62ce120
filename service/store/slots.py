"""Slots and their locks: one script call per change, one round trip per request."""

from __future__ import annotations

from dataclasses import dataclass

from service import keyspace
from service.clock import Clock
from service.errors import ResourceNotFound, SlotNotFound
from service.ids import canonical_id, new_child_id
from service.records import SlotRecord, to_flat
from service.scripts import Scripts
from service.store.client import RedisClient, members, read_slot_views
from service.store.refusals import check, stale_attempts
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
    """GET /slots filters."""

    resource_id: str | None = None
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
        keys = [*_hold_keys(slot_id, holder), *_event_keys(slot_id)]
        now_ms = self._clock()
        args = [environment, holder, until_ms, now_ms, self._max_holds, quantity]
        _, token, view = check(await self._scripts.lock_slot(keys, args), now_ms)
        return SlotView.from_script(view), int(token)

    async def unlock(self, environment: str, slot_id: str, holder: str) -> SlotView:
        """Release `holder`'s lock or hold; harmless when it has none."""
        now_ms = self._clock()
        keys = [*_hold_keys(slot_id, holder), *_event_keys(slot_id)]
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
        for _ in stale_attempts("the slots of this resource"):
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
            if reply[0] != "STALE":
                check(reply, now_ms)
                _, status, disabled_before_s, timezone = reply
                return [
                    SlotView(record, 0, status == "published", int(disabled_before_s), timezone)
                    for record in records
                ]
        raise AssertionError("unreachable: stale_attempts raises when it runs out")

    async def _neighbours(self, resource_id: str, ends: list[tuple[int, str]]) -> list[str]:
        """For each (end_ms, id to skip): the slot starting last before end_ms, or ""."""
        pipe = self._redis.pipeline(transaction=False)
        for end_ms, _ in ends:
            pipe.zrevrangebyscore(
                keyspace.resource_slots(resource_id), f"({end_ms}", "-inf", start=0, num=2
            )
        found: list[list[str]] = await pipe.execute()
        return [
            next((slot_id for slot_id in before if slot_id != skip), "")
            for before, (_, skip) in zip(found, ends, strict=True)
        ]

    async def update(self, environment: str, slot_id: str, changes: SlotChanges) -> SlotView:
        """Apply a PATCH in one script: range, overlap and capacity checked there."""
        view_keys = _view_keys(slot_id)
        for _ in stale_attempts("the slots of this resource"):
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
            if reply[0] != "STALE":
                return SlotView.from_script(check(reply, now_ms)[1])
        raise AssertionError("unreachable: stale_attempts raises when it runs out")

    async def set_status(self, environment: str, slot_id: str, status: str) -> SlotView:
        """Enable ("active") or disable ("disabled") a slot."""
        now_ms = self._clock()
        reply = await self._scripts.set_slot_status(
            [*_view_keys(slot_id), keyspace.held(slot_id), keyspace.events(slot_id)],
            [environment, status, now_ms],
        )
        return SlotView.from_script(check(reply, now_ms)[1])

    async def delete(self, environment: str, slot_id: str) -> None:
        """Delete a slot without active bookings, with its cancelled bookings."""
        for _ in stale_attempts("the bookings of this slot"):
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
            if reply[0] != "STALE":
                check(reply, self._clock())
                return
        raise AssertionError("unreachable: stale_attempts raises when it runs out")

    async def matching(
        self, environment: str, resource_ids: list[str], where: SlotFilter
    ) -> list[SlotView]:
        """Slots of the given resources that pass `where`, ordered by start."""
        pipe = self._redis.pipeline(transaction=False)
        low = "-inf" if where.starts_from_ms is None else where.starts_from_ms
        high = "+inf" if where.ends_by_ms is None else f"({where.ends_by_ms}"
        for resource_id in resource_ids:
            pipe.zrangebyscore(keyspace.resource_slots(resource_id), low, high)
        id_lists: list[list[str]] = await pipe.execute()
        slot_ids = [slot_id for ids in id_lists for slot_id in ids]
        now_ms = self._clock()
        views = await read_slot_views(self._redis, slot_ids, now_ms)
        chosen = [
            view
            for view in views
            if view.record.environment == environment and _passes(view, where, now_ms)
        ]
        return sorted(chosen, key=lambda view: view.record.start_ms)

    def now_ms(self) -> int:
        """The store's clock, for callers that render views."""
        return self._clock()


def _passes(view: SlotView, where: SlotFilter, now_ms: int) -> bool:
    if where.ends_by_ms is not None and view.record.end_ms > where.ends_by_ms:
        return False
    return where.available is None or view.available(now_ms) == where.available


def _view_keys(slot_id: str) -> list[str]:
    if canonical_id(slot_id) != slot_id:
        raise SlotNotFound("slot not found")
    return [keyspace.slot(slot_id), keyspace.lock(slot_id), keyspace.resource(slot_id)]


def _hold_keys(slot_id: str, holder: str) -> list[str]:
    """KEYS of lock_slot and unlock_slot."""
    return [
        *_view_keys(slot_id),
        keyspace.holds(slot_id, holder),
        keyspace.held(slot_id),
    ]


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
