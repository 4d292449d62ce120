"""Slots and their locks: one script call per change, one round trip per request."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

from service import keyspace
from service.clock import Clock
from service.errors import ResourceNotFound, SlotNotFound
from service.ids import canonical_id, new_child_id
from service.records import SlotRecord, to_flat
from service.scripts import Scripts
from service.store.bands import band_bounds, band_score, sort_key_of
from service.store.calls.common import Stale
from service.store.calls.locks import LockCalls, Locked
from service.store.calls.slots import NewSlot, SlotCalls, SlotPage
from service.store.client import RedisClient, members
from service.store.listing import merged_page
from service.store.refusals import until_fresh
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
        self._locks = LockCalls(scripts)
        self._calls = SlotCalls(scripts)
        self._clock = clock
        self._max_holds = max_holds_per_key

    async def get(self, environment: str, slot_id: str) -> SlotView:
        """One slot, as its owner's environment sees it."""
        keys = keyspace.slot_keys(_checked(slot_id))
        return await self._locks.read_slot(
            slot_key=keys.slot,
            lock_key=keys.lock,
            resource_key=keys.resource,
            held_key=keys.held,
            environment=environment,
            now_ms=self._clock(),
        )

    def lock(
        self, environment: str, slot_id: str, holder: str, until_ms: int, quantity: int = 0
    ) -> Awaitable[Locked]:
        """Take, move or convert a lock (quantity 0) or a hold of `quantity` places: await
        the slot and the fencing token, kept while the same key changes what it has.

        Lock and unlock hand back their script call's awaitable rather than awaiting it,
        as the batcher does (service/store/batching.py): a frame fewer that every lock
        and unlock would pass through twice, made and resumed by the reply.
        """
        keys = keyspace.slot_keys(_checked(slot_id), holder)
        return self._locks.lock_slot(
            slot_key=keys.slot,
            lock_key=keys.lock,
            resource_key=keys.resource,
            holds_key=keys.holds,
            held_key=keys.held,
            lock_ends_key=keys.lock_ends,
            events_key=keys.events,
            environment=environment,
            holder=holder,
            until_ms=until_ms,
            now_ms=self._clock(),
            max_holds=self._max_holds,
            quantity=quantity,
        )

    def unlock(self, environment: str, slot_id: str, holder: str) -> Awaitable[SlotView]:
        """Release `holder`'s lock or hold (harmless when it has none): await the slot."""
        keys = keyspace.slot_keys(_checked(slot_id), holder)
        return self._locks.unlock_slot(
            slot_key=keys.slot,
            lock_key=keys.lock,
            resource_key=keys.resource,
            holds_key=keys.holds,
            held_key=keys.held,
            lock_ends_key=keys.lock_ends,
            events_key=keys.events,
            environment=environment,
            holder=holder,
            now_ms=self._clock(),
        )

    async def create(
        self, environment: str, resource_id: str, drafts: list[SlotDraft]
    ) -> list[SlotView]:
        """Add slots to a resource, all or none; the caller checked them against each other."""
        if canonical_id(resource_id) != resource_id:
            raise ResourceNotFound("resource not found")
        now_ms = self._clock()
        records = [_new_record(environment, resource_id, draft, now_ms) for draft in drafts]
        flats = [to_flat(record) for record in records]

        async def attempt() -> list[SlotView] | Stale:
            neighbours = await self._neighbours(resource_id, [(r.end_ms, "") for r in records])
            created = await self._calls.create_slots(
                resource_key=keyspace.resource(resource_id),
                starts_key=keyspace.resource_slots(resource_id),
                events_key=keyspace.events(resource_id),
                per_slot=[
                    _new_slot(record, flat, neighbour)
                    for record, flat, neighbour in zip(records, flats, neighbours, strict=True)
                ],
                environment=environment,
                field_count=len(flats[0]),
            )
            if isinstance(created, Stale):
                return created
            published = created.resource_status == "published"
            return [
                SlotView(record, 0, published, created.booking_disabled_before_s, created.timezone)
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
        slot_key = keyspace.slot(_checked(slot_id))

        async def attempt() -> SlotView | Stale:
            end_ms = changes.end_ms
            if end_ms is None:
                end_ms = int(await self._redis.hget(slot_key, "end_ms") or 0)
            (neighbour,) = await self._neighbours(slot_id, [(end_ms, slot_id)])
            return await self._calls.update_slot(
                slot_key=slot_key,
                lock_key=keyspace.lock(slot_id),
                resource_key=keyspace.resource(slot_id),
                starts_key=keyspace.resource_slots(slot_id),
                neighbour_key=keyspace.slot(neighbour or slot_id),
                held_key=keyspace.held(slot_id),
                events_key=keyspace.events(slot_id),
                lock_ends_key=keyspace.lock_ends(slot_id),
                environment=environment,
                now_ms=self._clock(),
                start_ms=_or_keep(changes.start_ms),
                end_ms=_or_keep(changes.end_ms),
                capacity=_or_keep(changes.capacity),
                lockable=_or_keep(None if changes.lockable is None else int(changes.lockable)),
                metadata=_or_keep(changes.metadata_json),
                neighbour_id=neighbour,
            )

        return await until_fresh("the slots of this resource", attempt)

    async def set_status(self, environment: str, slot_id: str, status: str) -> SlotView:
        """Enable ("active") or disable ("disabled") a slot."""
        return await self._calls.set_slot_status(
            slot_key=keyspace.slot(_checked(slot_id)),
            lock_key=keyspace.lock(slot_id),
            resource_key=keyspace.resource(slot_id),
            held_key=keyspace.held(slot_id),
            events_key=keyspace.events(slot_id),
            starts_key=keyspace.resource_slots(slot_id),
            lock_ends_key=keyspace.lock_ends(slot_id),
            environment=environment,
            status=status,
            now_ms=self._clock(),
        )

    async def delete(self, environment: str, slot_id: str) -> None:
        """Delete a slot without active bookings, with its cancelled bookings."""
        slot_key = keyspace.slot(_checked(slot_id))

        async def attempt() -> Stale | None:
            booking_ids = await members(self._redis, keyspace.slot_bookings(slot_id))
            return await self._calls.delete_slot(
                slot_key=slot_key,
                lock_key=keyspace.lock(slot_id),
                resource_key=keyspace.resource(slot_id),
                starts_key=keyspace.resource_slots(slot_id),
                slot_bookings_key=keyspace.slot_bookings(slot_id),
                resource_bookings_key=keyspace.resource_bookings(slot_id),
                held_key=keyspace.held(slot_id),
                lock_ends_key=keyspace.lock_ends(slot_id),
                events_key=keyspace.events(slot_id),
                booking_keys=[keyspace.booking(booking_id, slot_id) for booking_id in booking_ids],
                environment=environment,
                booking_ids=booking_ids,
            )

        await until_fresh("the bookings of this slot", attempt)

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
            page = await self._list(environment, resource_id, where, now_ms, (0, count), False)
            return page.total, page.sort_keys

        async def views(resource_id: str, at: int, count: int) -> tuple[int, list[SlotView]]:
            page = await self._list(environment, resource_id, where, now_ms, (at, count), True)
            return page.total, page.views

        def start_of(view: SlotView) -> tuple[int, str]:
            return view.record.start_ms, view.record.id

        return await merged_page(resource_ids, offset, limit, keys, views, start_of)

    async def count_available(self, environment: str, resource_id: str) -> int:
        """How many of the resource's slots are `available` now: index work only."""
        where = SlotFilter(available=True)
        page = await self._list(environment, resource_id, where, self._clock(), (0, 0), False)
        return page.total

    async def _list(
        self,
        environment: str,
        resource_id: str,
        where: SlotFilter,
        now_ms: int,
        window: tuple[int, int],
        with_views: bool,
    ) -> SlotPage:
        """One call of lua/list_slots.lua (an empty page when the resource is not there)."""
        return await self._calls.list_slots(
            resource_key=keyspace.resource(resource_id),
            starts_key=keyspace.resource_slots(resource_id),
            lock_ends_key=keyspace.lock_ends(resource_id),
            slot_prefix=keyspace.slot_prefix(resource_id),
            lock_prefix=keyspace.lock_prefix(resource_id),
            held_prefix=keyspace.held_prefix(resource_id),
            environment=environment,
            now_ms=now_ms,
            available="" if where.available is None else str(where.available).lower(),
            from_ms=_or_keep(where.starts_from_ms),
            until_ms=_or_keep(where.ends_by_ms),
            offset=window[0],
            limit=window[1],
            with_views=with_views,
        )

    def now_ms(self) -> int:
        """The store's clock, for callers that render views."""
        return self._clock()


def _checked(slot_id: str) -> str:
    """The slot id, if it is one (a slot's keys carry its resource's hash tag); else 404."""
    if canonical_id(slot_id) != slot_id:
        raise SlotNotFound("slot not found")
    return slot_id


def _new_slot(record: SlotRecord, flat: list[str], neighbour: str) -> NewSlot:
    """create_slots' group for one new slot and the neighbour the store read for it."""
    return NewSlot(
        slot_key=keyspace.slot(record.id),
        neighbour_key=keyspace.slot(neighbour or record.id),
        slot_id=record.id,
        start_ms=record.start_ms,
        end_ms=record.end_ms,
        neighbour_id=neighbour,
        fields=flat,
    )


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
