"""A read-then-script loop whose script keeps answering STALE: 503 E103, in every store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from service.errors import StoreUnavailable
from service.store.calls.common import STALE, Stale
from service.store.refusals import STALE_RETRIES, until_fresh
from tests.api import Api, error_of
from tests.script_faults import ScriptFaults


def booking_id(api: Api, slot_id: str) -> str:
    """A booking on the slot, made with the public key."""
    response = api.call("POST", "/bookings", {"slot_id": slot_id}, key="public")
    assert response.status_code in (200, 201), response.text
    return str(response.json()["data"]["id"])


Request = Callable[[Api, dict[str, Any], dict[str, Any]], tuple[str, str, Any]]

CASES: dict[str, tuple[str, Request]] = {
    # name: (the script, the request that runs the loop)
    "delete slot": (
        "delete_slot",
        lambda api, r, s: ("DELETE", f"/slots/{s['id']}", None),
    ),
    "delete resource": (
        "delete_resource",
        lambda api, r, s: ("DELETE", f"/resources/{r['id']}", None),
    ),
    "create slots": (
        "create_slots",
        lambda api, r, s: ("POST", "/slots", {**_later_slot(r["id"])}),
    ),
    "update slot": (
        "update_slot",
        lambda api, r, s: ("PATCH", f"/slots/{s['id']}", {"capacity": 2}),
    ),
    "reschedule booking": (
        "reschedule_booking",
        lambda api, r, s: (
            "POST",
            f"/bookings/{booking_id(api, s['id'])}/reschedule",
            {"target_slot_id": api.slot(r["id"], hours_ahead=48)["id"]},
        ),
    ),
    "cancel booking": (
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
def test_running_out_of_stale_retries_is_503_with_retry_after(
    api_with_faults: tuple[Api, ScriptFaults], case: str
) -> None:
    """Every STALE answer, STALE_RETRIES times: 503 E103 with Retry-After, never a 500."""
    api, faults = api_with_faults
    script_name, request = CASES[case]
    resource = api.resource()
    slot = api.slot(resource["id"])
    method, path, body = request(api, resource, slot)
    sha = getattr(api.app.services.scripts, script_name).sha
    faults.answer(sha, ["STALE"])

    response = api.call(method, path, body)

    assert error_of(response) == (503, "E103")
    assert int(response.headers["retry-after"]) >= 1
    assert faults.calls[sha] == STALE_RETRIES
    faults.clear()
    assert api.call("GET", f"/slots/{slot['id']}").status_code == 200  # nothing was applied


def test_a_loop_that_settles_answers_without_503_and_pauses_only_between_tries() -> None:
    """A request whose data stopped changing on the third read succeeds; the pause spaces
    the reads, and none is spent after the last STALE of a loop that runs out."""
    answers: list[str | Stale] = [STALE, STALE, "settled"]

    async def attempt() -> str | Stale:
        return answers.pop(0)

    started = time.monotonic()
    assert asyncio.run(until_fresh("the test", attempt, pause_s=0.01)) == "settled"
    assert time.monotonic() - started >= 0.02

    async def never() -> str | Stale:
        return STALE

    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="the test kept changing"):
        asyncio.run(until_fresh("the test", never, pause_s=0.01))
    assert time.monotonic() - started < 0.01 * STALE_RETRIES
