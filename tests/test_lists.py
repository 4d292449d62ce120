"""Lists read from indexes: every filter, page and total equals brute force over all objects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from service import keyspace
from service.settings import Settings
from service.store.client import RedisClient
from tests.api import Api
from tests.list_world import (
    HOUR_MS,
    World,
    all_slots,
    build,
    check_every_list,
    expected_slots,
    instant,
    listed,
    lock,
)
from tests.test_bookings import ManualClock, expire_lock, open_api, redis_of, run


@pytest.fixture
def clock() -> ManualClock:
    """The service's clock, moved by hand."""
    return ManualClock()


@pytest.fixture
def clocked_api(redis_client: RedisClient, clock: ManualClock) -> Iterator[Api]:
    """The app on fakeredis or a real Redis, with the hand-moved clock."""
    yield from open_api(redis_client, Settings(key_cache_s=0.0), clock)


@pytest.fixture
def world(clocked_api: Api, clock: ManualClock) -> World:
    """Three resources of slots in every state."""
    return build(clocked_api, clock)


def test_every_list_equals_brute_force(clocked_api: Api, world: World) -> None:
    """Slots, bookings and resources: every filter, every page and the total match brute force."""
    check_every_list(clocked_api, world)


def test_lists_follow_the_clock(clocked_api: Api, clock: ManualClock, world: World) -> None:
    """With no request at all, locks end and booking windows close: the lists follow."""
    clock.advance(60_000)  # the short locks end
    check_every_list(clocked_api, world, limits=(4,))
    clock.advance(3 * HOUR_MS)  # three more slots close for booking, the long locks end
    check_every_list(clocked_api, world, limits=(4,))


def test_lists_follow_locks_that_redis_expired(clocked_api: Api, world: World) -> None:
    """A lock that Redis dropped at lock_until no longer keeps its slot from the available list."""
    for slot_id in world.slot_ids:
        expire_lock(clocked_api, slot_id)
    check_every_list(clocked_api, world, limits=(5,))


def test_lists_follow_every_kind_of_change(
    clocked_api: Api, clock: ManualClock, world: World
) -> None:
    """Capacity, status, dates, moves, deletions, names and publication keep the lists exact."""
    api, slots = clocked_api, world.slot_ids
    api.ok("PATCH", f"/slots/{slots[2]}", {"capacity": 3})  # a full slot opens
    api.ok("POST", f"/slots/{slots[3]}/enable")
    api.ok("POST", f"/slots/{slots[0]}/disable")
    moved_start = clock.now_ms + 100 * HOUR_MS
    dates = {"start_date": instant(moved_start), "end_date": instant(moved_start + HOUR_MS)}
    api.ok("PATCH", f"/slots/{slots[7]}", dates)
    booking_id = world.booking_ids[0]
    api.ok("POST", f"/bookings/{booking_id}/reschedule", {"target_slot_id": slots[7]})
    api.ok("POST", f"/bookings/{world.booking_ids[1]}/reschedule", {"target_slot_id": slots[14]})
    api.ok("DELETE", f"/bookings/{world.booking_ids[2]}")
    world.booking_ids.remove(world.booking_ids[2])
    api.ok("DELETE", f"/slots/{slots[10]}")
    slots.remove(slots[10])
    api.ok("POST", f"/slots/{slots[8]}/unlock", {"lock_key": f"key-{slots[8]}"})
    free = next(slot["id"] for slot in all_slots(api, world) if slot["available"])
    lock(api, clock, free, "late", 900, quantity=1)
    api.ok("PATCH", f"/resources/{world.resource_ids[0]}", {"name": "Hall"})
    api.ok("POST", f"/resources/{world.resource_ids[2]}/publish")
    api.ok("POST", f"/resources/{world.resource_ids[1]}/convert-draft")
    check_every_list(api, world, limits=(4,))
    gone = world.resource_ids.pop(1)
    api.ok("DELETE", f"/resources/{gone}")
    world.slot_ids = [slot["id"] for slot in all_slots_left(api, world)]
    world.booking_ids = [
        booking_id
        for booking_id in world.booking_ids
        if api.call("GET", f"/bookings/{booking_id}").status_code == 200
    ]
    check_every_list(api, world, limits=(4,))


def all_slots_left(api: Api, world: World) -> list[dict[str, Any]]:
    """The slots that still exist."""
    kept = [s for s in world.slot_ids if api.call("GET", f"/slots/{s}").status_code == 200]
    return [api.ok("GET", f"/slots/{slot_id}") for slot_id in kept]


def test_deep_pages_of_a_large_resource(clocked_api: Api, clock: ManualClock) -> None:
    """Pages deep into 240 slots, a third of them shut or locked, match brute force."""
    api = clocked_api
    resource_id = api.resource(name="Big")["id"]
    specs = [
        {
            "start_date": instant(clock.now_ms + (hour + 1) * HOUR_MS),
            "end_date": instant(clock.now_ms + (hour + 1) * HOUR_MS + HOUR_MS),
            "capacity": 1,
        }
        for hour in range(240)
    ]
    made = api.ok("POST", "/slots", {"resource_id": resource_id, "slots": specs})
    for position, slot in enumerate(made):
        if position % 3 == 1:
            api.ok("POST", "/bookings", {"slot_id": slot["id"]})
        elif position % 9 == 2:
            lock(api, clock, slot["id"], f"k{position}", 300)
    world = World(resource_ids=[resource_id], slot_ids=[slot["id"] for slot in made])
    slots = all_slots(api, world)
    for params in ({}, {"available": "true"}, {"available": "false"}):
        expected = expected_slots(slots, params)
        for page in (1, 5, 9, 13, 40):
            response = api.call("GET", "/slots", params={**params, "limit": 7, "page": page})
            body = response.json()
            assert body["meta"]["total"] == len(expected)
            assert [s["id"] for s in body["data"]] == expected[(page - 1) * 7 : page * 7]


def test_a_resource_change_cut_short_is_settled_by_the_next_list(
    clocked_api: Api, clock: ManualClock, world: World
) -> None:
    """A crash between a resource's hash and its index entries never shows in a list."""
    api, (first, second, _) = clocked_api, world.resource_ids
    redis = redis_of(api)
    changes = keyspace.environment_resource_changes("test")
    # Published, but the index entries never heard of it.
    run(api, redis.zadd, changes, {first: clock.now_ms})
    run(api, redis.hset, keyspace.resource(first), "status", "draft")
    # Deleted, but its index entries stayed.
    run(api, redis.zadd, changes, {second: clock.now_ms})
    run(api, redis.delete, keyspace.resource(second))
    ids, total = listed(api, "/resources", {"status": "draft"}, 50)
    assert first in ids
    assert second not in ids
    assert total == len(ids)
    clock.advance(61_000)  # the marks are old: the dangling entries go for good
    ids, total = listed(api, "/resources", {}, 50)
    assert second not in ids
    assert total == len(ids) == 2
    assert run(api, redis.zcard, changes) == 0


def test_deep_pages_across_resources(
    clocked_api: Api, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages past the deep-page bound (totals first) match brute force; past the end, empty."""
    monkeypatch.setattr("service.store.listing.DEEP_PAGE", 5)
    check_every_list(clocked_api, world, limits=(4,))
    body = clocked_api.call("GET", "/slots", params={"page": 1000, "limit": 50}).json()
    assert body["data"] == []
    assert body["meta"]["total"] == len(world.slot_ids)


def test_a_change_to_no_such_resource_marks_nothing(clocked_api: Api) -> None:
    """A rename, publish or delete of an unknown resource is a 404 that leaves no mark."""
    unknown = "00000000-0000-4000-8000-000000000000"
    for method, path, body in (
        ("PATCH", f"/resources/{unknown}", {"name": "x"}),
        ("POST", f"/resources/{unknown}/publish", None),
        ("DELETE", f"/resources/{unknown}", None),
    ):
        assert clocked_api.call(method, path, body).status_code == 404
    changes = keyspace.environment_resource_changes("test")
    assert run(clocked_api, redis_of(clocked_api).zcard, changes) == 0


def test_a_list_settles_the_ended_locks_of_every_resource_it_lists(
    clocked_api: Api, clock: ManualClock, world: World
) -> None:
    """After every lock ran out, one list over all resources leaves no ended lock to check.

    Lists check each slot in a resource's lock ends (the live locks and holds, and those
    ended but not yet swept); sweeping first keeps that work to the live ones.
    """
    api, redis = clocked_api, redis_of(clocked_api)
    lock_ends = [keyspace.lock_ends(resource_id) for resource_id in world.resource_ids]
    assert sum(run(api, redis.zcard, key) for key in lock_ends) > 0
    clock.advance(24 * HOUR_MS)  # every lock and hold of the world has ended...
    for slot_id in world.slot_ids:
        expire_lock(api, slot_id)  # ...and Redis, whose clock this one is not, dropped them
    listed(api, "/slots", {}, 5)
    assert [run(api, redis.zcard, key) for key in lock_ends] == [0] * len(lock_ends)
    check_every_list(api, world, limits=(5,))


def test_lists_are_exact_before_ended_locks_are_swept(
    clocked_api: Api, clock: ManualClock, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no sweep at all, slots whose locks and holds ran out list as they are now."""

    async def no_sweep(*_: object) -> int:
        return 0

    monkeypatch.setattr("service.event_log.EventLog.sweep", no_sweep)
    clock.advance(60_000)  # the short locks and holds end; their entries stay due
    check_every_list(clocked_api, world, limits=(4,))
    clock.advance(3 * HOUR_MS)
    check_every_list(clocked_api, world, limits=(4,))
