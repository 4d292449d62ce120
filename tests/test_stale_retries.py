"""A read-then-script loop whose script keeps answering STALE: 503 E103, in every store."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from service.scripts import Scripts
from service.store.refusals import STALE_RETRIES
from tests.api import Api, error_of


class AlwaysStale:
    """A script stand-in that answers STALE every time, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.writes = True

    async def __call__(self, keys: list[Any], args: list[Any]) -> list[Any]:
        self.calls += 1
        return ["STALE"]


def booking_id(api: Api, slot_id: str) -> str:
    """A booking on the slot, made with the public key."""
    response = api.call("POST", "/bookings", {"slot_id": slot_id}, key="public")
    assert response.status_code in (200, 201), response.text
    return str(response.json()["data"]["id"])


Request = Callable[[Api, dict[str, Any], dict[str, Any]], tuple[str, str, Any]]

CASES: dict[str, tuple[str, str, Request]] = {
    # name: (store attribute, script, the request that runs the loop)
    "delete slot": (
        "slots",
        "delete_slot",
        lambda api, r, s: ("DELETE", f"/slots/{s['id']}", None),
    ),
    "delete resource": (
        "resources",
        "delete_resource",
        lambda api, r, s: ("DELETE", f"/resources/{r['id']}", None),
    ),
    "create slots": (
        "slots",
        "create_slots",
        lambda api, r, s: ("POST", "/slots", {**_later_slot(r["id"])}),
    ),
    "reschedule booking": (
        "bookings",
        "reschedule_booking",
        lambda api, r, s: (
            "POST",
            f"/bookings/{booking_id(api, s['id'])}/reschedule",
            {"target_slot_id": api.slot(r["id"], hours_ahead=48)["id"]},
        ),
    ),
    "cancel booking": (
        "bookings",
        "set_booking_status",
        lambda api, r, s: ("POST", f"/bookings/{booking_id(api, s['id'])}/cancel", None),
    ),
}


def _later_slot(resource_id: str) -> dict[str, Any]:
    return {
        "resource_id": resource_id,
        "start_date": "2099-01-01T10:00:00Z",
        "end_date": "2099-01-01T11:00:00Z",
        "capacity": 1,
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_running_out_of_stale_retries_is_503_with_retry_after(api: Api, case: str) -> None:
    """Every STALE answer, STALE_RETRIES times: 503 E103 with Retry-After, never a 500."""
    store_name, script_name, request = CASES[case]
    resource = api.resource()
    slot = api.slot(resource["id"])
    method, path, body = request(api, resource, slot)
    store = getattr(api.app.services, store_name)
    stale = AlwaysStale()
    scripts: Scripts = store._scripts
    store._scripts = dataclasses.replace(scripts, **{script_name: stale})

    response = api.call(method, path, body)

    assert error_of(response) == (503, "E103")
    assert int(response.headers["retry-after"]) >= 1
    assert stale.calls == STALE_RETRIES
    store._scripts = scripts
    assert api.call("GET", f"/slots/{slot['id']}").status_code == 200  # nothing was applied
