"""Bookings: create, the lock they honour, counters, cancel/enable/delete, lists."""

from __future__ import annotations

from typing import Any

from tests.api import Api, error_of


def book(api: Api, slot_id: str, lock_key: str | None = None, **kwargs: Any) -> Any:
    """POST /bookings with the public key."""
    body: dict[str, Any] = {"slot_id": slot_id}
    if lock_key is not None:
        body["lock_key"] = lock_key
    return api.call("POST", "/bookings", body, key="public", **kwargs)


def test_booking_takes_a_place_and_moves_the_counters(api: Api) -> None:
    """A booking is created active and the slot and resource count it."""
    resource = api.resource()
    slot = api.slot(resource["id"], capacity=2)
    response = book(api, slot["id"])
    assert response.status_code == 201, response.text
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


def test_lock_holder_books_and_the_lock_is_gone(api: Api) -> None:
    """Only the lock_key holder may book a locked slot; its booking releases the lock."""
    slot = api.slot(api.resource()["id"], capacity=3)
    api.lock(slot["id"], "holder-key")
    assert error_of(book(api, slot["id"])) == (422, "E050")
    assert error_of(book(api, slot["id"], "another-key")) == (422, "E050")
    assert book(api, slot["id"], "holder-key").status_code == 201
    assert api.ok("GET", f"/slots/{slot['id']}")["locked_until"] is None


def test_idempotent_retry_replays_the_first_booking(api: Api) -> None:
    """The same Idempotency-Key and body returns the first response and books once."""
    slot = api.slot(api.resource()["id"], capacity=5)
    headers = {"idempotency-key": "checkout-42"}
    first = book(api, slot["id"], headers=headers)
    second = book(api, slot["id"], headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert api.ok("GET", f"/slots/{slot['id']}")["num_bookings"] == 1


def test_idempotency_key_with_another_body_is_refused(api: Api) -> None:
    """Reusing a key for a different request is 422 E101 and changes nothing."""
    resource = api.resource()
    first_slot = api.slot(resource["id"], capacity=5)
    second_slot = api.slot(resource["id"], hours_ahead=48, capacity=5)
    headers = {"idempotency-key": "checkout-43"}
    assert book(api, first_slot["id"], headers=headers).status_code == 201
    assert error_of(book(api, second_slot["id"], headers=headers)) == (422, "E101")
    assert api.ok("GET", f"/slots/{second_slot['id']}")["num_bookings"] == 0
