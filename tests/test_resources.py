"""Resources: the seven endpoints, their list, their errors and their environment."""

from __future__ import annotations

import pytest

from tests.api import Api, error_of

UNKNOWN_ID = "0badc0de-0000-4000-8000-000000000000"


def test_create_returns_a_draft_in_utc(api: Api) -> None:
    """A new resource is a 200 draft with timezone UTC, zero counters and its own id."""
    response = api.call("POST", "/resources", {"name": "Room 1"})
    assert response.status_code == 200
    created = response.json()["data"]
    assert created["_object"] == "resource"
    assert (created["name"], created["status"], created["timezone"]) == ("Room 1", "draft", "UTC")
    assert created["num_slots"] == created["num_bookings"] == 0
    assert created["metadata"] == {}
    assert created["created_at"] == created["updated_at"]


def test_create_keeps_every_given_field(api: Api) -> None:
    """Timezone, booking window, public scheduling and metadata are stored as sent."""
    fields = {
        "name": "Court",
        "timezone": "Europe/Berlin",
        "booking_disabled_before": 3600,
        "public_scheduling_enabled": True,
        "metadata": {"floor": 2, "tags": ["a"], "ok": True},
    }
    created = api.ok("POST", "/resources", fields)
    fetched = api.ok("GET", f"/resources/{created['id']}")
    assert {name: fetched[name] for name in fields} == fields


def test_get_returns_the_resource(api: Api) -> None:
    """GET /resources/:id answers with the resource, with the public key too."""
    created = api.resource(published=False)
    fetched = api.ok("GET", f"/resources/{created['id']}", key="public")
    assert fetched == created


def test_patch_changes_only_the_given_fields(api: Api) -> None:
    """PATCH sets name, timezone, window and public scheduling and leaves the rest alone."""
    created = api.resource(published=False, metadata={"a": 1})
    changes = {
        "name": "Room 2",
        "timezone": "America/New_York",
        "booking_disabled_before": 60,
        "public_scheduling_enabled": True,
    }
    patched = api.ok("PATCH", f"/resources/{created['id']}", changes)
    assert {name: patched[name] for name in changes} == changes
    assert patched["metadata"] == {"a": 1}
    assert api.ok("GET", f"/resources/{created['id']}") == patched


def test_patch_replaces_the_whole_metadata(api: Api) -> None:
    """New metadata replaces the old object instead of merging into it."""
    created = api.resource(metadata={"a": 1, "b": 2})
    patched = api.ok("PATCH", f"/resources/{created['id']}", {"metadata": {"c": 3}})
    assert patched["metadata"] == {"c": 3}


def test_publish_makes_it_published(api: Api) -> None:
    """POST /resources/:id/publish sets status `published`."""
    created = api.resource(published=False)
    assert api.ok("POST", f"/resources/{created['id']}/publish")["status"] == "published"
    assert api.ok("GET", f"/resources/{created['id']}")["status"] == "published"


def test_convert_draft_makes_it_a_draft_again(api: Api) -> None:
    """POST /resources/:id/convert-draft turns a published resource back into a draft."""
    created = api.resource(published=True)
    assert api.ok("POST", f"/resources/{created['id']}/convert-draft")["status"] == "draft"
    assert api.ok("GET", f"/resources/{created['id']}")["status"] == "draft"


def test_delete_answers_empty_data_and_then_it_is_gone(api: Api) -> None:
    """DELETE answers `"data": {}`; a later GET is 404 E052."""
    created = api.resource()
    assert api.ok("DELETE", f"/resources/{created['id']}") == {}
    assert error_of(api.call("GET", f"/resources/{created['id']}")) == (404, "E052")


def test_delete_removes_its_slots(api: Api) -> None:
    """The slots of a deleted resource are not found any more."""
    resource_id = api.resource()["id"]
    slots = [api.slot(resource_id, hours_ahead=hours) for hours in (1, 2)]
    api.ok("DELETE", f"/resources/{resource_id}")
    for slot in slots:
        assert error_of(api.call("GET", f"/slots/{slot['id']}")) == (404, "E025")
    assert api.ok("GET", "/slots") == []


def test_delete_removes_it_from_the_list(api: Api) -> None:
    """A deleted resource no longer appears in GET /resources."""
    kept, deleted = api.resource(), api.resource()
    api.ok("DELETE", f"/resources/{deleted['id']}")
    assert [found["id"] for found in api.ok("GET", "/resources")] == [kept["id"]]


def test_list_returns_them_oldest_first(api: Api) -> None:
    """GET /resources lists every resource in creation order."""
    ids = [api.resource(name=f"Room {n}")["id"] for n in range(3)]
    assert [found["id"] for found in api.ok("GET", "/resources", key="public")] == ids


def test_list_filters_by_name(api: Api) -> None:
    """`name` keeps only resources of exactly that name."""
    api.resource(name="Court")
    wanted = api.resource(name="Pool")
    listed = api.ok("GET", "/resources", params={"name": "Pool"})
    assert [found["id"] for found in listed] == [wanted["id"]]


def test_list_filters_by_status(api: Api) -> None:
    """`status` keeps only drafts or only published resources."""
    draft = api.resource(published=False)
    published = api.resource(published=True)
    drafts = api.ok("GET", "/resources", params={"status": "draft"})
    publics = api.ok("GET", "/resources", params={"status": "published"})
    assert [found["id"] for found in drafts] == [draft["id"]]
    assert [found["id"] for found in publics] == [published["id"]]


def test_list_refuses_an_unknown_status(api: Api) -> None:
    """A `status` filter other than draft or published is 400 E013."""
    assert error_of(api.call("GET", "/resources", params={"status": "open"})) == (400, "E013")


def test_list_meta_defaults_to_limit_20_page_1(api: Api) -> None:
    """Without `limit` and `page`, meta says limit 20, page 1 and the total."""
    for _ in range(3):
        api.resource()
    body = api.call("GET", "/resources").json()
    assert body["meta"] == {"limit": 20, "page": 1, "total": 3}
    assert body["success"] is True


def test_list_pages_through_with_limit_and_page(api: Api) -> None:
    """`limit` and `page` cut the list; `total` counts all of it."""
    ids = [api.resource(name=f"Room {n}")["id"] for n in range(3)]
    first = api.call("GET", "/resources", params={"limit": 2, "page": 1}).json()
    second = api.call("GET", "/resources", params={"limit": 2, "page": 2}).json()
    assert [found["id"] for found in first["data"] + second["data"]] == ids
    assert second["meta"] == {"limit": 2, "page": 2, "total": 3}


def test_list_accepts_limit_50(api: Api) -> None:
    """`limit` 50, the largest, is accepted."""
    assert api.call("GET", "/resources", params={"limit": 50}).json()["meta"]["limit"] == 50


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 51}, {"limit": "x"}, {"page": 0}])
def test_list_refuses_a_bad_limit_or_page(api: Api, params: dict[str, object]) -> None:
    """`limit` outside 1..50 or `page` below 1 is 400 E013 naming the parameter."""
    response = api.call("GET", "/resources", params=params)
    assert error_of(response) == (400, "E013")
    assert next(iter(params)) in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/publish"),
        ("POST", "/convert-draft"),
    ],
)
@pytest.mark.parametrize("resource_id", [UNKNOWN_ID, "not-a-uuid", "1"])
def test_unknown_or_malformed_id_is_404(
    api: Api, method: str, suffix: str, resource_id: str
) -> None:
    """An id that names no resource, or is no id at all, is 404 E052 on every endpoint."""
    json = {"name": "x"} if method == "PATCH" else None
    response = api.call(method, f"/resources/{resource_id}{suffix}", json)
    assert error_of(response) == (404, "E052")


def test_create_refuses_an_unknown_timezone(api: Api) -> None:
    """A timezone that is not an IANA name is 422 E022."""
    response = api.call("POST", "/resources", {"name": "x", "timezone": "Mars/Olympus"})
    assert error_of(response) == (422, "E022")
    assert api.ok("GET", "/resources") == []


def test_patch_refuses_an_unknown_timezone(api: Api) -> None:
    """PATCH with an unknown timezone is 422 E022 and keeps the old one."""
    created = api.resource(timezone="Europe/Paris")
    response = api.call("PATCH", f"/resources/{created['id']}", {"timezone": "Europe/Nowhere"})
    assert error_of(response) == (422, "E022")
    assert api.ok("GET", f"/resources/{created['id']}")["timezone"] == "Europe/Paris"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "colour": "red"}, "colour"),
        ({}, "name"),
        ({"name": 5}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "booking_disabled_before": "60"}, "booking_disabled_before"),
        ({"name": "x", "public_scheduling_enabled": "yes"}, "public_scheduling_enabled"),
        ({"name": "x", "metadata": []}, "metadata"),
    ],
)
def test_create_refuses_a_bad_field_naming_it(
    api: Api, body: dict[str, object], field: str
) -> None:
    """An unknown, missing or mistyped field is 400 E013 whose message names the field."""
    response = api.call("POST", "/resources", body)
    assert error_of(response) == (400, "E013")
    assert field in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"nmae": "x"}, "nmae"), ({"name": None}, "name"), ({"status": "x"}, "status")],
)
def test_patch_refuses_a_bad_field_naming_it(api: Api, body: dict[str, object], field: str) -> None:
    """PATCH with an unknown or mistyped field is 400 E013 naming it, and changes nothing."""
    created = api.resource()
    response = api.call("PATCH", f"/resources/{created['id']}", body)
    assert error_of(response) == (400, "E013")
    assert field in response.json()["error"]["message"]
    assert api.ok("GET", f"/resources/{created['id']}") == created


def test_negative_booking_disabled_before_is_e058(api: Api) -> None:
    """A negative `booking_disabled_before` is 422 E058 on create, and on PATCH changes nothing."""
    response = api.call("POST", "/resources", {"name": "x", "booking_disabled_before": -1})
    assert error_of(response) == (422, "E058")
    assert "booking_disabled_before" in response.json()["error"]["message"]
    assert api.ok("GET", "/resources") == []
    created = api.resource(booking_disabled_before=60)
    response = api.call("PATCH", f"/resources/{created['id']}", {"booking_disabled_before": -60})
    assert error_of(response) == (422, "E058")
    assert api.ok("GET", f"/resources/{created['id']}") == created


def test_metadata_key_of_100_characters_is_accepted(api: Api) -> None:
    """A metadata key of exactly 100 characters is within the limit."""
    created = api.ok("POST", "/resources", {"name": "x", "metadata": {"k" * 100: 1}})
    assert created["metadata"] == {"k" * 100: 1}


def test_metadata_key_over_100_characters_is_e042(api: Api) -> None:
    """A metadata key of 101 characters is 422 E042."""
    response = api.call("POST", "/resources", {"name": "x", "metadata": {"k" * 101: 1}})
    assert error_of(response) == (422, "E042")


@pytest.mark.parametrize("value", ["v" * 5000, ["v" * 2500, "w" * 2500], {"nested": "v" * 4990}])
def test_metadata_value_over_5000_serialised_characters_is_e042(api: Api, value: object) -> None:
    """A metadata value longer than 5000 characters as JSON is 422 E042, nothing is stored."""
    response = api.call("POST", "/resources", {"name": "x", "metadata": {"big": value}})
    assert error_of(response) == (422, "E042")
    assert api.ok("GET", "/resources") == []


def test_metadata_value_of_5000_serialised_characters_is_accepted(api: Api) -> None:
    """A string of 4998 characters serialises to exactly 5000 and is accepted."""
    created = api.ok("POST", "/resources", {"name": "x", "metadata": {"big": "v" * 4998}})
    assert created["metadata"]["big"] == "v" * 4998


def test_patch_metadata_over_the_limit_is_e042(api: Api) -> None:
    """PATCH applies the same metadata limits and keeps the old metadata."""
    created = api.resource(metadata={"a": 1})
    response = api.call("PATCH", f"/resources/{created['id']}", {"metadata": {"k" * 101: 1}})
    assert error_of(response) == (422, "E042")
    assert api.ok("GET", f"/resources/{created['id']}")["metadata"] == {"a": 1}


def test_other_environment_does_not_list_it(api: Api, other_api: Api) -> None:
    """A key of another environment lists none of this environment's resources."""
    api.resource()
    assert other_api.ok("GET", "/resources") == []


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/publish"), ("POST", "/convert-draft")],
)
def test_other_environment_cannot_reach_it(
    api: Api, other_api: Api, method: str, suffix: str
) -> None:
    """Every endpoint answers 404 E052 to another environment, and nothing changes."""
    created = api.resource(published=False)
    json = {"name": "stolen"} if method == "PATCH" else None
    response = other_api.call(method, f"/resources/{created['id']}{suffix}", json)
    assert error_of(response) == (404, "E052")
    assert api.ok("GET", f"/resources/{created['id']}") == created


@pytest.mark.parametrize(
    ("method", "suffix", "json"),
    [
        ("POST", "", {"name": "x"}),
        ("PATCH", "/{id}", {"name": "x"}),
        ("DELETE", "/{id}", None),
        ("POST", "/{id}/publish", None),
        ("POST", "/{id}/convert-draft", None),
    ],
)
def test_public_key_is_refused_on_secret_endpoints(
    api: Api, method: str, suffix: str, json: dict[str, str] | None
) -> None:
    """Writing endpoints answer a public key with 401 E015 and change nothing."""
    created = api.resource(published=False)
    path = "/resources" + suffix.format(id=created["id"])
    response = api.call(method, path, json, key="public")
    assert error_of(response) == (401, "E015")
    assert api.ok("GET", "/resources") == [created]


def test_public_key_may_list(api: Api) -> None:
    """GET /resources is open to the public key."""
    created = api.resource()
    assert api.ok("GET", "/resources", key="public") == [created]
