"""Stream entries as the event log reads them, in today's layout and the one before it."""

from __future__ import annotations

import json

from service.event_log import StoredEvent

LOCKED_AT_MS = 1_796_000_000_000  # the entry's id: the instant the view is rendered at
SLOT_FIELDS = {  # a slot hash as HGETALL gives it: every value text
    "id": "3f1c2a9e-1111-4222-8333-444455556666",
    "environment": "live",
    "resource_id": "8b0e7d2c-5555-4666-8777-888899990000",
    "start_ms": "1796003600000",
    "end_ms": "1796007200000",
    "capacity": "3",
    "status": "active",
    "lockable": "1",
    "metadata": '{"room": "B"}',
    "created_ms": "1795000000000",
    "updated_ms": "1795000000000",
    "num_bookings": "1",
    "num_active_bookings": "1",
    "num_cancelled_bookings": "0",
    "lock_seq": "7",
}
SLOT_JSON = json.dumps(SLOT_FIELDS)
LOCKED_UNTIL_MS = LOCKED_AT_MS + 600_000


def slot_in(message: bytes) -> dict[str, object]:
    """The slot an SSE message carries, after checking its id and event lines."""
    lines = message.decode().split("\n")
    assert lines[:2] == [f"id: {LOCKED_AT_MS}-0", "event: slot.locked"]
    data: dict[str, dict[str, object]] = json.loads(lines[2].removeprefix("data: "))
    return data["slot"]


def test_a_slot_event_is_rendered_from_its_fields() -> None:
    """A partial hold's slot.locked, as lib/events.lua stores it, shows the slot in the
    resource's timezone with its held and free places, and no environment or lock_seq."""
    fields = {
        "type": "slot.locked",
        "data": SLOT_JSON,
        "locked_until": "0",
        "resource_status": "published",
        "booking_disabled_before": "0",
        "timezone": "Europe/Paris",
        "held": "1",
    }

    slot = slot_in(StoredEvent.of(f"{LOCKED_AT_MS}-0", fields).message())

    assert slot["id"] == SLOT_FIELDS["id"]
    assert slot["start_date"] == "2026-11-30T02:53:20+01:00"
    assert (slot["num_held_places"], slot["num_free_places"]) == (1, 1)
    assert (slot["available"], slot["locked_until"]) == (True, None)
    assert slot["metadata"] == {"room": "B"}
    assert not {"environment", "lock_seq"} & slot.keys()


def test_an_entry_of_the_earlier_layout_renders_the_same() -> None:
    """Entries written before the view's parts were fields of their own (the whole view as
    one JSON array in data) still render, so a stream replayed across an upgrade loses
    nothing: here a whole-slot lock, shown locked until its end."""
    view = [SLOT_JSON, LOCKED_UNTIL_MS, "published", "0", "Europe/Paris", 0]
    earlier = {"type": "slot.locked", "data": json.dumps(view)}
    today = {
        "type": "slot.locked",
        "data": SLOT_JSON,
        "locked_until": str(LOCKED_UNTIL_MS),
        "resource_status": "published",
        "booking_disabled_before": "0",
        "timezone": "Europe/Paris",
        "held": "0",
    }

    rendered = StoredEvent.of(f"{LOCKED_AT_MS}-0", earlier).message()

    assert rendered == StoredEvent.of(f"{LOCKED_AT_MS}-0", today).message()
    slot = slot_in(rendered)
    assert slot["locked_until"] == "2026-11-30T01:03:20.000Z"
    assert (slot["available"], slot["num_free_places"]) == (False, 0)
