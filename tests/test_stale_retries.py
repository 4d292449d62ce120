"""A read-then-script loop whose script keeps answering STALE: 503 E103, in every store."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest

from service.errors import StoreUnavailable
from service.store.batching import BatchedScript
from service.store.calls.common import STALE, ScriptCalls, Stale
from service.store.refusals import STALE_RETRIES, until_fresh
from tests.api import Api, error_of


class AlwaysStale(BatchedScript):
    """A stand-in for a registered script that answers STALE every time, counting its calls."""

    def __init__(self, real: BatchedScript) -> None:
        super().__init__(real.script, real.sha, real.batcher, writes=real.writes)
        self.calls = 0

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
    "update slot": (
        "slots",
        "update_slot",
        lambda api, r, s: ("PATCH", f"/slots/{s['id']}", {"capacity": 2}),
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


def calls_of(store: object, script_name: str) -> ScriptCalls:
    """The store's typed calls that run `script_name`."""
    found = [
        value
        for value in vars(store).values()
        if isinstance(value, ScriptCalls) and hasattr(value, script_name)
    ]
    assert len(found) == 1, (store, script_name)
    return found[0]


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
    calls = calls_of(store, script_name)
    scripts = calls.scripts
    stale = AlwaysStale(getattr(scripts, script_name))
    calls.scripts = dataclasses.replace(scripts, **{script_name: stale})

    response = api.call(method, path, body)

    assert error_of(response) == (503, "E103")
    assert int(response.headers["retry-after"]) >= 1
    assert stale.calls == STALE_RETRIES
    calls.scripts = scripts
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
