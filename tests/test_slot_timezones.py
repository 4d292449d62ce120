"""A slot's dates in its resource's timezone: shown there, kept as instants."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from service.clock import format_local_instant, parse_instant_ms
from tests.api import Api

UTC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def instant(text: str) -> datetime:
    """A timestamp the API wrote, as an aware datetime (for comparing instants)."""
    return datetime.fromisoformat(text)


def slot_at(api: Api, resource_id: str, start: str, end: str) -> dict[str, Any]:
    """A new slot of `resource_id` from `start` to `end` (ISO 8601, any offset)."""
    body = {"resource_id": resource_id, "start_date": start, "end_date": end, "capacity": 1}
    return dict(api.ok("POST", "/slots", body))


def test_summer_slot_in_warsaw_shows_plus_two(api: Api) -> None:
    """The seed page's example: 20:30 UTC in a Warsaw summer is 22:30:00+02:00."""
    resource_id = api.resource(timezone="Europe/Warsaw")["id"]
    slot = slot_at(api, resource_id, "2031-07-21T20:30:00Z", "2031-07-21T21:30:00Z")
    assert (slot["start_date"], slot["end_date"]) == (
        "2031-07-21T22:30:00+02:00",
        "2031-07-21T23:30:00+02:00",
    )


def test_winter_slot_in_warsaw_shows_plus_one(api: Api) -> None:
    """The same zone in winter shows its winter offset, +01:00."""
    resource_id = api.resource(timezone="Europe/Warsaw")["id"]
    slot = slot_at(api, resource_id, "2031-01-21T20:30:00Z", "2031-01-21T21:30:00Z")
    assert slot["start_date"] == "2031-01-21T21:30:00+01:00"


def test_slot_across_spring_forward_has_two_offsets(api: Api) -> None:
    """A slot over Warsaw's spring DST change starts at +01:00 and ends at +02:00, 1 h apart."""
    resource_id = api.resource(timezone="Europe/Warsaw")["id"]
    # On 2031-03-30 local clocks jump from 02:00 to 03:00 (01:00 UTC).
    slot = slot_at(api, resource_id, "2031-03-30T00:30:00Z", "2031-03-30T01:30:00Z")
    assert (slot["start_date"], slot["end_date"]) == (
        "2031-03-30T01:30:00+01:00",
        "2031-03-30T03:30:00+02:00",
    )
    assert (instant(slot["end_date"]) - instant(slot["start_date"])).total_seconds() == 3600


def test_the_repeated_hour_of_fall_back_is_told_apart_by_its_offset(api: Api) -> None:
    """Two slots at the same Warsaw wall time on the autumn change differ in offset and instant."""
    resource_id = api.resource(timezone="Europe/Warsaw")["id"]
    # On 2031-10-26 local clocks go back from 03:00 to 02:00 (01:00 UTC): 02:30 happens twice.
    first = slot_at(api, resource_id, "2031-10-26T00:30:00Z", "2031-10-26T00:45:00Z")
    second = slot_at(api, resource_id, "2031-10-26T01:30:00Z", "2031-10-26T01:45:00Z")
    assert first["start_date"] == "2031-10-26T02:30:00+02:00"
    assert second["start_date"] == "2031-10-26T02:30:00+01:00"
    listed = api.ok("GET", "/slots", params={"resource_id": resource_id})
    assert [slot["id"] for slot in listed] == [first["id"], second["id"]]


def test_changing_the_timezone_changes_how_not_when(api: Api) -> None:
    """After a resource moves to another zone, every read shows its slots there, same instants."""
    resource = api.resource(timezone="Europe/Warsaw")
    slot = slot_at(api, resource["id"], "2031-07-21T20:30:00Z", "2031-07-21T21:30:00Z")
    api.ok("PATCH", f"/resources/{resource['id']}", {"timezone": "America/New_York"})
    shown = [
        api.ok("GET", f"/slots/{slot['id']}"),
        api.ok("GET", "/slots", params={"resource_id": resource["id"]})[0],
        api.lock(slot["id"], "k").json()["data"],
        api.unlock(slot["id"], "k").json()["data"],
    ]
    for seen in shown:
        assert (seen["start_date"], seen["end_date"]) == (
            "2031-07-21T16:30:00-04:00",
            "2031-07-21T17:30:00-04:00",
        )
        assert instant(seen["start_date"]) == instant(slot["start_date"])


# Every way a slot comes back, each given a slot of a Tokyo resource (always +09:00).
SLOT_ANSWERS: dict[str, Callable[[Api, dict[str, Any]], Any]] = {
    "get": lambda api, slot: api.ok("GET", f"/slots/{slot['id']}"),
    "list": lambda api, slot: api.ok("GET", "/slots")[0],
    "patch": lambda api, slot: api.ok("PATCH", f"/slots/{slot['id']}", {"capacity": 2}),
    "disable": lambda api, slot: api.ok("POST", f"/slots/{slot['id']}/disable"),
    "enable": lambda api, slot: api.ok("POST", f"/slots/{slot['id']}/enable"),
    "lock": lambda api, slot: api.lock(slot["id"], "k").json()["data"],
    "unlock": lambda api, slot: api.unlock(slot["id"], "k").json()["data"],
    "bulk create": lambda api, slot: api.ok(
        "POST",
        "/slots",
        {
            "resource_id": slot["resource_id"],
            "slots": [
                {"start_date": "2031-07-22T00:00Z", "end_date": "2031-07-22T01:00Z", "capacity": 1}
            ],
        },
    )[0],
}


@pytest.mark.parametrize("answer", SLOT_ANSWERS.values(), ids=SLOT_ANSWERS.keys())
def test_every_slot_answer_shows_the_resource_zone(
    api: Api, answer: Callable[[Api, dict[str, Any]], Any]
) -> None:
    """Each endpoint that returns a slot shows its dates in the resource's zone."""
    resource_id = api.resource(timezone="Asia/Tokyo")["id"]
    slot = slot_at(api, resource_id, "2031-07-21T10:00:00Z", "2031-07-21T11:00:00Z")
    assert slot["start_date"] == "2031-07-21T19:00:00+09:00"
    seen = answer(api, slot)
    assert seen["start_date"].endswith("+09:00")
    assert seen["end_date"].endswith("+09:00")


def test_other_instants_stay_utc_with_milliseconds(api: Api) -> None:
    """created_at, updated_at and locked_until stay UTC with ms and Z in a zoned resource."""
    resource_id = api.resource(timezone="Asia/Tokyo")["id"]
    slot = api.slot(resource_id)
    locked = api.lock(slot["id"], "k").json()["data"]
    for name in ("created_at", "updated_at", "locked_until"):
        assert UTC_MS.match(locked[name]), (name, locked[name])


def test_milliseconds_in_input_are_dropped(api: Api) -> None:
    """A slot is kept to the second: .999 in input is gone from the stored instant."""
    resource_id = api.resource(timezone="Europe/Warsaw")["id"]
    slot = slot_at(api, resource_id, "2031-07-21T20:30:00.999Z", "2031-07-21T21:30:00.001Z")
    assert (slot["start_date"], slot["end_date"]) == (
        "2031-07-21T22:30:00+02:00",
        "2031-07-21T23:30:00+02:00",
    )
    path = f"/slots/{slot['id']}"
    patched = api.ok("PATCH", path, {"end_date": "2031-07-21T23:45:10.750+02:00"})
    assert patched["end_date"] == "2031-07-21T23:45:10+02:00"
    # The filters see the truncated instant: a filter a few ms after the old start misses it.
    later = {"resource_id": resource_id, "start_date": "2031-07-21T20:30:00.500Z"}
    assert api.ok("GET", "/slots", params=later) == []


@pytest.mark.parametrize(
    "moment",
    [
        "2031-07-21T22:30:00+02:00",
        "2031-07-22T02:00:00+05:30",
        "2031-07-21T16:30:00-04:00",
        "2031-07-21T20:30:00Z",
        "2031-07-21T22:30:00 02:00",  # a `+` sent unencoded in a query string
    ],
)
def test_filters_accept_any_offset(api: Api, moment: str) -> None:
    """`start_date` and `end_date` filters mean the same instant whatever their offset."""
    resource_id = api.resource(timezone="Europe/Warsaw")["id"]
    earlier = slot_at(api, resource_id, "2031-07-21T20:00:00Z", "2031-07-21T20:30:00Z")
    later = slot_at(api, resource_id, "2031-07-21T20:30:00Z", "2031-07-21T21:00:00Z")
    for name, kept in (("start_date", later), ("end_date", earlier)):
        query = {"resource_id": resource_id, name: moment}
        assert [slot["id"] for slot in api.ok("GET", "/slots", params=query)] == [kept["id"]]


@pytest.mark.parametrize(
    ("utc", "zone", "shown"),
    [
        ("9999-12-31T23:00:00Z", "Asia/Tokyo", "9999-12-31T23:00:00+00:00"),  # past year 9999
        ("0001-01-01T00:00:00Z", "America/New_York", "0001-01-01T00:00:00+00:00"),  # before 1
        ("1900-01-01T00:00:00Z", "Europe/Amsterdam", "1900-01-01T00:00:00+00:00"),  # +00:19:32
        ("2031-01-01T00:00:00Z", "Asia/Kolkata", "2031-01-01T05:30:00+05:30"),
    ],
)
def test_dates_the_zone_cannot_write_are_shown_in_utc(utc: str, zone: str, shown: str) -> None:
    """Where the zone's local time is out of range or its offset has seconds, UTC says it."""
    assert format_local_instant(parse_instant_ms(utc), zone) == shown
    assert instant(shown) == datetime.fromisoformat(utc).astimezone(UTC)
