"""Random sequences of lock, hold, book, cancel, enable, reschedule and more, against a model.

A hypothesis state machine drives the in-process app over two resources of two
slots each, with its clock moved forward now and then (holds end by the
service's clock, before Redis deletes anything; a whole-slot lock's key is
dropped when the clock passes it, as Redis would), and after every step checks
that every counter, `available`, the lock and hold state, the free places and
the list of bookings agree with a few dicts that say what API.md promises, and
that no slot ever holds more active bookings plus held places than places.
"""

from __future__ import annotations

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

from service.settings import Settings
from service.store.client import RedisClient
from tests.api import Api, iso
from tests.redis_servers import RedisServer
from tests.test_bookings import ManualClock, expire_lock, open_api, open_intents

LOCK_KEYS = ["key-a", "key-b", "key-c"]
SLOTS = strategies.integers(min_value=0, max_value=3)
# Whose lock_key a request carries: none, the slot's current holder's (its whole-slot lock's,
# else its first partial hold's), or a fixed one.
KEYS = strategies.sampled_from(["none", "holder", *LOCK_KEYS])
MOVES = strategies.tuples(SLOTS, KEYS)
# How long a lock or hold lasts (s); a public key may hold 15 minutes.
DURATIONS_S = strategies.sampled_from([30, 120, 600, 899])
RUNS = settings(
    max_examples=40,
    stateful_step_count=30,
    derandomize=True,
    database=None,
    deadline=None,
)


@dataclass
class Hold:
    """A partial hold: places, until when (service clock, ms) and its fencing token."""

    quantity: int
    until_ms: int
    token: int


@dataclass
class SlotModel:
    """What a slot should look like: places, status, whole-slot lock and partial holds."""

    id: str
    resource: int
    capacity: int
    active: bool = True
    lock: str | None = None
    lock_until_ms: int = 0
    lock_token: int = 0
    holds: dict[str, Hold] = field(default_factory=dict)
    last_token: int = 0

    def held(self, except_key: str | None = None) -> int:
        """Places held by partial holds (running: ended ones are dropped as time passes)."""
        return sum(hold.quantity for key, hold in self.holds.items() if key != except_key)

    def token_of(self, lock_key: str) -> int | None:
        """The token of what `lock_key` has on the slot now, or None."""
        if self.lock == lock_key:
            return self.lock_token
        hold = self.holds.get(lock_key)
        return None if hold is None else hold.token


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

    def place_refusal(self, slot: int, lock_key: str | None) -> str | None:
        """The error code a new active booking gets on `slot`, or None: API.md's order."""
        model = self.slots[slot]
        if not model.active:
            return "E051"
        if model.lock is not None and model.lock != lock_key:
            return "E050"
        if lock_key in model.holds:
            return None
        if self.active_on(slot) + model.held() >= model.capacity:
            return "E049"
        return None

    def take_place(self, slot: int, lock_key: str | None, *, consume_lock: bool) -> None:
        """A new active booking: the key's hold gives up a place, or its whole lock ends."""
        model = self.slots[slot]
        hold = model.holds.get(lock_key or "")
        if hold is not None:
            hold.quantity -= 1
            if hold.quantity == 0:
                del model.holds[lock_key or ""]
        elif consume_lock and model.lock is not None:
            model.lock = None

    def free_places(self, slot: int) -> int:
        """API.md's num_free_places."""
        model = self.slots[slot]
        if model.lock is not None:
            return 0
        return model.capacity - self.active_on(slot) - model.held()


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

    def teardown(self) -> None:
        """Stop the app (the generator closes the client on exit)."""
        for _ in self._session:
            pass

    def lock_key(self, key: str, slot: int) -> str | None:
        """The lock_key a request carries: none, the slot's holder's, or a fixed one."""
        if key == "none":
            return None
        if key == "holder":
            model = self.world.slots[slot]
            return model.lock or next(iter(model.holds), None)
        return key

    def lock_call(
        self, slot: int, lock_key: str, duration_s: int, quantity: int | None = None
    ) -> tuple[httpx.Response, int]:
        """POST /slots/:id/lock with lock_until `duration_s` ahead of the service's clock."""
        until_ms = self.clock.now_ms + duration_s * 1000
        body: dict[str, Any] = {
            "lock_key": lock_key,
            "lock_until": iso(
                datetime.fromtimestamp(until_ms // 1000, UTC).replace(
                    microsecond=until_ms % 1000 * 1000
                )
            ),
        }
        if quantity is not None:
            body["quantity"] = quantity
        path = f"/slots/{self.world.slots[slot].id}/lock"
        return self.api.call("POST", path, body, key="public"), until_ms

    def check_token(self, slot: int, lock_key: str, response: httpx.Response) -> int:
        """The same key keeps its token; anything new gets a larger one than ever before."""
        model = self.world.slots[slot]
        token: int = response.json()["meta"]["lock_token"]
        kept = model.token_of(lock_key)
        if kept is not None:
            assert token == kept
        else:
            assert token > model.last_token
        model.last_token = max(model.last_token, token)
        return token

    def expect(self, response: httpx.Response, code: str | None) -> None:
        """The response must fail with `code`, or succeed when `code` is None."""
        assert code_of(response) == code, response.text

    @initialize(capacities=strategies.lists(strategies.integers(1, 4), min_size=4, max_size=4))
    def build(self, capacities: list[int]) -> None:
        """Two published resources with two slots each."""
        for resource in range(2):
            resource_id = self.api.resource(name=f"Room {resource}")["id"]
            self.world.resource_ids.append(resource_id)
            for hours_ahead in (24, 48):
                capacity = capacities[len(self.world.slots)]
                slot = self.api.slot(resource_id, hours_ahead=hours_ahead, capacity=capacity)
                self.world.slots.append(SlotModel(slot["id"], resource, capacity))

    @rule(slot=SLOTS, lock_key=strategies.sampled_from(LOCK_KEYS), duration_s=DURATIONS_S)
    def lock(self, slot: int, lock_key: str, duration_s: int) -> None:
        """Whole-slot lock: E051 disabled, E045 another key locks or holds, E049 full."""
        model = self.world.slots[slot]
        expected = None
        mine = model.token_of(lock_key) is not None
        if not model.active:
            expected = "E051"
        elif model.lock not in (None, lock_key) or model.held(except_key=lock_key) > 0:
            expected = "E045"
        elif not mine and self.world.active_on(slot) >= model.capacity:
            expected = "E049"
        response, until_ms = self.lock_call(slot, lock_key, duration_s)
        self.expect(response, expected)
        if expected is None:
            model.lock_token = self.check_token(slot, lock_key, response)
            model.lock, model.lock_until_ms = lock_key, until_ms
            model.holds.pop(lock_key, None)

    @rule(
        slot=SLOTS,
        lock_key=strategies.sampled_from(LOCK_KEYS),
        quantity=strategies.integers(1, 3),
        duration_s=DURATIONS_S,
    )
    def hold(self, slot: int, lock_key: str, quantity: int, duration_s: int) -> None:
        """Partial hold: E051 disabled, E045 another key locks whole, E049 not enough free."""
        model = self.world.slots[slot]
        expected = None
        free = model.capacity - self.world.active_on(slot) - model.held(except_key=lock_key)
        if not model.active:
            expected = "E051"
        elif model.lock not in (None, lock_key):
            expected = "E045"
        elif quantity > free:
            expected = "E049"
        response, until_ms = self.lock_call(slot, lock_key, duration_s, quantity)
        self.expect(response, expected)
        if expected is None:
            token = self.check_token(slot, lock_key, response)
            model.holds[lock_key] = Hold(quantity, until_ms, token)
            if model.lock == lock_key:
                model.lock = None

    @rule(slot=SLOTS, lock_key=strategies.sampled_from(LOCK_KEYS))
    def unlock(self, slot: int, lock_key: str) -> None:
        """Unlock: E059 when another key locks the whole slot, else the key's lock or hold ends."""
        model = self.world.slots[slot]
        expected = "E059" if model.lock not in (None, lock_key) else None
        self.expect(self.api.unlock(model.id, lock_key), expected)
        if expected is None:
            model.lock = None if model.lock == lock_key else model.lock
            model.holds.pop(lock_key, None)

    @rule(slot=SLOTS)
    def expire(self, slot: int) -> None:
        """Redis drops the whole-slot lock at lock_until (its clock may run ahead of ours)."""
        expire_lock(self.api, self.world.slots[slot].id)
        self.world.slots[slot].lock = None

    @rule(seconds=strategies.sampled_from([1, 29, 31, 119, 300, 601]))
    def time_passes(self, seconds: int) -> None:
        """The service's clock moves on: holds past lock_until end at once, though Redis still
        keeps them; a whole-slot lock past it is dropped, as Redis would drop it."""
        self.clock.advance(seconds * 1000)
        now_ms = self.clock.now_ms
        for model in self.world.slots:
            model.holds = {k: h for k, h in model.holds.items() if h.until_ms > now_ms}
            if model.lock is not None and model.lock_until_ms <= now_ms:
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
        expected = self.world.place_refusal(slot, lock_key)
        self.expect(response, expected)
        if expected is not None:
            return multiple()
        booking_id: str = response.json()["data"]["id"]
        self.world.bookings[booking_id] = BookingModel(slot)
        self.world.take_place(slot, lock_key, consume_lock=True)
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
        """Enable takes a place back as a new booking would; a whole lock stays, a hold shrinks."""
        booking = self.world.bookings.get(booking_id)
        lock_key = self.lock_key(key, booking.slot if booking else 0)
        body = None if lock_key is None else {"lock_key": lock_key}
        path = f"/bookings/{booking_id}/enable"
        response = self.api.call("POST", path, body, key="public")
        expected: str | None = "E048"
        if booking is not None:
            expected = None
            if booking.status == "cancelled":
                expected = self.world.place_refusal(booking.slot, lock_key)
        self.expect(response, expected)
        if booking is not None and expected is None and booking.status == "cancelled":
            booking.status = "active"
            self.world.take_place(booking.slot, lock_key, consume_lock=False)

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
                expected = self.world.place_refusal(to, lock_key)
        self.expect(response, expected)
        if booking is None or expected is not None:
            return
        if booking.status == "active" and booking.slot != to:
            self.world.take_place(to, lock_key, consume_lock=True)  # as a booking with its key
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
        """Capacity may not fall below the active bookings plus held places (E046)."""
        model = self.world.slots[slot]
        expected = "E046" if capacity < self.world.active_on(slot) + model.held() else None
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
            assert active + model.held() <= slot["capacity"] == model.capacity
            assert slot["status"] == ("active" if model.active else "disabled")
            assert (slot["locked_until"] is not None) == (model.lock is not None)
            free = self.world.free_places(index)
            assert (slot["num_held_places"], slot["num_free_places"]) == (model.held(), free)
            assert slot["available"] == (model.active and free > 0)

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
