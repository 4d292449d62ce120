"""Slots: create (one or many), list, get, update, enable, disable and delete."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tests.api import Api, error_of, from_now, iso, slot_request_body

UNKNOWN_ID = "0badc0de-0000-4000-8000-000000000000"
UTC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UTC_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
START = from_now(days=2).replace(microsecond=0)


def spec(start: datetime, minutes: float = 30, **fields: Any) -> dict[str, Any]:
    """One slot of a bulk create: `minutes` long from `start`, capacity 1 unless told."""
    end = start + timedelta(minutes=minutes)
    return {"start_date": iso(start), "end_date": iso(end), "capacity": 1, **fields}


def at(minutes: float) -> datetime:
    """START plus `minutes`."""
    return START + timedelta(minutes=minutes)


def out(moment: datetime) -> str:
    """How the API writes a slot date `moment` of a UTC resource: to the second, +00:00."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def create(api: Api, resource_id: str, **fields: Any) -> Any:
    """POST /slots for one slot at START unless told otherwise; the raw response."""
    return api.call("POST", "/slots", {"resource_id": resource_id, **spec(START), **fields})


def listed_ids(api: Api, **params: Any) -> list[str]:
    """Ids of GET /slots with `params`."""
    return [slot["id"] for slot in api.ok("GET", "/slots", params=params)]


def test_create_returns_the_slot(api: Api) -> None:
    """A new slot is 200 with its dates, capacity, active, lockable and available."""
    resource_id = api.resource()["id"]
    response = create(api, resource_id, capacity=3, metadata={"room": "A"})
    assert response.status_code == 200
    slot = response.json()["data"]
    assert slot["_object"] == "slot"
    assert slot["resource_id"] == resource_id
    assert (slot["capacity"], slot["status"], slot["lockable"]) == (3, "active", True)
    assert (slot["locked_until"], slot["available"]) == (None, True)
    assert slot["num_bookings"] == slot["num_active_bookings"] == 0
    assert slot["metadata"] == {"room": "A"}


def test_get_returns_the_slot(api: Api) -> None:
    """GET /slots/:id answers the slot as created, with the public key too."""
    slot = api.slot(api.resource()["id"])
    assert api.ok("GET", f"/slots/{slot['id']}", key="public") == slot


def test_create_counts_on_the_resource(api: Api) -> None:
    """The resource's num_slots and num_available_slots count its new slots."""
    resource_id = api.resource()["id"]
    api.slot(resource_id, hours_ahead=1)
    api.slot(resource_id, hours_ahead=2)
    resource = api.ok("GET", f"/resources/{resource_id}")
    assert (resource["num_slots"], resource["num_available_slots"]) == (2, 2)


def test_output_dates_of_a_utc_resource(api: Api) -> None:
    """A UTC resource's slot dates are to the second with +00:00; other instants have ms and Z."""
    slot = api.slot(api.resource()["id"])
    for name in ("start_date", "end_date"):
        assert UTC_SECONDS.match(slot[name]), slot[name]
    for name in ("created_at", "updated_at"):
        assert UTC_MS.match(slot[name]), slot[name]
    assert api.lock(slot["id"], "k").json()["data"]["locked_until"].endswith("Z")


def test_input_with_an_offset_is_stored_in_utc(api: Api) -> None:
    """A start given with +02:00 comes back as the same instant in UTC, without its ms."""
    resource_id = api.resource()["id"]
    body = {
        "resource_id": resource_id,
        "start_date": "2031-03-04T10:15:30.250+02:00",
        "end_date": "2031-03-04T06:00:00-05:00",
        "capacity": 1,
    }
    slot = api.ok("POST", "/slots", body)
    assert (slot["start_date"], slot["end_date"]) == (
        "2031-03-04T08:15:30+00:00",
        "2031-03-04T11:00:00+00:00",
    )


def test_input_without_an_offset_is_utc(api: Api) -> None:
    """A timestamp without an offset is read as UTC."""
    resource_id = api.resource()["id"]
    dates = {"start_date": "2031-03-04T10:00:00", "end_date": "2031-03-04T11:00:00"}
    slot = api.ok("POST", "/slots", {"resource_id": resource_id, "capacity": 1, **dates})
    assert slot["start_date"] == "2031-03-04T10:00:00+00:00"


def test_create_refuses_an_unparsable_date(api: Api) -> None:
    """A start_date that is not ISO 8601 is 400 E013 naming the field."""
    response = create(api, api.resource()["id"], start_date="next tuesday")
    assert error_of(response) == (400, "E013")
    assert "start_date" in response.json()["error"]["message"]


@pytest.mark.parametrize("minutes", [0, -30])
def test_start_not_before_end_is_e023(api: Api, minutes: float) -> None:
    """A slot that ends at or before its start is 422 E023."""
    response = create(api, api.resource()["id"], **spec(START, minutes=minutes))
    assert error_of(response) == (422, "E023")


@pytest.mark.parametrize("capacity", [0, -1, 1.5, "2", True, None])
def test_capacity_not_a_positive_integer_is_e047(api: Api, capacity: object) -> None:
    """Capacity 0, -1, 1.5, "2", true or null is 400 E047 and creates nothing."""
    resource_id = api.resource()["id"]
    assert error_of(create(api, resource_id, capacity=capacity)) == (400, "E047")
    assert listed_ids(api) == []


def test_capacity_missing_is_e013(api: Api) -> None:
    """A slot without capacity is 400 E013 naming `capacity`."""
    body = {"resource_id": api.resource()["id"], **spec(START)}
    del body["capacity"]
    response = api.call("POST", "/slots", body)
    assert error_of(response) == (400, "E013")
    assert "capacity" in response.json()["error"]["message"]


def test_capacity_2_point_0_counts_as_2(api: Api) -> None:
    """JSON 2.0 is the integer 2."""
    slot = create(api, api.resource()["id"], capacity=2.0).json()["data"]
    assert slot["capacity"] == 2


@pytest.mark.parametrize(
    ("field", "value"), [("colour", "red"), ("lockable", "yes"), ("metadata", "x")]
)
def test_create_refuses_a_bad_field_naming_it(api: Api, field: str, value: object) -> None:
    """An unknown or mistyped field is 400 E013 naming the field."""
    response = create(api, api.resource()["id"], **{field: value})
    assert error_of(response) == (400, "E013")
    assert field in response.json()["error"]["message"]


@pytest.mark.parametrize("resource_id", [UNKNOWN_ID, "not-a-uuid"])
def test_create_on_an_unknown_resource_is_e052(api: Api, resource_id: str) -> None:
    """A slot for a resource that does not exist is 404 E052."""
    assert error_of(create(api, resource_id)) == (404, "E052")


def test_create_on_another_environments_resource_is_e052(api: Api, other_api: Api) -> None:
    """A slot for another environment's resource is 404 E052, and nothing is created."""
    resource_id = api.resource()["id"]
    assert error_of(create(other_api, resource_id)) == (404, "E052")
    assert listed_ids(api) == []


def test_overlap_with_an_existing_slot_is_e024(api: Api) -> None:
    """A slot that overlaps another of the same resource is 422 E024."""
    resource_id = api.resource()["id"]
    create(api, resource_id, **spec(at(0), minutes=60))
    assert error_of(create(api, resource_id, **spec(at(30), minutes=60))) == (422, "E024")
    assert error_of(create(api, resource_id, **spec(at(-30), minutes=60))) == (422, "E024")
    assert error_of(create(api, resource_id, **spec(at(10), minutes=10))) == (422, "E024")
    assert error_of(create(api, resource_id, **spec(at(-10), minutes=90))) == (422, "E024")


def test_adjacent_slots_are_allowed(api: Api) -> None:
    """A slot may start exactly where another ends, and end where another starts."""
    resource_id = api.resource()["id"]
    create(api, resource_id, **spec(at(0), minutes=30))
    assert create(api, resource_id, **spec(at(30), minutes=30)).status_code == 200
    assert create(api, resource_id, **spec(at(-30), minutes=30)).status_code == 200


def test_slots_of_another_resource_do_not_overlap(api: Api) -> None:
    """Two resources may each have a slot at the same time."""
    first, second = api.resource()["id"], api.resource()["id"]
    create(api, first)
    assert create(api, second).status_code == 200


def test_bulk_creates_every_slot(api: Api) -> None:
    """`slots: [...]` creates them all and answers a list of slots."""
    resource_id = api.resource()["id"]
    body = {"resource_id": resource_id, "slots": [spec(at(0)), spec(at(30), capacity=4)]}
    response = api.call("POST", "/slots", body)
    assert response.status_code == 200
    created = response.json()["data"]
    assert [slot["capacity"] for slot in created] == [1, 4]
    assert listed_ids(api, resource_id=resource_id) == [slot["id"] for slot in created]


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (spec(at(60), capacity=0), (400, "E047")),
        (spec(at(60), minutes=-5), (422, "E023")),
        (spec(at(60), colour="red"), (400, "E013")),
    ],
)
def test_bulk_with_one_bad_slot_creates_none(
    api: Api, bad: dict[str, Any], expected: tuple[int, str]
) -> None:
    """One invalid slot in a bulk refuses the whole request with its error; none is created."""
    resource_id = api.resource()["id"]
    body = {"resource_id": resource_id, "slots": [spec(at(0)), bad, spec(at(120))]}
    assert error_of(api.call("POST", "/slots", body)) == expected
    assert listed_ids(api) == []
    assert api.ok("GET", f"/resources/{resource_id}")["num_slots"] == 0


def test_bulk_overlapping_an_existing_slot_creates_none(api: Api) -> None:
    """A bulk whose last slot overlaps an existing one is 422 E024 and adds nothing."""
    resource_id = api.resource()["id"]
    existing = create(api, resource_id, **spec(at(120))).json()["data"]
    body = {"resource_id": resource_id, "slots": [spec(at(0)), spec(at(60)), spec(at(130))]}
    assert error_of(api.call("POST", "/slots", body)) == (422, "E024")
    assert listed_ids(api) == [existing["id"]]


def test_bulk_slots_overlapping_each_other_is_e024(api: Api) -> None:
    """Two new slots of one bulk that overlap each other are 422 E024, none created."""
    resource_id = api.resource()["id"]
    body = {"resource_id": resource_id, "slots": [spec(at(0), 60), spec(at(90)), spec(at(30))]}
    assert error_of(api.call("POST", "/slots", body)) == (422, "E024")
    assert listed_ids(api) == []


def test_bulk_of_adjacent_slots_is_allowed(api: Api) -> None:
    """Back-to-back slots in one bulk do not count as overlapping."""
    resource_id = api.resource()["id"]
    body = {"resource_id": resource_id, "slots": [spec(at(30)), spec(at(0)), spec(at(60))]}
    assert len(api.ok("POST", "/slots", body)) == 3


def test_bulk_without_slots_is_e013(api: Api) -> None:
    """An empty `slots` list is 400 E013."""
    body = {"resource_id": api.resource()["id"], "slots": []}
    assert error_of(api.call("POST", "/slots", body)) == (400, "E013")


def test_list_is_ordered_by_start_date(api: Api) -> None:
    """GET /slots lists slots by start_date, whatever order they were made in."""
    resource_id = api.resource()["id"]
    ids = {m: create(api, resource_id, **spec(at(m))).json()["data"]["id"] for m in (60, 0, 30)}
    assert listed_ids(api) == [ids[0], ids[30], ids[60]]


def test_list_spans_resources_by_start_date(api: Api) -> None:
    """Without a filter, slots of every resource are interleaved by start_date."""
    first, second = api.resource()["id"], api.resource()["id"]
    late = create(api, first, **spec(at(60))).json()["data"]["id"]
    early = create(api, second, **spec(at(0))).json()["data"]["id"]
    assert listed_ids(api) == [early, late]


@pytest.mark.parametrize("name", ["resource_id", "resoure_id"])
def test_list_filters_by_resource(api: Api, name: str) -> None:
    """`resource_id`, and the JS SDK's misspelt `resoure_id`, keep one resource's slots."""
    wanted, other = api.resource()["id"], api.resource()["id"]
    slot = api.slot(wanted)
    api.slot(other)
    assert listed_ids(api, **{name: wanted}) == [slot["id"]]


def test_list_by_an_unknown_resource_is_empty(api: Api) -> None:
    """A resource_id filter that names nothing gives an empty list."""
    api.slot(api.resource()["id"])
    assert listed_ids(api, resource_id=UNKNOWN_ID) == []
    assert listed_ids(api, resource_id="not-a-uuid") == []


def test_list_filters_by_available(api: Api) -> None:
    """`available=true` keeps bookable slots, `available=false` the others."""
    resource_id = api.resource()["id"]
    free = api.slot(resource_id, hours_ahead=1)
    locked = api.slot(resource_id, hours_ahead=2)
    api.lock(locked["id"], "k")
    assert listed_ids(api, available="true") == [free["id"]]
    assert listed_ids(api, available="false") == [locked["id"]]


def test_list_refuses_a_non_boolean_available(api: Api) -> None:
    """`available` must be true or false (400 E013)."""
    assert error_of(api.call("GET", "/slots", params={"available": "yes"})) == (400, "E013")


def test_list_filters_by_start_date(api: Api) -> None:
    """`start_date` keeps slots starting at or after it."""
    resource_id = api.resource()["id"]
    ids = [create(api, resource_id, **spec(at(m))).json()["data"]["id"] for m in (0, 30, 60)]
    assert listed_ids(api, start_date=iso(at(30))) == ids[1:]
    assert listed_ids(api, start_date=iso(at(31))) == ids[2:]


def test_list_filters_by_end_date(api: Api) -> None:
    """`end_date` keeps slots ending at or before it."""
    resource_id = api.resource()["id"]
    ids = [create(api, resource_id, **spec(at(m))).json()["data"]["id"] for m in (0, 30, 60)]
    assert listed_ids(api, end_date=iso(at(60))) == ids[:2]
    assert listed_ids(api, end_date=iso(at(59))) == ids[:1]


def test_list_date_filters_take_offsets(api: Api) -> None:
    """A date filter with an offset means the same instant as in UTC."""
    resource_id = api.resource()["id"]
    ids = [create(api, resource_id, **spec(at(m))).json()["data"]["id"] for m in (0, 30)]
    shifted = at(30).astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert listed_ids(api, start_date=shifted.isoformat()) == ids[1:]


def test_list_refuses_an_unparsable_date_filter(api: Api) -> None:
    """A date filter that is not ISO 8601 is 400 E013 naming it."""
    response = api.call("GET", "/slots", params={"end_date": "soon"})
    assert error_of(response) == (400, "E013")
    assert "end_date" in response.json()["error"]["message"]


def test_list_pages_with_meta(api: Api) -> None:
    """`limit` and `page` cut the ordered list; meta says limit, page and total."""
    resource_id = api.resource()["id"]
    ids = [create(api, resource_id, **spec(at(m))).json()["data"]["id"] for m in (0, 30, 60)]
    body = api.call("GET", "/slots", params={"limit": 2, "page": 2}).json()
    assert [slot["id"] for slot in body["data"]] == ids[2:]
    assert body["meta"] == {"limit": 2, "page": 2, "total": 3}
    assert api.call("GET", "/slots").json()["meta"] == {"limit": 20, "page": 1, "total": 3}


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 51}, {"page": 0}])
def test_list_refuses_a_bad_limit_or_page(api: Api, params: dict[str, int]) -> None:
    """`limit` outside 1..50 or `page` below 1 is 400 E013."""
    assert error_of(api.call("GET", "/slots", params=params)) == (400, "E013")


def test_disable_makes_it_unavailable(api: Api) -> None:
    """A disabled slot has status `disabled` and is not available."""
    slot = api.slot(api.resource()["id"])
    disabled = api.ok("POST", f"/slots/{slot['id']}/disable")
    assert (disabled["status"], disabled["available"]) == ("disabled", False)
    assert api.ok("GET", f"/slots/{slot['id']}")["status"] == "disabled"


def test_enable_makes_it_available_again(api: Api) -> None:
    """Enabling a disabled slot makes it active and available."""
    slot = api.slot(api.resource()["id"])
    api.ok("POST", f"/slots/{slot['id']}/disable")
    enabled = api.ok("POST", f"/slots/{slot['id']}/enable")
    assert (enabled["status"], enabled["available"]) == ("active", True)


def test_slot_of_a_draft_resource_is_not_available(api: Api) -> None:
    """A slot whose resource is a draft is not available, until it is published."""
    resource_id = api.resource(published=False)["id"]
    slot = api.slot(resource_id)
    assert slot["available"] is False
    api.ok("POST", f"/resources/{resource_id}/publish")
    assert api.ok("GET", f"/slots/{slot['id']}")["available"] is True
    api.ok("POST", f"/resources/{resource_id}/convert-draft")
    assert api.ok("GET", f"/slots/{slot['id']}")["available"] is False


def test_slot_past_its_booking_window_is_not_available(api: Api) -> None:
    """A slot that starts within booking_disabled_before seconds is not available."""
    resource_id = api.resource(booking_disabled_before=7200)["id"]
    assert api.slot(resource_id, hours_ahead=1)["available"] is False
    assert api.slot(resource_id, hours_ahead=3)["available"] is True


def test_patch_changes_each_field(api: Api) -> None:
    """PATCH sets dates, capacity, lockable and metadata, and the slot keeps them."""
    slot = api.slot(api.resource()["id"], metadata={"a": 1})
    changes = {
        "start_date": "2032-01-01T10:00:00+00:00",
        "end_date": "2032-01-01T11:30:00+00:00",
        "capacity": 5,
        "lockable": False,
        "metadata": {"b": 2},
    }
    patched = api.ok("PATCH", f"/slots/{slot['id']}", changes)
    assert {name: patched[name] for name in changes} == changes
    assert api.ok("GET", f"/slots/{slot['id']}") == patched


def test_patch_keeps_fields_it_does_not_name(api: Api) -> None:
    """A PATCH of capacity alone leaves the dates, lockable and metadata alone."""
    slot = api.slot(api.resource()["id"], metadata={"a": 1})
    patched = api.ok("PATCH", f"/slots/{slot['id']}", {"capacity": 2})
    for name in ("start_date", "end_date", "lockable", "metadata", "created_at"):
        assert patched[name] == slot[name]


def test_patch_moving_start_past_end_is_e023(api: Api) -> None:
    """A PATCH that puts the start at or after the end is 422 E023 and changes nothing."""
    slot = api.slot(api.resource()["id"])
    response = api.call("PATCH", f"/slots/{slot['id']}", {"start_date": slot["end_date"]})
    assert error_of(response) == (422, "E023")
    assert api.ok("GET", f"/slots/{slot['id']}") == slot


def test_patch_into_another_slot_is_e024(api: Api) -> None:
    """Moving a slot onto another of its resource is 422 E024 and changes nothing."""
    resource_id = api.resource()["id"]
    create(api, resource_id, **spec(at(0), minutes=60))
    moved = create(api, resource_id, **spec(at(120))).json()["data"]
    response = api.call("PATCH", f"/slots/{moved['id']}", {"start_date": iso(at(59))})
    assert error_of(response) == (422, "E024")
    assert api.ok("GET", f"/slots/{moved['id']}") == moved


def test_patch_next_to_another_slot_is_allowed(api: Api) -> None:
    """Moving a slot to start exactly where another ends is fine."""
    resource_id = api.resource()["id"]
    create(api, resource_id, **spec(at(0), minutes=60))
    moved = create(api, resource_id, **spec(at(120))).json()["data"]
    patched = api.ok("PATCH", f"/slots/{moved['id']}", {"start_date": iso(at(60))})
    assert patched["start_date"] == out(at(60))


def test_patch_may_overlap_the_slot_itself(api: Api) -> None:
    """Stretching a slot over its own old range is no overlap."""
    slot = create(api, api.resource()["id"]).json()["data"]
    patched = api.ok("PATCH", f"/slots/{slot['id']}", {"end_date": iso(at(90))})
    assert patched["end_date"] == out(at(90))


@pytest.mark.parametrize("capacity", [0, -1, 1.5, "2", True])
def test_patch_capacity_not_a_positive_integer_is_e047(api: Api, capacity: object) -> None:
    """PATCH applies the same capacity rule as create (400 E047)."""
    slot = api.slot(api.resource()["id"])
    response = api.call("PATCH", f"/slots/{slot['id']}", {"capacity": capacity})
    assert error_of(response) == (400, "E047")


def test_patch_refuses_an_unknown_field(api: Api) -> None:
    """PATCH with an unknown field is 400 E013 naming it."""
    slot = api.slot(api.resource()["id"])
    response = api.call("PATCH", f"/slots/{slot['id']}", {"status": "disabled"})
    assert error_of(response) == (400, "E013")
    assert "status" in response.json()["error"]["message"]


def test_patch_metadata_over_the_limit_is_e042(api: Api) -> None:
    """Slot metadata has the same limits as resource metadata (422 E042)."""
    slot = api.slot(api.resource()["id"])
    response = api.call("PATCH", f"/slots/{slot['id']}", {"metadata": {"k": "v" * 5000}})
    assert error_of(response) == (422, "E042")


def test_delete_answers_empty_data_and_then_it_is_gone(api: Api) -> None:
    """DELETE answers `"data": {}`; afterwards the slot is 404 E025 and no longer listed."""
    resource_id = api.resource()["id"]
    slot = api.slot(resource_id)
    assert api.ok("DELETE", f"/slots/{slot['id']}") == {}
    assert error_of(api.call("GET", f"/slots/{slot['id']}")) == (404, "E025")
    assert listed_ids(api) == []
    assert api.ok("GET", f"/resources/{resource_id}")["num_slots"] == 0


def test_delete_frees_its_time(api: Api) -> None:
    """After a slot is deleted, a new one may take its place."""
    resource_id = api.resource()["id"]
    slot = create(api, resource_id).json()["data"]
    api.ok("DELETE", f"/slots/{slot['id']}")
    assert create(api, resource_id).status_code == 200


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/enable"),
        ("POST", "/disable"),
        ("POST", "/lock"),
        ("POST", "/unlock"),
    ],
)
@pytest.mark.parametrize("slot_id", [UNKNOWN_ID, "not-a-uuid"])
def test_unknown_or_malformed_id_is_e025(api: Api, method: str, suffix: str, slot_id: str) -> None:
    """An id that names no slot, or is no id at all, is 404 E025 on every endpoint."""
    json = slot_request_body(method, suffix)
    response = api.call(method, f"/slots/{slot_id}{suffix}", json)
    assert error_of(response) == (404, "E025")


@pytest.mark.parametrize(
    ("method", "suffix", "json"),
    [
        ("POST", "", {"resource_id": UNKNOWN_ID}),
        ("PATCH", "/{id}", {"capacity": 2}),
        ("DELETE", "/{id}", None),
        ("POST", "/{id}/enable", None),
        ("POST", "/{id}/disable", None),
    ],
)
def test_public_key_is_refused_on_secret_endpoints(
    api: Api, method: str, suffix: str, json: dict[str, Any] | None
) -> None:
    """Writing slot endpoints answer a public key with 401 E015 and change nothing."""
    slot = api.slot(api.resource()["id"])
    response = api.call(method, "/slots" + suffix.format(id=slot["id"]), json, key="public")
    assert error_of(response) == (401, "E015")
    assert api.ok("GET", "/slots") == [slot]


def test_public_key_may_list_and_get(api: Api) -> None:
    """GET /slots and GET /slots/:id are open to the public key."""
    slot = api.slot(api.resource()["id"])
    assert api.ok("GET", "/slots", key="public") == [slot]
    assert api.ok("GET", f"/slots/{slot['id']}", key="public") == slot
