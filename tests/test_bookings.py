"""Bookings: create, the lock they honour, counters, cancel/enable/delete, lists, reschedule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from service import keyspace
from service.app import create_app
from service.clock import system_clock_ms
from service.ids import new_child_id
from service.settings import Settings
from service.store.client import RedisClient
from tests.api import Api, error_of

T = TypeVar("T")

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


class ManualClock:
    """The service's injected clock, moved by hand; it starts at the wall clock."""

    def __init__(self) -> None:
        self.now_ms = system_clock_ms()

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, delta_ms: int) -> None:
        """Move the clock `delta_ms` forward."""
        self.now_ms += delta_ms


def open_api(redis: RedisClient, settings: Settings, clock: ManualClock) -> Iterator[Api]:
    """The app in-process on `redis` with `clock`, and a key pair of environment `test`."""
    app = create_app(settings, redis, clock, owns_redis=True)  # closed after its jobs
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.portal is not None
        pair = client.portal.call(app.services.keys.create_pair, "test")
        yield Api(client, pair, app)


def run(api: Api, call: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run a coroutine function on the app's event loop (e.g. a Redis call)."""
    assert api.client.portal is not None
    return api.client.portal.call(call, *args)


def redis_of(api: Api) -> RedisClient:
    """The app's Redis client."""
    redis: RedisClient = api.app.services.redis
    return redis


def expire_lock(api: Api, slot_id: str) -> None:
    """What Redis does at `lock_until`: the lock key disappears."""
    run(api, redis_of(api).delete, keyspace.lock(slot_id))


def open_intents(api: Api) -> int:
    """How many cross-resource moves the intent log holds."""
    count: int = run(api, redis_of(api).zcard, keyspace.reschedule_intents())
    return count


@pytest.fixture
def clock() -> ManualClock:
    """A clock the test moves by hand."""
    return ManualClock()


@pytest.fixture
def timed_api(redis_client: RedisClient, settings: Settings, clock: ManualClock) -> Iterator[Api]:
    """Like `api`, but the service reads `clock`."""
    yield from open_api(redis_client, settings, clock)


def book(api: Api, slot_id: str, lock_key: str | None = None, **kwargs: Any) -> httpx.Response:
    """POST /bookings with the public key."""
    body: dict[str, Any] = {"slot_id": slot_id, **kwargs.pop("fields", {})}
    if lock_key is not None:
        body["lock_key"] = lock_key
    return api.call("POST", "/bookings", body, key="public", **kwargs)


def booked(api: Api, slot_id: str, lock_key: str | None = None) -> dict[str, Any]:
    """A new booking that must succeed."""
    response = book(api, slot_id, lock_key)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def counts(api: Api, path: str) -> tuple[int, int, int]:
    """(num_bookings, num_active_bookings, num_cancelled_bookings) of a slot or resource."""
    data = api.ok("GET", path)
    return data["num_bookings"], data["num_active_bookings"], data["num_cancelled_bookings"]


def listed(api: Api, **params: str) -> list[str]:
    """Ids of GET /bookings with these filters, in the order listed."""
    return [booking["id"] for booking in api.ok("GET", "/bookings", params={**params, "limit": 50})]


def action(api: Api, booking_id: str, name: str, json: Any = None) -> httpx.Response:
    """POST /bookings/:id/<name> with the public key."""
    return api.call("POST", f"/bookings/{booking_id}/{name}", json, key="public")


def reschedule(api: Api, booking_id: str, target_slot_id: str, **fields: str) -> httpx.Response:
    """POST /bookings/:id/reschedule with the public key."""
    return action(api, booking_id, "reschedule", {"target_slot_id": target_slot_id, **fields})


# --- create ---


def test_booking_takes_a_place_and_moves_the_counters(api: Api) -> None:
    """A booking is created active and the slot and resource count it."""
    resource = api.resource()
    slot = api.slot(resource["id"], capacity=2)
    response = book(api, slot["id"])
    assert response.status_code == 200, response.text
    booking = response.json()["data"]
    assert booking["_object"] == "booking"
    assert booking["status"] == "active"
    assert booking["slot_id"] == slot["id"]
    assert booking["resource_id"] == resource["id"]
    slot_after = api.ok("GET", f"/slots/{slot['id']}")
    assert (slot_after["num_bookings"], slot_after["num_active_bookings"]) == (1, 1)
    assert slot_after["available"] is True
    resource_after = api.ok("GET", f"/resources/{resource['id']}")
    assert resource_after["num_active_bookings"] == 1


def test_booking_keeps_its_metadata(api: Api) -> None:
    """The metadata sent at creation comes back on create and on GET."""
    slot = api.slot(api.resource()["id"])
    response = book(api, slot["id"], fields={"metadata": {"customer": "ada", "seats": 2}})
    created = response.json()["data"]
    assert created["metadata"] == {"customer": "ada", "seats": 2}
    assert api.ok("GET", f"/bookings/{created['id']}")["metadata"] == created["metadata"]


@pytest.mark.parametrize("slot_id", [UNKNOWN_ID, "not-a-slot-id", ""])
def test_booking_an_unknown_or_malformed_slot_is_e025(api: Api, slot_id: str) -> None:
    """A slot id that names no slot is 404 E025, never a 500."""
    assert error_of(book(api, slot_id)) == (404, "E025")


def test_booking_another_environments_slot_is_e025(api: Api, other_api: Api) -> None:
    """A key of another environment does not see the slot at all."""
    slot = api.slot(api.resource()["id"])
    assert error_of(book(other_api, slot["id"])) == (404, "E025")
    assert counts(api, f"/slots/{slot['id']}") == (0, 0, 0)


def test_booking_without_a_slot_id_is_e013(api: Api) -> None:
    """A body without `slot_id` is 400 E013 naming the field."""
    response = api.call("POST", "/bookings", {"metadata": {}}, key="public")
    assert error_of(response) == (400, "E013")
    assert "slot_id" in response.json()["error"]["message"]


def test_booking_a_disabled_slot_is_e051(api: Api) -> None:
    """A disabled slot takes no booking (422 E051)."""
    slot = api.slot(api.resource()["id"])
    api.ok("POST", f"/slots/{slot['id']}/disable")
    assert error_of(book(api, slot["id"])) == (422, "E051")
    assert counts(api, f"/slots/{slot['id']}") == (0, 0, 0)


def test_booking_a_draft_resources_slot_is_e061(api: Api) -> None:
    """A slot of an unpublished resource takes no booking (422 E061)."""
    resource = api.resource(published=False)
    slot = api.slot(resource["id"])
    assert error_of(book(api, slot["id"])) == (422, "E061")
    assert counts(api, f"/resources/{resource['id']}") == (0, 0, 0)


def test_booking_inside_the_closed_window_is_e058(api: Api) -> None:
    """A slot starting sooner than `booking_disabled_before` takes no booking (422 E058)."""
    resource = api.resource(booking_disabled_before=7200)
    soon = api.slot(resource["id"], hours_ahead=1)
    later = api.slot(resource["id"], hours_ahead=3)
    assert error_of(book(api, soon["id"])) == (422, "E058")
    assert book(api, later["id"]).status_code == 200


def test_booking_window_closes_as_time_passes(timed_api: Api, clock: ManualClock) -> None:
    """The same slot is bookable before its window closes and E058 once the clock passes it."""
    resource = timed_api.resource(booking_disabled_before=3600)
    slot = timed_api.slot(resource["id"], hours_ahead=2, capacity=2)
    assert book(timed_api, slot["id"]).status_code == 200
    clock.advance(61 * 60 * 1000)
    assert error_of(book(timed_api, slot["id"])) == (422, "E058")
    assert timed_api.ok("GET", f"/slots/{slot['id']}")["available"] is False
    assert counts(timed_api, f"/slots/{slot['id']}") == (1, 1, 0)


def test_booking_a_full_slot_is_e049(api: Api) -> None:
    """Once every place is taken the next booking is 422 E049 and counts nothing."""
    slot = api.slot(api.resource()["id"], capacity=2)
    booked(api, slot["id"])
    booked(api, slot["id"])
    assert error_of(book(api, slot["id"])) == (422, "E049")
    after = api.ok("GET", f"/slots/{slot['id']}")
    assert (after["num_active_bookings"], after["available"]) == (2, False)


def test_lock_holder_books_and_the_lock_is_gone(api: Api) -> None:
    """Only the lock_key holder may book a locked slot; its booking releases the lock."""
    slot = api.slot(api.resource()["id"], capacity=3)
    api.lock(slot["id"], "holder-key")
    assert error_of(book(api, slot["id"])) == (422, "E050")
    assert error_of(book(api, slot["id"], "another-key")) == (422, "E050")
    assert book(api, slot["id"], "holder-key").status_code == 200
    assert api.ok("GET", f"/slots/{slot['id']}")["locked_until"] is None


def test_refused_booking_of_a_locked_slot_changes_nothing(api: Api) -> None:
    """An E050 leaves the lock in place and the counters as they were."""
    slot = api.slot(api.resource()["id"], capacity=3)
    api.lock(slot["id"], "holder-key")
    book(api, slot["id"], "another-key")
    after = api.ok("GET", f"/slots/{slot['id']}")
    assert after["locked_until"] is not None
    assert (after["num_bookings"], after["available"]) == (0, False)


def test_expired_lock_no_longer_guards_the_slot(api: Api) -> None:
    """Once the lock expires anyone may book, without a lock_key."""
    slot = api.slot(api.resource()["id"])
    api.lock(slot["id"], "holder-key")
    expire_lock(api, slot["id"])
    assert book(api, slot["id"]).status_code == 200


def test_idempotent_retry_replays_the_first_booking(api: Api) -> None:
    """The same Idempotency-Key and body returns the first response and books once."""
    slot = api.slot(api.resource()["id"], capacity=5)
    headers = {"idempotency-key": "checkout-42"}
    first = book(api, slot["id"], headers=headers)
    second = book(api, slot["id"], headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert api.ok("GET", f"/slots/{slot['id']}")["num_bookings"] == 1


def test_idempotency_key_with_another_body_is_refused(api: Api) -> None:
    """Reusing a key for a different request is 422 E101 and changes nothing."""
    resource = api.resource()
    first_slot = api.slot(resource["id"], capacity=5)
    second_slot = api.slot(resource["id"], hours_ahead=48, capacity=5)
    headers = {"idempotency-key": "checkout-43"}
    assert book(api, first_slot["id"], headers=headers).status_code == 200
    assert error_of(book(api, second_slot["id"], headers=headers)) == (422, "E101")
    assert api.ok("GET", f"/slots/{second_slot['id']}")["num_bookings"] == 0


# --- list and get ---


def test_list_is_oldest_first(timed_api: Api, clock: ManualClock) -> None:
    """Bookings are listed by creation time, whatever the order of their slots."""
    resource = timed_api.resource()
    late_slot = timed_api.slot(resource["id"], hours_ahead=48, capacity=5)
    early_slot = timed_api.slot(resource["id"], hours_ahead=24, capacity=5)
    made = []
    for slot in (late_slot, early_slot, late_slot):
        made.append(booked(timed_api, slot["id"])["id"])
        clock.advance(1000)
    assert listed(timed_api) == made


def test_list_filters_by_status(api: Api) -> None:
    """`status` keeps only bookings in that status."""
    slot = api.slot(api.resource()["id"], capacity=3)
    kept, cancelled = booked(api, slot["id"]), booked(api, slot["id"])
    action(api, cancelled["id"], "cancel")
    assert listed(api, status="active") == [kept["id"]]
    assert listed(api, status="cancelled") == [cancelled["id"]]


def test_list_filters_by_slot_id(api: Api) -> None:
    """`slot_id` keeps only that slot's bookings."""
    resource = api.resource()
    first, second = api.slot(resource["id"]), api.slot(resource["id"], hours_ahead=48)
    booked(api, first["id"])
    wanted = booked(api, second["id"])
    assert listed(api, slot_id=second["id"]) == [wanted["id"]]


def test_list_filters_by_resource_id(api: Api) -> None:
    """`resource_id` keeps only that resource's bookings."""
    first, second = api.resource(), api.resource(name="Room 2")
    booked(api, api.slot(first["id"])["id"])
    wanted = booked(api, api.slot(second["id"])["id"])
    assert listed(api, resource_id=second["id"]) == [wanted["id"]]


def test_list_combines_filters(api: Api) -> None:
    """Filters combine: cancelled bookings of one slot."""
    resource = api.resource()
    first, second = api.slot(resource["id"], capacity=2), api.slot(resource["id"], hours_ahead=48)
    booked(api, first["id"])
    wanted = booked(api, first["id"])
    action(api, wanted["id"], "cancel")
    action(api, booked(api, second["id"])["id"], "cancel")
    assert listed(api, slot_id=first["id"], status="cancelled") == [wanted["id"]]


def test_list_pages_with_meta(timed_api: Api, clock: ManualClock) -> None:
    """`limit` and `page` cut the list and `meta` says where the page lies."""
    slot = timed_api.slot(timed_api.resource()["id"], capacity=5)
    made = []
    for _ in range(5):
        made.append(booked(timed_api, slot["id"])["id"])
        clock.advance(1000)
    response = timed_api.call("GET", "/bookings", params={"limit": 2, "page": 2})
    assert [booking["id"] for booking in response.json()["data"]] == made[2:4]
    assert response.json()["meta"] == {"limit": 2, "page": 2, "total": 5}
    last = timed_api.call("GET", "/bookings", params={"limit": 2, "page": 3}).json()
    assert [booking["id"] for booking in last["data"]] == made[4:]


@pytest.mark.parametrize("name", ["slot_id", "resource_id"])
def test_list_by_a_malformed_id_is_empty(api: Api, name: str) -> None:
    """A malformed filter id matches nothing: an empty list, not an error."""
    booked(api, api.slot(api.resource()["id"])["id"])
    assert listed(api, **{name: "nonsense"}) == []


def test_list_refuses_an_unknown_status(api: Api) -> None:
    """A `status` other than active or cancelled is 400 E013."""
    assert error_of(api.call("GET", "/bookings", params={"status": "gone"})) == (400, "E013")


def test_list_shows_no_other_environments_bookings(api: Api, other_api: Api) -> None:
    """A key sees only bookings of its own environment."""
    booked(api, api.slot(api.resource()["id"])["id"])
    assert listed(other_api) == []


def test_get_returns_the_booking(api: Api) -> None:
    """GET /bookings/:id returns the booking as it was created, with the public key."""
    created = booked(api, api.slot(api.resource()["id"])["id"])
    assert api.ok("GET", f"/bookings/{created['id']}", key="public") == created


@pytest.mark.parametrize("booking_id", [UNKNOWN_ID, "not-a-booking-id"])
@pytest.mark.parametrize(
    ("method", "suffix", "json"),
    [
        ("GET", "", None),
        ("PATCH", "", {"metadata": {}}),
        ("DELETE", "", None),
        ("POST", "/cancel", None),
        ("POST", "/enable", None),
        ("POST", "/reschedule", {"target_slot_id": UNKNOWN_ID}),
    ],
)
def test_unknown_or_malformed_booking_is_e048(
    api: Api, method: str, suffix: str, json: Any, booking_id: str
) -> None:
    """Every booking endpoint answers 404 E048 for an id that names no booking."""
    response = api.call(method, f"/bookings/{booking_id}{suffix}", json)
    assert error_of(response) == (404, "E048")


def test_another_environment_cannot_reach_the_booking(api: Api, other_api: Api) -> None:
    """Another environment's key gets E048 and cannot cancel the booking."""
    created = booked(api, api.slot(api.resource()["id"])["id"])
    assert error_of(other_api.call("GET", f"/bookings/{created['id']}")) == (404, "E048")
    assert error_of(action(other_api, created["id"], "cancel")) == (404, "E048")
    assert api.ok("GET", f"/bookings/{created['id']}")["status"] == "active"


# --- update metadata ---


def test_patch_replaces_the_metadata(api: Api) -> None:
    """PATCH replaces the whole metadata object, with the public key."""
    slot = api.slot(api.resource()["id"])
    created = book(api, slot["id"], fields={"metadata": {"old": 1}}).json()["data"]
    path = f"/bookings/{created['id']}"
    patched = api.ok("PATCH", path, {"metadata": {"new": "yes"}}, key="public")
    assert patched["metadata"] == {"new": "yes"}
    assert api.ok("GET", path)["metadata"] == {"new": "yes"}


@pytest.mark.parametrize(
    "metadata",
    [{"k" * 101: "v"}, {"note": "x" * 5001}, {"blob": {"text": "y" * 5000}}],
    ids=["long-key", "long-value", "long-json-value"],
)
def test_patch_metadata_over_the_limits_is_e042(api: Api, metadata: dict[str, Any]) -> None:
    """A key over 100 or a value over 5000 characters is 422 E042 and keeps the old metadata."""
    slot = api.slot(api.resource()["id"])
    created = book(api, slot["id"], fields={"metadata": {"old": 1}}).json()["data"]
    path = f"/bookings/{created['id']}"
    assert error_of(api.call("PATCH", path, {"metadata": metadata})) == (422, "E042")
    assert api.ok("GET", path)["metadata"] == {"old": 1}


def test_patch_metadata_at_the_limits_is_accepted(api: Api) -> None:
    """A 100-character key with a value of 5000 serialised characters is allowed."""
    slot = api.slot(api.resource()["id"])
    created = booked(api, slot["id"])
    metadata = {"k" * 100: "v" * 4998}
    assert api.ok("PATCH", f"/bookings/{created['id']}", {"metadata": metadata})["metadata"] == (
        metadata
    )


@pytest.mark.parametrize("content", [b"{}", b""], ids=["empty-object", "no-body"])
def test_patch_without_metadata_changes_nothing(api: Api, content: bytes) -> None:
    """PATCH with `{}` or no body at all answers 200 with the booking as it was."""
    slot = api.slot(api.resource()["id"])
    created = book(api, slot["id"], fields={"metadata": {"old": 1}}).json()["data"]
    path = f"/bookings/{created['id']}"
    response = api.call("PATCH", path, key="public", content=content)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == created
    assert api.ok("GET", path) == created


def test_patch_without_metadata_of_an_unknown_booking_is_e048(api: Api) -> None:
    """An empty PATCH still needs the booking to exist (404 E048)."""
    response = api.call("PATCH", "/bookings/0badc0de-0000-4000-8000-000000000000", {})
    assert error_of(response) == (404, "E048")


def test_patch_with_an_unknown_field_is_e013(api: Api) -> None:
    """PATCH takes only `metadata`; a status in the body is 400 E013."""
    created = booked(api, api.slot(api.resource()["id"])["id"])
    response = api.call("PATCH", f"/bookings/{created['id']}", {"status": "cancelled"})
    assert error_of(response) == (400, "E013")
    assert api.ok("GET", f"/bookings/{created['id']}")["status"] == "active"


# --- cancel and enable ---


def test_cancel_frees_the_place_and_moves_the_counters(api: Api) -> None:
    """A cancelled booking stays counted, as cancelled, and its place is free again."""
    resource = api.resource()
    slot = api.slot(resource["id"])
    created = booked(api, slot["id"])
    response = action(api, created["id"], "cancel")
    assert response.json()["data"]["status"] == "cancelled"
    assert counts(api, f"/slots/{slot['id']}") == (1, 0, 1)
    assert counts(api, f"/resources/{resource['id']}") == (1, 0, 1)
    assert api.ok("GET", f"/slots/{slot['id']}")["available"] is True


def test_cancelling_twice_is_harmless(api: Api) -> None:
    """A second cancel answers 200 and moves no counter again."""
    resource = api.resource()
    slot = api.slot(resource["id"], capacity=2)
    created = booked(api, slot["id"])
    booked(api, slot["id"])
    action(api, created["id"], "cancel")
    again = action(api, created["id"], "cancel")
    assert (again.status_code, again.json()["data"]["status"]) == (200, "cancelled")
    assert counts(api, f"/slots/{slot['id']}") == (2, 1, 1)
    assert counts(api, f"/resources/{resource['id']}") == (2, 1, 1)


def test_cancelled_place_can_be_booked_again(api: Api) -> None:
    """After a cancel, a full slot of capacity 1 takes a new booking."""
    slot = api.slot(api.resource()["id"])
    action(api, booked(api, slot["id"])["id"], "cancel")
    assert book(api, slot["id"]).status_code == 200
    assert counts(api, f"/slots/{slot['id']}") == (2, 1, 1)


def test_enable_takes_the_place_back(api: Api) -> None:
    """Enabling a cancelled booking makes it active and counts it active again."""
    resource = api.resource()
    slot = api.slot(resource["id"])
    created = booked(api, slot["id"])
    action(api, created["id"], "cancel")
    response = action(api, created["id"], "enable")
    assert response.json()["data"]["status"] == "active"
    assert counts(api, f"/slots/{slot['id']}") == (1, 1, 0)
    assert counts(api, f"/resources/{resource['id']}") == (1, 1, 0)
    assert api.ok("GET", f"/slots/{slot['id']}")["available"] is False


def test_enabling_an_active_booking_changes_nothing(api: Api) -> None:
    """Enable on an active booking answers 200 and counts nothing twice."""
    slot = api.slot(api.resource()["id"], capacity=2)
    created = booked(api, slot["id"])
    assert action(api, created["id"], "enable").status_code == 200
    assert counts(api, f"/slots/{slot['id']}") == (1, 1, 0)


def test_enable_on_a_full_slot_is_e049(api: Api) -> None:
    """A cancelled booking whose place was taken cannot come back (422 E049)."""
    slot = api.slot(api.resource()["id"])
    first = booked(api, slot["id"])
    action(api, first["id"], "cancel")
    booked(api, slot["id"])
    assert error_of(action(api, first["id"], "enable")) == (422, "E049")
    assert api.ok("GET", f"/bookings/{first['id']}")["status"] == "cancelled"
    assert counts(api, f"/slots/{slot['id']}") == (2, 1, 1)


def test_enable_on_a_slot_locked_by_another_is_e050(api: Api) -> None:
    """A lock under another key keeps the place: enable without it is 422 E050."""
    slot = api.slot(api.resource()["id"], capacity=2)
    created = booked(api, slot["id"])
    action(api, created["id"], "cancel")
    api.lock(slot["id"], "holder-key")
    assert error_of(action(api, created["id"], "enable")) == (422, "E050")
    wrong_key = action(api, created["id"], "enable", {"lock_key": "another-key"})
    assert error_of(wrong_key) == (422, "E050")
    assert counts(api, f"/slots/{slot['id']}") == (1, 0, 1)


def test_enable_with_the_lock_key_succeeds(api: Api) -> None:
    """The lock's holder may enable a booking on its locked slot."""
    slot = api.slot(api.resource()["id"], capacity=2)
    created = booked(api, slot["id"])
    action(api, created["id"], "cancel")
    api.lock(slot["id"], "holder-key")
    response = action(api, created["id"], "enable", {"lock_key": "holder-key"})
    assert response.json()["data"]["status"] == "active"
    assert counts(api, f"/slots/{slot['id']}") == (1, 1, 0)


def test_enable_on_a_disabled_slot_is_e051(api: Api) -> None:
    """A booking cannot come back on a disabled slot (422 E051)."""
    slot = api.slot(api.resource()["id"])
    created = booked(api, slot["id"])
    action(api, created["id"], "cancel")
    api.ok("POST", f"/slots/{slot['id']}/disable")
    assert error_of(action(api, created["id"], "enable")) == (422, "E051")
    assert counts(api, f"/slots/{slot['id']}") == (1, 0, 1)


def test_replayed_cancel_changes_nothing(api: Api) -> None:
    """A cancel repeated with its Idempotency-Key after an enable replays, and cancels nothing."""
    created = booked(api, api.slot(api.resource()["id"])["id"])
    headers = {"idempotency-key": "cancel-1"}
    first = api.call("POST", f"/bookings/{created['id']}/cancel", headers=headers)
    action(api, created["id"], "enable")
    replay = api.call("POST", f"/bookings/{created['id']}/cancel", headers=headers)
    assert replay.json() == first.json()
    assert api.ok("GET", f"/bookings/{created['id']}")["status"] == "active"


# --- reschedule ---


@pytest.fixture(params=["within", "across"])
def target_resource(request: pytest.FixtureRequest, api: Api) -> Callable[..., dict[str, Any]]:
    """Makes the resource a reschedule target lives in: the source's own, or another one."""

    def make(source: dict[str, Any], **fields: Any) -> dict[str, Any]:
        if request.param == "within":
            if fields:
                return dict(api.ok("PATCH", f"/resources/{source['id']}", fields))
            return source
        return api.resource(name="Room 2", **fields)

    return make


def test_reschedule_moves_the_booking_and_the_counters(
    api: Api, target_resource: Callable[..., dict[str, Any]]
) -> None:
    """After a move the booking, both slots, both resources and the lists show it on the target."""
    source_resource = api.resource()
    source = api.slot(source_resource["id"])
    resource = target_resource(source_resource)
    target = api.slot(resource["id"], hours_ahead=48)
    created = booked(api, source["id"])
    moved = reschedule(api, created["id"], target["id"]).json()["data"]
    assert (moved["id"], moved["slot_id"], moved["resource_id"]) == (
        created["id"],
        target["id"],
        resource["id"],
    )
    assert api.ok("GET", f"/bookings/{created['id']}") == moved
    assert counts(api, f"/slots/{source['id']}") == (0, 0, 0)
    assert counts(api, f"/slots/{target['id']}") == (1, 1, 0)
    assert api.ok("GET", f"/slots/{source['id']}")["available"] is True
    assert api.ok("GET", f"/slots/{target['id']}")["available"] is False
    assert listed(api, slot_id=target["id"]) == [created["id"]]
    assert listed(api, slot_id=source["id"]) == []
    assert listed(api, resource_id=resource["id"]) == [created["id"]]


def test_reschedule_across_resources_moves_resource_counters(api: Api) -> None:
    """A move to another resource takes the booking off one resource's counters onto the other's."""
    first, second = api.resource(), api.resource(name="Room 2")
    source, target = api.slot(first["id"]), api.slot(second["id"])
    created = booked(api, source["id"])
    assert reschedule(api, created["id"], target["id"]).status_code == 200
    assert counts(api, f"/resources/{first['id']}") == (0, 0, 0)
    assert counts(api, f"/resources/{second['id']}") == (1, 1, 0)
    assert listed(api, resource_id=first["id"]) == []
    assert open_intents(api) == 0


def test_reschedule_within_a_resource_keeps_resource_counters(api: Api) -> None:
    """A move between two slots of one resource leaves the resource's counters as they were."""
    resource = api.resource()
    source, target = api.slot(resource["id"]), api.slot(resource["id"], hours_ahead=48)
    created = booked(api, source["id"])
    assert reschedule(api, created["id"], target["id"]).status_code == 200
    assert counts(api, f"/resources/{resource['id']}") == (1, 1, 0)


REFUSALS = ["unknown", "disabled", "draft", "closed", "locked", "full"]


def refusing_target(
    api: Api, reason: str, source_resource: dict[str, Any], make: Callable[..., dict[str, Any]]
) -> str:
    """The id of a target slot that refuses a new active booking for `reason`."""
    if reason == "closed":
        return str(
            api.slot(make(source_resource, booking_disabled_before=7200)["id"], hours_ahead=1)["id"]
        )
    resource = make(source_resource)
    if reason == "unknown":
        return new_child_id(resource["id"])  # well-formed, in the target's home tag
    target = api.slot(resource["id"], hours_ahead=48)
    if reason == "disabled":
        api.ok("POST", f"/slots/{target['id']}/disable")
    elif reason == "draft":
        api.ok("POST", f"/resources/{resource['id']}/convert-draft")
    elif reason == "locked":
        api.lock(target["id"], "holder-key")
    elif reason == "full":
        booked(api, target["id"])
    return str(target["id"])


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("unknown", (404, "E025")),
        ("disabled", (422, "E051")),
        ("draft", (422, "E061")),
        ("closed", (422, "E058")),
        ("locked", (422, "E050")),
        ("full", (422, "E049")),
    ],
)
def test_reschedule_target_refuses_as_create_would(
    api: Api,
    target_resource: Callable[..., dict[str, Any]],
    reason: str,
    expected: tuple[int, str],
) -> None:
    """A target that refuses a new booking refuses the move with the same code; nothing moves."""
    source_resource = api.resource()
    source = api.slot(source_resource["id"], hours_ahead=24)
    created = booked(api, source["id"])
    target_id = refusing_target(api, reason, source_resource, target_resource)
    assert error_of(reschedule(api, created["id"], target_id)) == expected
    assert api.ok("GET", f"/bookings/{created['id']}")["slot_id"] == source["id"]
    assert counts(api, f"/slots/{source['id']}") == (1, 1, 0)
    assert listed(api, slot_id=source["id"]) == [created["id"]]
    assert open_intents(api) == 0


def test_reschedule_to_a_malformed_target_is_e025(api: Api) -> None:
    """A malformed `target_slot_id` is 404 E025, never a 500."""
    created = booked(api, api.slot(api.resource()["id"])["id"])
    assert error_of(reschedule(api, created["id"], "nonsense")) == (404, "E025")


def test_reschedule_to_another_environments_slot_is_e025(api: Api, other_api: Api) -> None:
    """A slot of another environment is not found as a target."""
    created = booked(api, api.slot(api.resource()["id"])["id"])
    foreign = other_api.slot(other_api.resource()["id"])
    assert error_of(reschedule(api, created["id"], foreign["id"])) == (404, "E025")
    assert counts(other_api, f"/slots/{foreign['id']}") == (0, 0, 0)


def test_reschedule_with_the_lock_key_consumes_the_lock(
    api: Api, target_resource: Callable[..., dict[str, Any]]
) -> None:
    """The target's lock holder may move a booking there; the move ends the lock."""
    source_resource = api.resource()
    created = booked(api, api.slot(source_resource["id"])["id"])
    target = api.slot(target_resource(source_resource)["id"], hours_ahead=48)
    api.lock(target["id"], "holder-key")
    response = reschedule(api, created["id"], target["id"], lock_key="holder-key")
    assert response.json()["data"]["slot_id"] == target["id"]
    assert api.ok("GET", f"/slots/{target['id']}")["locked_until"] is None


def test_reschedule_of_a_cancelled_booking_needs_no_place(
    api: Api, target_resource: Callable[..., dict[str, Any]]
) -> None:
    """A cancelled booking moves to a full slot and stays cancelled, counted as such."""
    source_resource = api.resource()
    source = api.slot(source_resource["id"])
    target = api.slot(target_resource(source_resource)["id"], hours_ahead=48)
    created = booked(api, source["id"])
    action(api, created["id"], "cancel")
    booked(api, target["id"])
    moved = reschedule(api, created["id"], target["id"]).json()["data"]
    assert (moved["slot_id"], moved["status"]) == (target["id"], "cancelled")
    assert counts(api, f"/slots/{source['id']}") == (0, 0, 0)
    assert counts(api, f"/slots/{target['id']}") == (2, 1, 1)


def test_reschedule_to_its_own_slot_changes_nothing(api: Api) -> None:
    """Moving a booking to the slot it is on answers it unchanged."""
    slot = api.slot(api.resource()["id"])
    created = booked(api, slot["id"])
    moved = reschedule(api, created["id"], slot["id"]).json()["data"]
    assert moved == created
    assert counts(api, f"/slots/{slot['id']}") == (1, 1, 0)


def test_reschedule_back_and_forth_across_resources(api: Api) -> None:
    """A booking moved away and back again is found, listed and counted on its last slot."""
    first, second = api.resource(), api.resource(name="Room 2")
    home, away = api.slot(first["id"]), api.slot(second["id"])
    created = booked(api, home["id"])
    for target in (away, home, away, home):
        assert reschedule(api, created["id"], target["id"]).status_code == 200
    assert api.ok("GET", f"/bookings/{created['id']}")["slot_id"] == home["id"]
    assert counts(api, f"/slots/{home['id']}") == (1, 1, 0)
    assert counts(api, f"/slots/{away['id']}") == (0, 0, 0)
    assert counts(api, f"/resources/{second['id']}") == (0, 0, 0)
    assert listed(api) == [created["id"]]


def test_moved_booking_can_be_cancelled_and_enabled_on_its_new_resource(api: Api) -> None:
    """Cancel and enable, reached through the booking's id, count on the slot it moved to."""
    first, second = api.resource(), api.resource(name="Room 2")
    source, target = api.slot(first["id"]), api.slot(second["id"])
    created = booked(api, source["id"])
    reschedule(api, created["id"], target["id"])
    assert action(api, created["id"], "cancel").json()["data"]["status"] == "cancelled"
    assert counts(api, f"/slots/{target['id']}") == (1, 0, 1)
    assert action(api, created["id"], "enable").json()["data"]["status"] == "active"
    assert counts(api, f"/resources/{second['id']}") == (1, 1, 0)
    assert counts(api, f"/resources/{first['id']}") == (0, 0, 0)


def test_moved_booking_metadata_can_be_patched(api: Api) -> None:
    """PATCH reaches a booking that moved to another resource."""
    first, second = api.resource(), api.resource(name="Room 2")
    created = booked(api, api.slot(first["id"])["id"])
    reschedule(api, created["id"], api.slot(second["id"])["id"])
    path = f"/bookings/{created['id']}"
    api.ok("PATCH", path, {"metadata": {"moved": True}})
    assert api.ok("GET", path)["metadata"] == {"moved": True}


# --- delete ---


def test_delete_with_the_public_key_is_e015(api: Api) -> None:
    """Deleting needs the secret key: the public key gets 401 E015 and the booking stays."""
    created = booked(api, api.slot(api.resource()["id"])["id"])
    response = api.call("DELETE", f"/bookings/{created['id']}", key="public")
    assert error_of(response) == (401, "E015")
    assert api.ok("GET", f"/bookings/{created['id']}")["status"] == "active"


@pytest.mark.parametrize("cancel_first", [False, True], ids=["active", "cancelled"])
def test_delete_removes_the_booking_and_its_counts(api: Api, cancel_first: bool) -> None:
    """A deleted booking is gone from GET, the list and every counter."""
    resource = api.resource()
    slot = api.slot(resource["id"])
    created = booked(api, slot["id"])
    if cancel_first:
        action(api, created["id"], "cancel")
    assert api.ok("DELETE", f"/bookings/{created['id']}") == {}
    assert error_of(api.call("GET", f"/bookings/{created['id']}")) == (404, "E048")
    assert listed(api) == []
    assert counts(api, f"/slots/{slot['id']}") == (0, 0, 0)
    assert counts(api, f"/resources/{resource['id']}") == (0, 0, 0)
    assert api.ok("GET", f"/slots/{slot['id']}")["available"] is True


def test_deleting_twice_is_e048(api: Api) -> None:
    """A booking deleted once is not found the second time, and counters do not go negative."""
    slot = api.slot(api.resource()["id"])
    created = booked(api, slot["id"])
    api.ok("DELETE", f"/bookings/{created['id']}")
    assert error_of(api.call("DELETE", f"/bookings/{created['id']}")) == (404, "E048")
    assert counts(api, f"/slots/{slot['id']}") == (0, 0, 0)


def test_delete_of_a_moved_booking_counts_on_its_new_slot(api: Api) -> None:
    """Deleting a booking that moved to another resource empties that resource's counters."""
    first, second = api.resource(), api.resource(name="Room 2")
    source, target = api.slot(first["id"]), api.slot(second["id"])
    created = booked(api, source["id"])
    reschedule(api, created["id"], target["id"])
    api.ok("DELETE", f"/bookings/{created['id']}")
    assert error_of(api.call("GET", f"/bookings/{created['id']}")) == (404, "E048")
    assert counts(api, f"/slots/{target['id']}") == (0, 0, 0)
    assert counts(api, f"/resources/{second['id']}") == (0, 0, 0)
    assert counts(api, f"/resources/{first['id']}") == (0, 0, 0)


# --- slots and resources that hold bookings ---


def test_slot_with_active_bookings_cannot_be_deleted(api: Api) -> None:
    """DELETE /slots/:id is 422 E060 while a booking is active; the slot stays."""
    slot = api.slot(api.resource()["id"])
    booked(api, slot["id"])
    assert error_of(api.call("DELETE", f"/slots/{slot['id']}")) == (422, "E060")
    assert counts(api, f"/slots/{slot['id']}") == (1, 1, 0)


def test_slot_with_only_cancelled_bookings_is_deleted_with_them(api: Api) -> None:
    """Once its bookings are cancelled a slot may go, taking them and their counts along."""
    resource = api.resource()
    slot = api.slot(resource["id"])
    created = booked(api, slot["id"])
    action(api, created["id"], "cancel")
    api.ok("DELETE", f"/slots/{slot['id']}")
    assert error_of(api.call("GET", f"/bookings/{created['id']}")) == (404, "E048")
    assert counts(api, f"/resources/{resource['id']}") == (0, 0, 0)


def test_capacity_below_active_bookings_is_e046(api: Api) -> None:
    """A slot's capacity cannot drop below its active bookings (422 E046)."""
    slot = api.slot(api.resource()["id"], capacity=3)
    booked(api, slot["id"])
    booked(api, slot["id"])
    path = f"/slots/{slot['id']}"
    assert error_of(api.call("PATCH", path, {"capacity": 1})) == (422, "E046")
    assert api.ok("GET", path)["capacity"] == 3


def test_capacity_down_to_active_bookings_fills_the_slot(api: Api) -> None:
    """Lowering capacity to exactly the active bookings is allowed and leaves no place."""
    slot = api.slot(api.resource()["id"], capacity=3)
    booked(api, slot["id"])
    changed = api.ok("PATCH", f"/slots/{slot['id']}", {"capacity": 1})
    assert (changed["capacity"], changed["available"]) == (1, False)
    assert error_of(book(api, slot["id"])) == (422, "E049")


def test_deleting_a_resource_removes_its_slots_and_bookings(api: Api) -> None:
    """After DELETE /resources/:id its slots and bookings are not found."""
    resource = api.resource()
    slot = api.slot(resource["id"])
    created = booked(api, slot["id"])
    api.ok("DELETE", f"/resources/{resource['id']}")
    assert error_of(api.call("GET", f"/bookings/{created['id']}")) == (404, "E048")
    assert error_of(api.call("GET", f"/slots/{slot['id']}")) == (404, "E025")
    assert listed(api) == []


def test_deleting_a_resource_removes_bookings_moved_into_it(api: Api) -> None:
    """A booking that moved in from another resource goes with the resource it moved to."""
    first, second = api.resource(), api.resource(name="Room 2")
    source, target = api.slot(first["id"]), api.slot(second["id"])
    created = booked(api, source["id"])
    reschedule(api, created["id"], target["id"])
    api.ok("DELETE", f"/resources/{second['id']}")
    assert error_of(api.call("GET", f"/bookings/{created['id']}")) == (404, "E048")
    assert listed(api) == []
    assert counts(api, f"/slots/{source['id']}") == (0, 0, 0)


# --- Idempotency-Key on other POSTs ---


def test_resource_create_with_the_same_key_makes_one_resource(api: Api) -> None:
    """POST /resources twice with one Idempotency-Key creates one resource and replays it."""
    headers = {"idempotency-key": "new-room"}
    first = api.call("POST", "/resources", {"name": "Room 9"}, headers=headers)
    second = api.call("POST", "/resources", {"name": "Room 9"}, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert [resource["id"] for resource in api.ok("GET", "/resources")] == [
        first.json()["data"]["id"]
    ]


def test_resource_create_with_the_same_key_and_another_body_is_e101(api: Api) -> None:
    """Reusing an Idempotency-Key for another resource is 422 E101 and creates nothing."""
    headers = {"idempotency-key": "new-room"}
    api.call("POST", "/resources", {"name": "Room 9"}, headers=headers)
    other = api.call("POST", "/resources", {"name": "Room 10"}, headers=headers)
    assert error_of(other) == (422, "E101")
    assert len(api.ok("GET", "/resources")) == 1


def test_reschedule_with_the_same_key_is_replayed(api: Api) -> None:
    """A reschedule repeated with its Idempotency-Key answers the same and moves nothing more."""
    resource = api.resource()
    source, target = api.slot(resource["id"]), api.slot(resource["id"], hours_ahead=48)
    created = booked(api, source["id"])
    headers = {"idempotency-key": "move-1"}
    path = f"/bookings/{created['id']}/reschedule"
    first = api.call("POST", path, {"target_slot_id": target["id"]}, headers=headers)
    reschedule(api, created["id"], source["id"])
    replay = api.call("POST", path, {"target_slot_id": target["id"]}, headers=headers)
    assert replay.json() == first.json()
    assert api.ok("GET", f"/bookings/{created['id']}")["slot_id"] == source["id"]


def record_exists(api: Api, booking_id: str, owner_id: str) -> bool:
    """Whether Redis still holds a booking record in the home tag of `owner_id`."""
    found: int = run(api, redis_of(api).exists, keyspace.booking(booking_id, owner_id))
    return found == 1


def test_deleting_a_resource_leaves_no_record_of_a_booking_moved_into_it(api: Api) -> None:
    """Deleting a resource deletes the record of a booking that moved into it from elsewhere."""
    first, second = api.resource(), api.resource(name="Room 2")
    created = booked(api, api.slot(first["id"])["id"])
    reschedule(api, created["id"], api.slot(second["id"])["id"])
    api.ok("DELETE", f"/resources/{second['id']}")
    assert not record_exists(api, created["id"], second["id"])


def test_deleting_a_slot_leaves_no_record_of_a_cancelled_booking_moved_into_it(api: Api) -> None:
    """Deleting a slot deletes the record of a cancelled booking that moved into it."""
    first, second = api.resource(), api.resource(name="Room 2")
    target = api.slot(second["id"])
    created = booked(api, api.slot(first["id"])["id"])
    reschedule(api, created["id"], target["id"])
    action(api, created["id"], "cancel")
    api.ok("DELETE", f"/slots/{target['id']}")
    assert not record_exists(api, created["id"], target["id"])


def test_reschedule_of_a_cancelled_booking_leaves_the_target_lock(
    api: Api, target_resource: Callable[..., dict[str, Any]]
) -> None:
    """A cancelled booking takes no place, so moving it with the lock_key does not end the lock."""
    source_resource = api.resource()
    created = booked(api, api.slot(source_resource["id"])["id"])
    target = api.slot(target_resource(source_resource)["id"], hours_ahead=48)
    action(api, created["id"], "cancel")
    api.lock(target["id"], "holder-key")
    response = reschedule(api, created["id"], target["id"], lock_key="holder-key")
    assert response.json()["data"]["slot_id"] == target["id"]
    assert api.ok("GET", f"/slots/{target['id']}")["locked_until"] is not None


def test_a_retry_whose_answer_was_lost_finds_the_first_booking(api: Api) -> None:
    """The receipt written with a booking answers a second run of the same key with it."""
    slot = api.slot(api.resource()["id"], capacity=5)
    bookings = api.app.services.bookings
    assert api.client.portal is not None
    first = api.client.portal.call(bookings.create, "test", slot["id"], "", "{}", "key-hash-1")
    again = api.client.portal.call(bookings.create, "test", slot["id"], "", "{}", "key-hash-1")
    assert again.id == first.id
    assert api.ok("GET", f"/slots/{slot['id']}")["num_bookings"] == 1
