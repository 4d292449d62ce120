"""Partial holds, exactly as API.md's "Partial holds" section says (fakeredis and redis-server)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from service import keyspace
from service.app import create_app
from service.settings import Settings
from service.store.client import RedisClient
from tests.api import Api, error_of, from_now, iso
from tests.test_bookings import ManualClock, action, book, booked, redis_of, reschedule, run


def hold(
    api: Api, slot_id: str, lock_key: str, quantity: Any, *, seconds: float = 300, **kwargs: Any
) -> httpx.Response:
    """Lock `quantity` places of a slot with the public key."""
    until = iso(from_now(seconds=seconds))
    body = {"lock_key": lock_key, "lock_until": until, "quantity": quantity}
    return api.call("POST", f"/slots/{slot_id}/lock", body, key=kwargs.pop("key", "public"))


def held(api: Api, slot_id: str, lock_key: str, quantity: int, **kwargs: Any) -> dict[str, Any]:
    """A hold that must succeed: the slot in its answer, with the token under `_token`."""
    response = hold(api, slot_id, lock_key, quantity, **kwargs)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return {**data, "_token": response.json()["meta"]["lock_token"]}


def places(slot: dict[str, Any]) -> tuple[int, int, bool]:
    """(num_held_places, num_free_places, available) as a slot shows them."""
    return slot["num_held_places"], slot["num_free_places"], slot["available"]


def shown(api: Api, slot_id: str) -> tuple[int, int, bool]:
    """places() of GET /slots/:id."""
    return places(api.ok("GET", f"/slots/{slot_id}"))


@pytest.fixture
def class_of_5(api: Api) -> str:
    """A published resource's slot of capacity 5."""
    return str(api.slot(api.resource()["id"], capacity=5)["id"])


# --- holding places ---


def test_several_keys_hold_places_at_once(api: Api, class_of_5: str) -> None:
    """Two keys hold 2 and 2 places of 5: the slot shows 4 held, 1 free, still available."""
    first = held(api, class_of_5, "key-a", 2)
    assert (places(first), first["locked_until"]) == ((2, 3, True), None)
    second = held(api, class_of_5, "key-b", 2)
    assert places(second) == (4, 1, True)
    assert shown(api, class_of_5) == (4, 1, True)
    assert second["_token"] > first["_token"]


def test_holding_more_than_is_free_is_e049_naming_the_free_places(
    api: Api, class_of_5: str
) -> None:
    """With 3 of 5 places held, a hold of 3 is E049 saying 2 are free, and changes nothing."""
    held(api, class_of_5, "key-a", 3)
    refused = hold(api, class_of_5, "key-b", 3)
    assert error_of(refused) == (422, "E049")
    assert "only 2 places" in refused.json()["error"]["message"]
    assert shown(api, class_of_5) == (3, 2, True)


def test_the_last_free_places_can_be_held_and_the_slot_is_then_unavailable(
    api: Api, class_of_5: str
) -> None:
    """Holding every free place leaves 0 free and `available: false`."""
    booked(api, class_of_5)
    held(api, class_of_5, "key-a", 4)
    assert shown(api, class_of_5) == (4, 0, False)
    assert error_of(hold(api, class_of_5, "key-b", 1)) == (422, "E049")


def test_whole_slot_lock_is_e045_while_another_key_holds_places(api: Api, class_of_5: str) -> None:
    """A lock without quantity is E045 while places are held; Retry-After: the first hold's end."""
    held(api, class_of_5, "key-a", 1, seconds=100)
    held(api, class_of_5, "key-c", 1, seconds=200)
    refused = api.lock(class_of_5, "key-b")
    assert error_of(refused) == (422, "E045")
    assert 90 <= int(refused.headers["retry-after"]) <= 101
    assert shown(api, class_of_5) == (2, 3, True)


def test_hold_is_e045_while_another_key_locks_the_whole_slot(api: Api, class_of_5: str) -> None:
    """A partial hold is refused while another key has the whole slot; the lock stays."""
    api.lock(class_of_5, "key-a", seconds=120)
    refused = hold(api, class_of_5, "key-b", 1)
    assert error_of(refused) == (422, "E045")
    assert 100 <= int(refused.headers["retry-after"]) <= 121
    slot = api.ok("GET", f"/slots/{class_of_5}")
    assert slot["locked_until"] is not None
    assert places(slot) == (0, 0, False)


def test_a_whole_slot_lock_shows_no_held_and_no_free_places(api: Api, class_of_5: str) -> None:
    """A client that sends no quantity locks the whole slot, as before: 0 held, 0 free."""
    locked = api.lock(class_of_5, "key-a").json()["data"]
    assert places(locked) == (0, 0, False)
    assert locked["locked_until"] is not None
    assert places(api.unlock(class_of_5, "key-a").json()["data"]) == (0, 5, True)


# --- the same key again ---


def test_same_key_resizes_its_hold_and_keeps_its_token(api: Api, class_of_5: str) -> None:
    """Relocking with another quantity sets the hold to it; the token stays."""
    first = held(api, class_of_5, "key-a", 2)
    grown = held(api, class_of_5, "key-a", 4)
    shrunk = held(api, class_of_5, "key-a", 1)
    assert (places(grown), places(shrunk)) == ((4, 1, True), (1, 4, True))
    assert first["_token"] == grown["_token"] == shrunk["_token"]


def test_growing_beyond_the_free_places_is_e049_and_the_hold_stays(
    api: Api, class_of_5: str
) -> None:
    """A key holding 2 may not grow to 4 when another holds 2: E049 says 1 is free besides."""
    held(api, class_of_5, "key-a", 2)
    held(api, class_of_5, "key-b", 2)
    refused = hold(api, class_of_5, "key-a", 4)
    assert error_of(refused) == (422, "E049")
    assert "only 1 places" in refused.json()["error"]["message"]
    assert shown(api, class_of_5) == (4, 1, True)
    assert places(held(api, class_of_5, "key-a", 3)) == (5, 0, False)


def test_a_hold_becomes_a_whole_slot_lock_and_back_with_one_token(
    api: Api, class_of_5: str
) -> None:
    """The same key converts its hold to a whole-slot lock and back; the token never changes."""
    token = held(api, class_of_5, "key-a", 2)["_token"]
    whole = api.lock(class_of_5, "key-a")
    assert whole.status_code == 200, whole.text
    assert whole.json()["meta"]["lock_token"] == token
    assert places(whole.json()["data"]) == (0, 0, False)
    back = held(api, class_of_5, "key-a", 3)
    assert (back["_token"], back["locked_until"], places(back)) == (token, None, (3, 2, True))


def test_converting_to_a_whole_slot_lock_is_e045_while_another_key_holds(
    api: Api, class_of_5: str
) -> None:
    """A holder cannot take the whole slot while another key holds places; its hold stays."""
    held(api, class_of_5, "key-a", 2)
    held(api, class_of_5, "key-b", 1)
    assert error_of(api.lock(class_of_5, "key-a")) == (422, "E045")
    assert shown(api, class_of_5) == (3, 2, True)


# --- unlock ---


def test_unlock_releases_the_whole_hold(api: Api, class_of_5: str) -> None:
    """Unlock with the key frees every place it held; the other key's hold stays."""
    held(api, class_of_5, "key-a", 3)
    held(api, class_of_5, "key-b", 1)
    response = api.unlock(class_of_5, "key-a")
    assert response.status_code == 200, response.text
    assert places(response.json()["data"]) == (1, 4, True)


def test_unlock_of_a_key_holding_nothing_is_200_or_e059_under_a_whole_lock(
    api: Api, class_of_5: str
) -> None:
    """Nothing to release is 200; a whole-slot lock of another key makes it 403 E059."""
    held(api, class_of_5, "key-a", 2)
    assert places(api.unlock(class_of_5, "key-b").json()["data"]) == (2, 3, True)
    api.unlock(class_of_5, "key-a")
    api.lock(class_of_5, "key-c")
    assert error_of(api.unlock(class_of_5, "key-b")) == (403, "E059")


def test_same_key_after_releasing_gets_a_larger_token(api: Api, class_of_5: str) -> None:
    """Unlocked, the same key's next hold is a new one: its token is larger."""
    first = held(api, class_of_5, "key-a", 2)["_token"]
    api.unlock(class_of_5, "key-a")
    assert held(api, class_of_5, "key-a", 2)["_token"] > first


# --- bookings ---


def test_bookings_with_the_key_take_its_held_places_one_at_a_time(
    api: Api, class_of_5: str
) -> None:
    """Each booking with the key shrinks its hold by one; at zero the hold has ended."""
    token = held(api, class_of_5, "key-a", 2)["_token"]
    booked(api, class_of_5, "key-a")
    assert shown(api, class_of_5) == (1, 3, True)
    booked(api, class_of_5, "key-a")
    slot = api.ok("GET", f"/slots/{class_of_5}")
    assert (slot["num_active_bookings"], places(slot)) == (2, (0, 3, True))
    assert held(api, class_of_5, "key-a", 1)["_token"] > token


def test_a_used_up_hold_books_like_no_key(api: Api) -> None:
    """Once its hold is used up, the key books only free places, like any request."""
    slot_id = api.slot(api.resource()["id"], capacity=2)["id"]
    held(api, slot_id, "key-a", 1)
    held(api, slot_id, "key-b", 1)
    booked(api, slot_id, "key-a")
    assert error_of(book(api, slot_id, "key-a")) == (422, "E049")


def test_bookings_without_the_key_take_only_free_places(api: Api, class_of_5: str) -> None:
    """With 4 of 5 places held, one booking without a key fits, the next is E049."""
    held(api, class_of_5, "key-a", 4)
    booked(api, class_of_5)
    assert error_of(book(api, class_of_5)) == (422, "E049")
    assert error_of(book(api, class_of_5, "key-b")) == (422, "E049")
    assert booked(api, class_of_5, "key-a")["status"] == "active"
    slot = api.ok("GET", f"/slots/{class_of_5}")
    assert (slot["num_active_bookings"], places(slot)) == (2, (3, 0, False))


def test_enable_with_the_key_takes_a_held_place(api: Api) -> None:
    """A cancelled booking comes back on a held place with the key, and is E049 without it."""
    slot_id = api.slot(api.resource()["id"], capacity=2)["id"]
    booking = booked(api, slot_id)
    action(api, booking["id"], "cancel")
    held(api, slot_id, "key-a", 2)
    assert error_of(action(api, booking["id"], "enable")) == (422, "E049")
    enabled = action(api, booking["id"], "enable", {"lock_key": "key-a"})
    assert enabled.status_code == 200, enabled.text
    assert shown(api, slot_id) == (1, 0, False)


def test_reschedule_with_the_key_takes_a_held_place_on_the_target(api: Api) -> None:
    """A move onto a fully held slot needs a key holding places there; it takes one of them."""
    resource_id = api.resource()["id"]
    source = api.slot(resource_id, capacity=1)["id"]
    target = api.slot(resource_id, hours_ahead=48, capacity=2)["id"]
    booking = booked(api, source)
    held(api, target, "key-a", 2)
    assert error_of(reschedule(api, booking["id"], target)) == (422, "E049")
    moved = reschedule(api, booking["id"], target, lock_key="key-a")
    assert moved.status_code == 200, moved.text
    assert shown(api, target) == (1, 0, False)
    assert shown(api, source) == (0, 1, True)


def test_reschedule_across_resources_takes_a_held_place_on_the_target(api: Api) -> None:
    """The cross-resource move (the saga) takes one of the key's held places too."""
    source = api.slot(api.resource()["id"], capacity=1)["id"]
    target = api.slot(api.resource(name="Room 2")["id"], capacity=3)["id"]
    booking = booked(api, source)
    held(api, target, "key-a", 3)
    assert error_of(reschedule(api, booking["id"], target)) == (422, "E049")
    moved = reschedule(api, booking["id"], target, lock_key="key-a")
    assert moved.status_code == 200, moved.text
    slot = api.ok("GET", f"/slots/{target}")
    assert (slot["num_active_bookings"], places(slot)) == (1, (2, 0, False))


# --- capacity, lists, deletion ---


def test_capacity_below_bookings_plus_held_places_is_e046(api: Api, class_of_5: str) -> None:
    """With 1 booking and 2 held places, capacity 2 is E046; 3 is fine."""
    booked(api, class_of_5)
    held(api, class_of_5, "key-a", 2)
    refused = api.call("PATCH", f"/slots/{class_of_5}", {"capacity": 2})
    assert error_of(refused) == (422, "E046")
    assert "2 held places" in refused.json()["error"]["message"]
    lowered = api.ok("PATCH", f"/slots/{class_of_5}", {"capacity": 3})
    assert (lowered["capacity"], places(lowered)) == (3, (2, 0, False))


def test_available_filter_counts_free_places(api: Api) -> None:
    """A slot whose every free place is held is left out of `available=true`."""
    resource_id = api.resource()["id"]
    full = api.slot(resource_id, capacity=2)["id"]
    partly = api.slot(resource_id, hours_ahead=48, capacity=2)["id"]
    held(api, full, "key-a", 2)
    held(api, partly, "key-a", 1)
    listed = api.ok("GET", "/slots", params={"available": "true"})
    assert [slot["id"] for slot in listed] == [partly]
    assert api.ok("GET", f"/resources/{resource_id}")["num_available_slots"] == 1


def test_deleting_a_slot_deletes_its_holds(api: Api, class_of_5: str) -> None:
    """A deleted slot leaves no hold keys behind."""
    held(api, class_of_5, "key-a", 2)
    api.ok("DELETE", f"/slots/{class_of_5}")
    redis = redis_of(api)
    assert run(api, redis.exists, keyspace.held(class_of_5)) == 0


# --- ending by itself, bounds, bad input ---


def test_hold_keys_expire_with_their_longest_hold(api: Api, class_of_5: str) -> None:
    """Redis drops a slot's holds at the latest lock_until: no sweeper needed."""
    held(api, class_of_5, "key-a", 1, seconds=600)
    until = held(api, class_of_5, "key-b", 1, seconds=60)
    deadline_ms = run(api, redis_of(api).pexpiretime, keyspace.held(class_of_5))
    assert 590_000 <= deadline_ms - from_now().timestamp() * 1000 <= 601_000
    assert until["num_held_places"] == 2


@pytest.fixture
def timed_api(redis_client: RedisClient, clock: ManualClock) -> Iterator[Api]:
    """The app on `clock`, with a hold cap of 2 slots per key."""
    settings = Settings(key_cache_s=0.0, max_locks_per_key=2)
    app = create_app(settings, redis_client, clock, owns_redis=True)  # closed after its jobs
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.portal is not None
        pair = client.portal.call(app.services.keys.create_pair, "test")
        yield Api(client, pair, app)


@pytest.fixture
def clock() -> ManualClock:
    """A clock the test moves by hand."""
    return ManualClock()


def test_an_ended_hold_frees_its_places_before_redis_deletes_it(
    timed_api: Api, clock: ManualClock
) -> None:
    """At lock_until the places count as free at once, for views, bookings and new holds."""
    api = timed_api
    slot_id = api.slot(api.resource()["id"], capacity=2)["id"]
    held(api, slot_id, "key-a", 2, seconds=60)
    assert error_of(book(api, slot_id)) == (422, "E049")
    clock.advance(61_000)
    assert run(api, redis_of(api).exists, keyspace.held(slot_id)) == 1
    assert shown(api, slot_id) == (0, 2, True)
    booked(api, slot_id)
    assert places(held(api, slot_id, "key-b", 1, seconds=120)) == (1, 0, False)


def test_e104_counts_slots_held_by_holds_as_by_locks(timed_api: Api) -> None:
    """With a cap of 2, a key holding places on two slots cannot hold or lock a third."""
    api = timed_api
    resource_id = api.resource()["id"]
    slots = [api.slot(resource_id, hours_ahead=24 * (n + 1), capacity=3)["id"] for n in range(3)]
    held(api, slots[0], "key-a", 1)
    api.lock(slots[1], "key-a")
    assert error_of(hold(api, slots[2], "key-a", 1)) == (422, "E104")
    assert error_of(api.lock(slots[2], "key-a")) == (422, "E104")
    assert places(held(api, slots[0], "key-a", 2)) == (2, 1, True)
    api.unlock(slots[0], "key-a")
    assert held(api, slots[2], "key-a", 1)["num_held_places"] == 1


def test_e104_frees_a_slot_once_the_hold_is_used_up(timed_api: Api) -> None:
    """A hold used up by bookings no longer counts against the key's cap."""
    api = timed_api
    resource_id = api.resource()["id"]
    slots = [api.slot(resource_id, hours_ahead=24 * (n + 1), capacity=3)["id"] for n in range(3)]
    held(api, slots[0], "key-a", 1)
    held(api, slots[1], "key-a", 1)
    booked(api, slots[0], "key-a")
    assert held(api, slots[2], "key-a", 1)["num_held_places"] == 1


def test_hold_beyond_the_longest_lock_is_e100(api: Api, class_of_5: str) -> None:
    """A public key may hold places for at most 15 minutes, as it may lock."""
    assert error_of(hold(api, class_of_5, "key-a", 1, seconds=16 * 60)) == (422, "E100")
    assert error_of(hold(api, class_of_5, "key-a", 1, seconds=-5)) == (422, "E100")
    assert shown(api, class_of_5) == (0, 5, True)


@pytest.mark.parametrize("quantity", [0, -1, 1.5, 2.0, "2", True, None, [1]])
def test_quantity_not_an_integer_of_at_least_1_is_e013(
    api: Api, class_of_5: str, quantity: object
) -> None:
    """`quantity` must be an integer >= 1: anything else is 400 E013 naming it."""
    refused = hold(api, class_of_5, "key-a", quantity)
    assert error_of(refused) == (400, "E013")
    assert "quantity" in refused.json()["error"]["message"]
    assert shown(api, class_of_5) == (0, 5, True)


def test_hold_on_a_not_lockable_or_disabled_slot_is_refused(api: Api) -> None:
    """E044 and E051 apply to holds as to locks."""
    resource_id = api.resource()["id"]
    unlockable = api.slot(resource_id, capacity=3, lockable=False)["id"]
    disabled = api.slot(resource_id, hours_ahead=48, capacity=3)["id"]
    api.ok("POST", f"/slots/{disabled}/disable")
    assert error_of(hold(api, unlockable, "key-a", 1)) == (422, "E044")
    assert error_of(hold(api, disabled, "key-a", 1)) == (422, "E051")
