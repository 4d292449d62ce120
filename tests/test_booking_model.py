"""Random sequences of lock, book, cancel, enable, reschedule and more, against a plain model.

A hypothesis state machine drives the in-process app over two resources of two
slots each, with an injected clock that moves (ending locks and closing booking
windows), and after every step checks that every counter, `available`, the lock
state and every list (filtered, paged, with its total) agree with a few dicts that
say what API.md promises, and that no slot ever holds more active bookings than
places.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import fakeredis
import httpx2 as httpx
import pytest
from hypothesis import settings, strategies
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis.asyncio import Redis

from service.clock import parse_instant_ms
from service.settings import Settings
from service.store.client import RedisClient
from tests.api import Api, iso
from tests.redis_servers import RedisServer
from tests.test_bookings import ManualClock, expire_lock, open_api, open_intents

LOCK_KEYS = ["key-a", "key-b"]
LOCK_S = 300
LIST_CHECKS = list(itertools.product([None, 0, 1], ["true", "false"], [1, 2]))
CLOSES_S = 20 * 3600  # the first resource closes booking 20 h before a slot starts
SLOTS = strategies.integers(min_value=0, max_value=3)
# Whose lock_key a request carries: none, the slot's current holder's (if locked), or a fixed one.
KEYS = strategies.sampled_from(["none", "holder", *LOCK_KEYS])
MOVES = strategies.tuples(SLOTS, KEYS)
RUNS = settings(
    max_examples=40,
    stateful_step_count=30,
    derandomize=True,
    database=None,
    deadline=None,
)


@dataclass
class SlotModel:
    """What a slot should look like: its place count, status, lock holder and when it opens."""

    id: str
    resource: int
    capacity: int
    start_ms: int
    closes_ms: int  # booking closes then (the resource's booking_disabled_before)
    active: bool = True
    lock: str | None = None
    lock_until_ms: int = 0


@dataclass
class BookingModel:
    """Where a booking should be and in which status."""

    slot: int
    status: str = "active"


@dataclass
class World:
    """The whole model: four slots over two resources, and the bookings."""

    resource_ids: list[str] = field(default_factory=list)
    slots: list[SlotModel] = field(default_factory=list)
    bookings: dict[str, BookingModel] = field(default_factory=dict)

    def active_on(self, slot: int) -> int:
        """Active bookings on a slot."""
        return sum(1 for b in self.bookings.values() if b.slot == slot and b.status == "active")

    def counts(self, slots: list[int]) -> tuple[int, int, int]:
        """(num_bookings, num_active_bookings, num_cancelled_bookings) over some slots."""
        mine = [b for b in self.bookings.values() if b.slot in slots]
        active = sum(1 for b in mine if b.status == "active")
        return len(mine), active, len(mine) - active

    def place_refusal(self, slot: int, lock_key: str | None, now_ms: int) -> str | None:
        """The error code a new booking (or a move) gets on `slot`, or None: API.md's order."""
        if self.slots[slot].active and now_ms >= self.slots[slot].closes_ms:
            return "E058"
        return self.enable_refusal(slot, lock_key)

    def enable_refusal(self, slot: int, lock_key: str | None) -> str | None:
        """The error code enabling a cancelled booking gets (no booking window there)."""
        model = self.slots[slot]
        if not model.active:
            return "E051"
        if model.lock is not None and model.lock != lock_key:
            return "E050"
        if self.active_on(slot) >= model.capacity:
            return "E049"
        return None


def code_of(response: httpx.Response) -> str | None:
    """The error code of a failure, or None for a success."""
    if response.status_code < 400:
        return None
    code: str = response.json()["error"]["code"]
    return code


class BookingMachine(RuleBasedStateMachine):
    """The service against the model; `redis_factory` gives each run an empty Redis."""

    redis_factory: Callable[[], RedisClient]
    bookings = Bundle("bookings")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self._session: Iterator[Api] = open_api(
            self.redis_factory(), Settings(key_cache_s=0.0), self.clock
        )
        self.api = next(self._session)
        self.world = World()
        self.checks = 0

    def teardown(self) -> None:
        """Stop the app (the generator closes the client on exit)."""
        for _ in self._session:
            pass

    def lock_key(self, key: str, slot: int) -> str | None:
        """The lock_key a request carries: none, the slot's holder's, or a fixed one."""
        if key == "none":
            return None
        if key == "holder":
            return self.world.slots[slot].lock
        return key

    def expect(self, response: httpx.Response, code: str | None) -> None:
        """The response must fail with `code`, or succeed when `code` is None."""
        assert code_of(response) == code, response.text

    @initialize(capacities=strategies.lists(strategies.integers(1, 3), min_size=4, max_size=4))
    def build(self, capacities: list[int]) -> None:
        """Two published resources with two slots each; the first closes booking 20 h ahead."""
        for resource, closes_s in enumerate((CLOSES_S, 0)):
            resource_id = self.api.resource(
                name=f"Room {resource}", booking_disabled_before=closes_s
            )["id"]
            self.world.resource_ids.append(resource_id)
            for hours_ahead in (24, 48):
                capacity = capacities[len(self.world.slots)]
                slot = self.api.slot(resource_id, hours_ahead=hours_ahead, capacity=capacity)
                start_ms = parse_instant_ms(slot["start_date"])
                model = SlotModel(
                    slot["id"], resource, capacity, start_ms, start_ms - closes_s * 1000
                )
                self.world.slots.append(model)

    @rule(slot=SLOTS, lock_key=strategies.sampled_from(LOCK_KEYS))
    def lock(self, slot: int, lock_key: str) -> None:
        """Lock: E051 disabled, E045 held by another key, E049 full; the holder may extend."""
        model = self.world.slots[slot]
        expected = None
        if not model.active:
            expected = "E051"
        elif model.lock not in (None, lock_key):
            expected = "E045"
        elif model.lock is None and self.world.active_on(slot) >= model.capacity:
            expected = "E049"
        until_ms = self.clock.now_ms + LOCK_S * 1000
        body = {
            "lock_key": lock_key,
            "lock_until": iso(datetime.fromtimestamp(until_ms / 1000, UTC)),
        }
        self.expect(self.api.call("POST", f"/slots/{model.id}/lock", body, key="public"), expected)
        if expected is None:
            model.lock, model.lock_until_ms = lock_key, until_ms

    @rule(slot=SLOTS, lock_key=strategies.sampled_from(LOCK_KEYS))
    def unlock(self, slot: int, lock_key: str) -> None:
        """Unlock: E059 when another key holds it, else the lock (if any, ours) is gone."""
        model = self.world.slots[slot]
        expected = "E059" if model.lock not in (None, lock_key) else None
        self.expect(self.api.unlock(model.id, lock_key), expected)
        if expected is None:
            model.lock = None

    @rule(slot=SLOTS)
    def expire(self, slot: int) -> None:
        """Redis drops the lock at lock_until."""
        expire_lock(self.api, self.world.slots[slot].id)
        self.world.slots[slot].lock = None

    @rule(minutes=strategies.integers(1, 600))
    def pass_time(self, minutes: int) -> None:
        """The clock moves on: locks end at lock_until (Redis drops them), booking windows close."""
        self.clock.advance(minutes * 60_000)
        for model in self.world.slots:
            if model.lock is not None and model.lock_until_ms <= self.clock.now_ms:
                expire_lock(self.api, model.id)
                model.lock = None

    @rule(target=bookings, slot=SLOTS, key=KEYS)
    def book(self, slot: int, key: str) -> Any:
        """Book; the holder's booking consumes the lock."""
        lock_key = self.lock_key(key, slot)
        body: dict[str, Any] = {"slot_id": self.world.slots[slot].id}
        if lock_key is not None:
            body["lock_key"] = lock_key
        response = self.api.call("POST", "/bookings", body, key="public")
        expected = self.world.place_refusal(slot, lock_key, self.clock.now_ms)
        self.expect(response, expected)
        if expected is not None:
            return multiple()
        booking_id: str = response.json()["data"]["id"]
        self.world.bookings[booking_id] = BookingModel(slot)
        self.world.slots[slot].lock = None
        return booking_id

    @rule(booking_id=bookings)
    def cancel(self, booking_id: str) -> None:
        """Cancel frees the place; again, or of a deleted booking (E048), changes nothing."""
        response = self.api.call("POST", f"/bookings/{booking_id}/cancel", key="public")
        booking = self.world.bookings.get(booking_id)
        self.expect(response, None if booking else "E048")
        if booking is not None:
            booking.status = "cancelled"

    @rule(booking_id=bookings, key=KEYS)
    def enable(self, booking_id: str, key: str) -> None:
        """Enable takes a place back if the slot would take a new booking; the lock stays."""
        booking = self.world.bookings.get(booking_id)
        lock_key = self.lock_key(key, booking.slot if booking else 0)
        body = None if lock_key is None else {"lock_key": lock_key}
        path = f"/bookings/{booking_id}/enable"
        response = self.api.call("POST", path, body, key="public")
        expected: str | None = "E048"
        if booking is not None:
            expected = None
            if booking.status == "cancelled":
                expected = self.world.enable_refusal(booking.slot, lock_key)
        self.expect(response, expected)
        if booking is not None and expected is None:
            booking.status = "active"

    @rule(booking_id=bookings, move=MOVES)
    def reschedule_within(self, booking_id: str, move: tuple[int, str]) -> None:
        """Move to the other slot of the booking's resource (one script)."""
        booking = self.world.bookings.get(booking_id)
        to = move[0] if booking is None else booking.slot ^ 1
        self.reschedule(booking_id, to, self.lock_key(move[1], to))

    @rule(booking_id=bookings, move=MOVES)
    def reschedule_across(self, booking_id: str, move: tuple[int, str]) -> None:
        """Move to a slot of the other resource (the saga)."""
        booking = self.world.bookings.get(booking_id)
        to = move[0] if booking is None else (booking.slot + 2 + move[0] % 2) % 4
        self.reschedule(booking_id, to, self.lock_key(move[1], to))

    def reschedule(self, booking_id: str, to: int, lock_key: str | None) -> None:
        """An active booking needs the place, as create does; a cancelled one moves freely."""
        body: dict[str, Any] = {"target_slot_id": self.world.slots[to].id}
        if lock_key is not None:
            body["lock_key"] = lock_key
        path = f"/bookings/{booking_id}/reschedule"
        response = self.api.call("POST", path, body, key="public")
        booking = self.world.bookings.get(booking_id)
        expected: str | None = "E048"
        if booking is not None:
            expected = None
            if booking.status == "active":
                expected = self.world.place_refusal(to, lock_key, self.clock.now_ms)
        self.expect(response, expected)
        if booking is None or expected is not None:
            return
        if booking.status == "active":
            self.world.slots[to].lock = None  # the holder's move consumes its lock
        booking.slot = to
        assert response.json()["data"]["slot_id"] == self.world.slots[to].id
        found = self.api.ok("GET", f"/bookings/{booking_id}")
        assert (found["slot_id"], found["resource_id"]) == (
            self.world.slots[to].id,
            self.world.resource_ids[self.world.slots[to].resource],
        )

    @rule(booking_id=bookings)
    def delete(self, booking_id: str) -> None:
        """Delete (secret key) removes the booking and its weight; again is E048."""
        response = self.api.call("DELETE", f"/bookings/{booking_id}")
        booking = self.world.bookings.pop(booking_id, None)
        self.expect(response, None if booking else "E048")

    @rule(slot=SLOTS, capacity=strategies.integers(1, 4))
    def set_capacity(self, slot: int, capacity: int) -> None:
        """Capacity may not fall below the active bookings (E046)."""
        model = self.world.slots[slot]
        expected = "E046" if capacity < self.world.active_on(slot) else None
        self.expect(self.api.call("PATCH", f"/slots/{model.id}", {"capacity": capacity}), expected)
        if expected is None:
            model.capacity = capacity

    @rule(slot=SLOTS)
    def toggle(self, slot: int) -> None:
        """Disable an active slot or enable a disabled one; bookings and lock stay."""
        model = self.world.slots[slot]
        verb = "disable" if model.active else "enable"
        self.expect(self.api.call("POST", f"/slots/{model.id}/{verb}"), None)
        model.active = not model.active

    @precondition(lambda self: self.world.slots)
    @invariant()
    def slots_agree(self) -> None:
        """Every slot's counters, capacity, lock and `available` match the model."""
        shown = {slot["id"]: slot for slot in self.api.ok("GET", "/slots", params={"limit": 50})}
        for index, model in enumerate(self.world.slots):
            slot = shown[model.id]
            total, active, cancelled = self.world.counts([index])
            assert (slot["num_bookings"], slot["num_active_bookings"]) == (total, active)
            assert slot["num_cancelled_bookings"] == cancelled
            assert slot["num_active_bookings"] <= slot["capacity"] == model.capacity
            assert slot["status"] == ("active" if model.active else "disabled")
            assert (slot["locked_until"] is not None) == (model.lock is not None)
            assert slot["available"] == self.available(index)

    def available(self, slot: int) -> bool:
        """API.md's `available` for one slot of the model, now."""
        model = self.world.slots[slot]
        free = self.world.active_on(slot) < model.capacity
        is_open = self.clock.now_ms < model.closes_ms
        return model.active and model.lock is None and free and is_open

    @precondition(lambda self: self.world.slots)
    @invariant()
    def filtered_lists_agree(self) -> None:
        """One `available`/resource/page combination, its total and one booking status list.

        A different combination after each step (checking all of them every time would
        multiply the run's length), so every run covers each of them many times.
        """
        self.checks += 1
        resource, wanted, page = LIST_CHECKS[self.checks % len(LIST_CHECKS)]
        chosen = sorted(
            (model.start_ms, model.id)
            for index, model in enumerate(self.world.slots)
            if (resource is None or model.resource == resource)
            and self.available(index) == (wanted == "true")
        )
        params: dict[str, Any] = {"available": wanted, "limit": 2, "page": page}
        if resource is not None:
            params["resource_id"] = self.world.resource_ids[resource]
        body = self.api.call("GET", "/slots", params=params).json()
        assert body["meta"]["total"] == len(chosen)
        assert [slot["id"] for slot in body["data"]] == [
            slot_id for _, slot_id in chosen[(page - 1) * 2 : page * 2]
        ]
        status = ("active", "cancelled")[self.checks % 2]
        listed = self.api.call("GET", "/bookings", params={"status": status, "limit": 50}).json()
        expected = {b for b, model in self.world.bookings.items() if model.status == status}
        assert {booking["id"] for booking in listed["data"]} == expected
        assert listed["meta"]["total"] == len(expected)

    @precondition(lambda self: self.world.slots)
    @invariant()
    def resources_agree(self) -> None:
        """Each resource's counters are the sums over its slots in the model."""
        shown = {resource["id"]: resource for resource in self.api.ok("GET", "/resources")}
        for index, resource_id in enumerate(self.world.resource_ids):
            resource = shown[resource_id]
            slots = [at for at, slot in enumerate(self.world.slots) if slot.resource == index]
            expected = self.world.counts(slots)
            got = (
                resource["num_bookings"],
                resource["num_active_bookings"],
                resource["num_cancelled_bookings"],
            )
            assert got == expected

    @invariant()
    def bookings_agree(self) -> None:
        """The booking list holds exactly the model's bookings, on their slots, in their status."""
        listed = self.api.ok("GET", "/bookings", params={"limit": 50})
        got = {booking["id"]: (booking["slot_id"], booking["status"]) for booking in listed}
        expected = {
            booking_id: (self.world.slots[booking.slot].id, booking.status)
            for booking_id, booking in self.world.bookings.items()
        }
        assert got == expected
        assert open_intents(self.api) == 0, "a finished move left its intent in the log"


def fakeredis_factory() -> RedisClient:
    """A new, empty fakeredis."""
    client: RedisClient = fakeredis.FakeAsyncRedis(
        server=fakeredis.FakeServer(version=(7,)), decode_responses=True
    )
    return client


@pytest.fixture(params=["fakeredis", "redis-server"])
def redis_factory(request: pytest.FixtureRequest) -> Callable[[], RedisClient]:
    """Empty Redis clients for each run: fakeredis, or the session's real server flushed."""
    if request.param == "fakeredis":
        return fakeredis_factory
    server: RedisServer = request.getfixturevalue("redis_server")

    def flushed() -> RedisClient:
        server.client().flushall()
        return Redis(port=server.port, decode_responses=True, socket_timeout=2)

    return flushed


def test_bookings_behave_like_the_model(redis_factory: Callable[[], RedisClient]) -> None:
    """Counters, `available`, locks and lists follow the model after every step of every run."""
    machine = type("Machine", (BookingMachine,), {"redis_factory": staticmethod(redis_factory)})
    run_state_machine_as_test(machine, settings=RUNS)
