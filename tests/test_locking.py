"""Lock and unlock, exactly as API.md's Locking section says."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx
import pytest

from tests.api import Api, error_of, from_now, iso


def lock_at(api: Api, slot_id: str, lock_key: str, until: str) -> httpx.Response:
    """Lock with the public key and an explicit `lock_until` text."""
    body = {"lock_key": lock_key, "lock_until": until}
    return api.call("POST", f"/slots/{slot_id}/lock", body, key="public")


def locked_until_s(slot: dict[str, Any]) -> float:
    """Seconds from now to the slot's `locked_until`."""
    until = datetime.fromisoformat(slot["locked_until"].replace("Z", "+00:00"))
    return (until - datetime.now(UTC)).total_seconds()


def test_lock_returns_the_slot_locked_and_unavailable(api: Api) -> None:
    """A successful lock shows `locked_until` set and `available: false`."""
    slot = api.slot(api.resource()["id"])
    response = api.lock(slot["id"], "key-1")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["data"]["locked_until"] is not None
    assert body["data"]["available"] is False
    assert isinstance(body["meta"]["lock_token"], int)


def test_second_key_is_refused_with_retry_after(api: Api) -> None:
    """Another key gets 422 E045 with the deadline in words and Retry-After in seconds."""
    slot = api.slot(api.resource()["id"])
    api.lock(slot["id"], "key-1", seconds=120)
    response = api.lock(slot["id"], "key-2")
    assert error_of(response) == (422, "E045")
    assert 100 <= int(response.headers["retry-after"]) <= 121
    assert "until" in response.json()["error"]["message"]


def test_locked_slot_reads_as_locked(api: Api) -> None:
    """GET and the list show the lock's deadline and `available: false`."""
    slot = api.slot(api.resource()["id"])
    locked = api.lock(slot["id"], "key-1", seconds=120).json()["data"]
    fetched = api.ok("GET", f"/slots/{slot['id']}")
    assert (fetched["locked_until"], fetched["available"]) == (locked["locked_until"], False)
    assert api.ok("GET", "/slots")[0]["locked_until"] == locked["locked_until"]


def test_lock_until_is_echoed_to_the_millisecond(api: Api) -> None:
    """`locked_until` is the requested instant, in UTC with milliseconds."""
    slot = api.slot(api.resource()["id"])
    until = from_now(minutes=5).replace(microsecond=123_000)
    response = lock_at(api, slot["id"], "key-1", iso(until))
    expected = until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.123Z")
    assert response.json()["data"]["locked_until"] == expected


def test_relock_with_the_same_key_extends(api: Api) -> None:
    """The holder may move its lock later; the token stays the same."""
    slot = api.slot(api.resource()["id"])
    first = api.lock(slot["id"], "key-1", seconds=60).json()
    second = api.lock(slot["id"], "key-1", seconds=600).json()
    assert 590 <= locked_until_s(second["data"]) <= 600
    assert second["meta"]["lock_token"] == first["meta"]["lock_token"]


def test_relock_with_the_same_key_shortens(api: Api) -> None:
    """The holder may move its lock earlier; the token stays the same."""
    slot = api.slot(api.resource()["id"])
    first = api.lock(slot["id"], "key-1", seconds=600).json()
    second = api.lock(slot["id"], "key-1", seconds=60).json()
    assert 50 <= locked_until_s(second["data"]) <= 60
    assert second["meta"]["lock_token"] == first["meta"]["lock_token"]
    assert 50 <= locked_until_s(api.ok("GET", f"/slots/{slot['id']}")) <= 60


def test_new_holder_after_unlock_gets_a_larger_token(api: Api) -> None:
    """Another key that locks after a release gets a larger fencing token."""
    slot = api.slot(api.resource()["id"])
    first = api.lock(slot["id"], "key-1").json()["meta"]["lock_token"]
    api.unlock(slot["id"], "key-1")
    second = api.lock(slot["id"], "key-2").json()["meta"]["lock_token"]
    assert second > first


def test_same_key_after_unlock_gets_a_larger_token(api: Api) -> None:
    """The same key, locking again after a release, gets a larger fencing token."""
    slot = api.slot(api.resource()["id"])
    first = api.lock(slot["id"], "key-1").json()["meta"]["lock_token"]
    api.unlock(slot["id"], "key-1")
    second = api.lock(slot["id"], "key-1").json()["meta"]["lock_token"]
    assert second > first


def test_tokens_belong_to_their_slot(api: Api) -> None:
    """Locks of two different slots are independent: both succeed under one key."""
    resource_id = api.resource()["id"]
    slots = [api.slot(resource_id, hours_ahead=hours) for hours in (1, 2)]
    responses = [api.lock(slot["id"], "key-1") for slot in slots]
    assert [response.status_code for response in responses] == [200, 200]


def test_not_lockable_slot_is_e044(api: Api) -> None:
    """A slot created with `lockable: false` refuses locks with 422 E044."""
    slot = api.slot(api.resource()["id"], lockable=False)
    assert error_of(api.lock(slot["id"], "key-1")) == (422, "E044")
    assert api.ok("GET", f"/slots/{slot['id']}")["locked_until"] is None


def test_disabled_slot_is_e051(api: Api) -> None:
    """A disabled slot refuses locks with 422 E051."""
    slot = api.slot(api.resource()["id"])
    api.ok("POST", f"/slots/{slot['id']}/disable")
    assert error_of(api.lock(slot["id"], "key-1")) == (422, "E051")


@pytest.mark.parametrize("seconds", [-60, -0.5])
def test_lock_until_in_the_past_is_e100(api: Api, seconds: float) -> None:
    """A `lock_until` that is not in the future is 422 E100."""
    slot = api.slot(api.resource()["id"])
    assert error_of(api.lock(slot["id"], "key-1", seconds=seconds)) == (422, "E100")


def test_secret_key_may_hold_an_hour(api: Api) -> None:
    """With the secret key, a lock up to 3600 s ahead is accepted."""
    slot = api.slot(api.resource()["id"])
    assert api.lock(slot["id"], "key-1", seconds=3590, key="secret").status_code == 200


def test_secret_key_beyond_an_hour_is_e100(api: Api) -> None:
    """With the secret key, a lock more than 3600 s ahead is 422 E100 naming the bound."""
    slot = api.slot(api.resource()["id"])
    response = api.lock(slot["id"], "key-1", seconds=3610, key="secret")
    assert error_of(response) == (422, "E100")
    assert "3600" in response.json()["error"]["message"]


def test_public_key_may_hold_15_minutes(api: Api) -> None:
    """With the public key, a lock up to 900 s ahead is accepted."""
    slot = api.slot(api.resource()["id"])
    assert api.lock(slot["id"], "key-1", seconds=890).status_code == 200


def test_public_key_beyond_15_minutes_is_e100(api: Api) -> None:
    """With the public key, a lock more than 900 s ahead is 422 E100 naming the bound."""
    slot = api.slot(api.resource()["id"])
    response = api.lock(slot["id"], "key-1", seconds=910)
    assert error_of(response) == (422, "E100")
    assert "900" in response.json()["error"]["message"]
    assert api.ok("GET", f"/slots/{slot['id']}")["locked_until"] is None


@pytest.mark.parametrize("until", ["tomorrow", "2030-13-01T00:00:00Z", "", 1893456000])
def test_unparsable_lock_until_is_e013(api: Api, until: object) -> None:
    """A `lock_until` that is no ISO 8601 timestamp is 400 E013 naming the field."""
    slot = api.slot(api.resource()["id"])
    body = {"lock_key": "key-1", "lock_until": until}
    response = api.call("POST", f"/slots/{slot['id']}/lock", body, key="public")
    assert error_of(response) == (400, "E013")
    assert "lock_until" in response.json()["error"]["message"]


@pytest.mark.parametrize("lock_key", ["", "k" * 256, "bad\nkey", "nul\x00", "tab\tkey", None, 7])
def test_bad_lock_key_is_e013(api: Api, lock_key: object) -> None:
    """A lock_key that is empty, over 255 characters or not printable is 400 E013."""
    slot = api.slot(api.resource()["id"])
    body = {"lock_key": lock_key, "lock_until": iso(from_now(minutes=5))}
    response = api.call("POST", f"/slots/{slot['id']}/lock", body, key="public")
    assert error_of(response) == (400, "E013")
    assert "lock_key" in response.json()["error"]["message"]


def test_lock_key_of_255_characters_is_accepted(api: Api) -> None:
    """A lock_key of exactly 255 printable characters is within the limit."""
    slot = api.slot(api.resource()["id"])
    assert api.lock(slot["id"], "k" * 255).status_code == 200


def test_missing_lock_fields_are_e013(api: Api) -> None:
    """A lock body without `lock_until` is 400 E013 naming it."""
    slot = api.slot(api.resource()["id"])
    response = api.call("POST", f"/slots/{slot['id']}/lock", {"lock_key": "k"}, key="public")
    assert error_of(response) == (400, "E013")
    assert "lock_until" in response.json()["error"]["message"]


def test_unlock_by_the_owner_frees_the_slot(api: Api) -> None:
    """The holder's unlock answers the slot with `locked_until: null`, available again."""
    slot = api.slot(api.resource()["id"])
    api.lock(slot["id"], "key-1")
    response = api.unlock(slot["id"], "key-1")
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["locked_until"], data["available"]) == (None, True)
    assert api.ok("GET", f"/slots/{slot['id']}")["locked_until"] is None


def test_unlock_lets_another_key_lock(api: Api) -> None:
    """After the holder unlocks, another key may lock at once."""
    slot = api.slot(api.resource()["id"])
    api.lock(slot["id"], "key-1")
    api.unlock(slot["id"], "key-1")
    assert api.lock(slot["id"], "key-2").status_code == 200


def test_unlock_with_another_key_is_e059_and_the_lock_stays(api: Api) -> None:
    """An unlock under a different key is 403 E059; the holder keeps the lock."""
    slot = api.slot(api.resource()["id"])
    locked = api.lock(slot["id"], "key-1").json()["data"]
    assert error_of(api.unlock(slot["id"], "key-2")) == (403, "E059")
    assert api.ok("GET", f"/slots/{slot['id']}")["locked_until"] == locked["locked_until"]
    assert error_of(api.lock(slot["id"], "key-2")) == (422, "E045")


def test_unlock_of_an_unlocked_slot_is_200(api: Api) -> None:
    """Unlocking a slot nobody holds answers 200 with the slot, so retries are harmless."""
    slot = api.slot(api.resource()["id"])
    first = api.unlock(slot["id"], "key-1")
    assert first.status_code == 200
    assert first.json()["data"]["locked_until"] is None


def test_unlock_twice_is_200(api: Api) -> None:
    """A repeated unlock after a release answers 200 again."""
    slot = api.slot(api.resource()["id"])
    api.lock(slot["id"], "key-1")
    api.unlock(slot["id"], "key-1")
    assert api.unlock(slot["id"], "key-1").status_code == 200


def test_unlock_with_a_bad_lock_key_is_e013(api: Api) -> None:
    """An unlock body with an empty lock_key is 400 E013."""
    slot = api.slot(api.resource()["id"])
    assert error_of(api.unlock(slot["id"], "")) == (400, "E013")


def test_lock_key_never_appears_in_a_response(api: Api) -> None:
    """Neither success nor refusal of any lock call echoes the lock_key."""
    secret = "lock-key-3f9a7c21e4"
    slot = api.slot(api.resource()["id"])
    responses = [
        api.lock(slot["id"], secret),
        api.lock(slot["id"], secret, seconds=120),
        api.lock(slot["id"], "someone-else"),
        api.unlock(slot["id"], "someone-else"),
        api.call("GET", f"/slots/{slot['id']}"),
        api.call("GET", "/slots"),
        api.unlock(slot["id"], secret),
        api.lock(slot["id"], "someone-else"),
        api.lock(slot["id"], secret),
        api.lock(slot["id"], secret, seconds=-5),
    ]
    assert [response.status_code for response in responses] == [
        200,
        200,
        422,
        403,
        200,
        200,
        200,
        200,
        422,
        422,
    ]
    for response in responses:
        assert secret not in response.text
        assert secret not in str(response.headers)
