"""Lock and unlock, exactly as API.md's Locking section says."""

from __future__ import annotations

from tests.api import Api, error_of, from_now, iso


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
