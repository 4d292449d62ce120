"""A small world of resources, slots, locks and bookings, and the brute-force lists over it.

The lists the service answers from its indexes must equal what a plain filter over
every object (each read on its own, GET /slots/:id and friends) says: that is the
whole test of an index. Used by the list tests and the migration test.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from service.clock import parse_instant_ms
from tests.api import Api
from tests.test_bookings import ManualClock

HOUR_MS = 3_600_000


def instant(ms: int) -> str:
    """An ISO 8601 instant a client would send."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


@dataclass
class World:
    """Ids of what was made, so brute force can read each object on its own."""

    resource_ids: list[str] = field(default_factory=list)
    slot_ids: list[str] = field(default_factory=list)
    booking_ids: list[str] = field(default_factory=list)


def lock(
    api: Api, clock: ManualClock, slot_id: str, key: str, seconds: int, quantity: int = 0
) -> None:
    """Lock a slot (or hold `quantity` of its places) for `seconds` of the service's clock."""
    body: dict[str, Any] = {"lock_key": key, "lock_until": instant(clock.now_ms + seconds * 1000)}
    if quantity:
        body["quantity"] = quantity
    api.ok("POST", f"/slots/{slot_id}/lock", body)


def build(api: Api, clock: ManualClock, slots_per_resource: int = 14) -> World:
    """Three resources (one a draft, two sharing a name) with slots in every state.

    Slots start hourly from now; the first resource closes booking 5 hours ahead. Each
    slot gets, by its position: capacity 2 with one place held (for 30 s), a lock, a
    booking that fills it, a disabled status, a cancelled booking, a lock that ends soon,
    capacity 2 with one booking and one place held (none free).
    """
    world = World()
    specs = [("Court", True, 5 * 3600), ("Court", True, 0), ("Hall", False, 0)]
    for number, (name, published, closes_s) in enumerate(specs):
        resource = api.ok("POST", "/resources", {"name": name, "booking_disabled_before": closes_s})
        if published:
            api.ok("POST", f"/resources/{resource['id']}/publish")
        world.resource_ids.append(resource["id"])
        slots = [
            {
                # The second resource's slots start with the first's: ties across resources.
                "start_date": instant(clock.now_ms + (hour + 1) * HOUR_MS),
                "end_date": instant(clock.now_ms + (hour + 1) * HOUR_MS + HOUR_MS // 2),
                "capacity": 2 if (hour - number) % 7 in (0, 6) else 1,
            }
            for hour in range(number, slots_per_resource + number)
        ]
        made = api.ok("POST", "/slots", {"resource_id": resource["id"], "slots": slots})
        for position, slot in enumerate(made):
            world.slot_ids.append(slot["id"])
            shape(api, clock, world, slot["id"], position % 7)
    return world


def shape(api: Api, clock: ManualClock, world: World, slot_id: str, kind: int) -> None:
    """Put one slot in the state its kind names (see `build`)."""
    if kind == 0:
        lock(api, clock, slot_id, f"hold-{slot_id}", 30, quantity=1)
    elif kind == 1:
        lock(api, clock, slot_id, f"key-{slot_id}", 600)
    elif kind in (2, 4, 6):
        booking = api.call("POST", "/bookings", {"slot_id": slot_id})
        if booking.status_code < 300:
            world.booking_ids.append(booking.json()["data"]["id"])
            if kind == 4:
                api.ok("POST", f"/bookings/{booking.json()['data']['id']}/cancel")
    elif kind == 3:
        api.ok("POST", f"/slots/{slot_id}/disable")
    elif kind == 5:
        lock(api, clock, slot_id, f"key-{slot_id}", 30)
    if kind == 6:
        lock(api, clock, slot_id, f"hold-{slot_id}", 600, quantity=1)


def all_slots(api: Api, world: World) -> list[dict[str, Any]]:
    """Every slot, each read on its own."""
    return [api.ok("GET", f"/slots/{slot_id}") for slot_id in world.slot_ids]


def all_bookings(api: Api, world: World) -> list[dict[str, Any]]:
    """Every booking, each read on its own."""
    return [api.ok("GET", f"/bookings/{booking_id}") for booking_id in world.booking_ids]


def all_resources(api: Api, world: World) -> list[dict[str, Any]]:
    """Every resource, each read on its own."""
    return [api.ok("GET", f"/resources/{resource_id}") for resource_id in world.resource_ids]


def ms(text: str) -> int:
    """An instant as the service printed it, in ms."""
    return parse_instant_ms(text)


def slot_filters(world: World, slots: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Every combination of the slot filters, with dates that fall between and inside slots."""
    starts = sorted(ms(slot["start_date"]) for slot in slots)
    middle, later = starts[len(starts) // 3], starts[2 * len(starts) // 3]
    froms = [None, instant(middle), instant(middle + 60_000)]  # at a start; just after one
    untils = [None, instant(later + HOUR_MS // 2), instant(later + 60_000)]  # at an end; inside
    resources = [None, *world.resource_ids]
    filters = []
    for resource_id, available, start, end in itertools.product(
        resources, [None, "true", "false"], froms, untils
    ):
        params = {"resource_id": resource_id, "available": available}
        params |= {"start_date": start, "end_date": end}
        filters.append({name: value for name, value in params.items() if value is not None})
    return filters


def slot_matches(slot: dict[str, Any], params: dict[str, str]) -> bool:
    """Brute force: whether one slot, as GET /slots/:id shows it, passes the filters."""
    if "resource_id" in params and slot["resource_id"] != params["resource_id"]:
        return False
    if "available" in params and slot["available"] != (params["available"] == "true"):
        return False
    if "start_date" in params and ms(slot["start_date"]) < ms(params["start_date"]):
        return False
    return "end_date" not in params or ms(slot["end_date"]) <= ms(params["end_date"])


def expected_slots(slots: list[dict[str, Any]], params: dict[str, str]) -> list[str]:
    """Brute force: the ids of the matching slots in list order."""
    chosen = [slot for slot in slots if slot_matches(slot, params)]
    return [slot["id"] for slot in sorted(chosen, key=lambda s: (ms(s["start_date"]), s["id"]))]


def expected_bookings(bookings: list[dict[str, Any]], params: dict[str, str]) -> list[str]:
    """Brute force: the ids of the matching bookings in list order."""
    chosen = [
        booking
        for booking in bookings
        if all(booking[name] == value for name, value in params.items())
    ]
    return [b["id"] for b in sorted(chosen, key=lambda b: (ms(b["created_at"]), b["id"]))]


def expected_resources(resources: list[dict[str, Any]], params: dict[str, str]) -> list[str]:
    """Brute force: the ids of the matching resources in list order."""
    chosen = [r for r in resources if all(r[name] == value for name, value in params.items())]
    return [r["id"] for r in sorted(chosen, key=lambda r: (ms(r["created_at"]), r["id"]))]


def listed(api: Api, path: str, params: dict[str, str], limit: int) -> tuple[list[str], int]:
    """Every page of a list, one after the other: the ids in order and the total each said."""
    ids: list[str] = []
    totals = set()
    for page in itertools.count(1):
        response = api.call("GET", path, params={**params, "limit": limit, "page": page})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["meta"]["limit"] == limit
        assert body["meta"]["page"] == page
        totals.add(body["meta"]["total"])
        ids += [item["id"] for item in body["data"]]
        if not body["data"]:
            break
        assert len(body["data"]) <= limit
    assert len(totals) == 1, totals
    return ids, totals.pop()


def present(**params: str | None) -> dict[str, str]:
    """The query parameters that have a value."""
    return {name: value for name, value in params.items() if value is not None}


def check_every_list(api: Api, world: World, limits: tuple[int, ...] = (3, 50)) -> None:
    """Every filter of every list, page by page, equals brute force, totals included."""
    slots = all_slots(api, world)
    for params in slot_filters(world, slots):
        expected = expected_slots(slots, params)
        for limit in limits:
            assert listed(api, "/slots", params, limit) == (expected, len(expected)), params
    bookings = all_bookings(api, world)
    for status, slot_id, resource_id in itertools.product(
        [None, "active", "cancelled"],
        [None, *world.slot_ids[:8:3]],
        [None, *world.resource_ids],
    ):
        params = present(status=status, slot_id=slot_id, resource_id=resource_id)
        expected = expected_bookings(bookings, params)
        for limit in limits:
            assert listed(api, "/bookings", params, limit) == (expected, len(expected)), params
    resources = all_resources(api, world)
    for name, status in itertools.product(
        [None, "Court", "Hall", "Gym"], [None, "draft", "published"]
    ):
        params = present(name=name, status=status)
        expected = expected_resources(resources, params)
        for limit in (1, 2, 50):
            assert listed(api, "/resources", params, limit) == (expected, len(expected)), params
    for resource in resources:
        available = sum(
            1 for slot in slots if slot["resource_id"] == resource["id"] and slot["available"]
        )
        assert resource["num_available_slots"] == available
