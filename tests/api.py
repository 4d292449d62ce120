"""A thin test client for the slot API: keys, envelopes and common set-ups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
from starlette.testclient import TestClient

from service.app import SlotlockApp
from service.store.api_keys import KeyPair


def iso(moment: datetime) -> str:
    """An ISO 8601 timestamp, as a client would send it."""
    return moment.isoformat()


def from_now(**delta: float) -> datetime:
    """Now plus a timedelta (seconds=, minutes=, days=)."""
    return datetime.now(UTC) + timedelta(**delta)


class Api:
    """Calls the API with the secret key (default) or the public key."""

    def __init__(self, client: TestClient, pair: KeyPair, app: SlotlockApp) -> None:
        self.client = client
        self.pair = pair
        self.app = app

    def call(
        self, method: str, path: str, json: Any = None, *, key: str = "secret", **kwargs: Any
    ) -> httpx.Response:
        """One request; `key` is "secret", "public" or "none"."""
        headers = dict(kwargs.pop("headers", {}))
        if key != "none":
            token = self.pair.secret_key if key == "secret" else self.pair.public_key
            headers["authorization"] = f"Bearer {token}"
        return self.client.request(method, path, json=json, headers=headers, **kwargs)

    def ok(self, method: str, path: str, json: Any = None, **kwargs: Any) -> Any:
        """The `data` of a call that must succeed."""
        response = self.call(method, path, json, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def resource(self, *, published: bool = True, **fields: Any) -> dict[str, Any]:
        """A new resource (published unless told otherwise)."""
        created = self.ok("POST", "/resources", {"name": "Room 1", **fields})
        if published:
            created = self.ok("POST", f"/resources/{created['id']}/publish")
        return dict(created)

    def slot(
        self, resource_id: str, *, hours_ahead: float = 24, minutes: float = 30, **fields: Any
    ) -> dict[str, Any]:
        """A new slot `hours_ahead` from now, `minutes` long, capacity 1 unless told."""
        start = from_now(hours=hours_ahead)
        body = {
            "resource_id": resource_id,
            "start_date": iso(start),
            "end_date": iso(start + timedelta(minutes=minutes)),
            "capacity": 1,
            **fields,
        }
        return dict(self.ok("POST", "/slots", body))

    def lock(
        self, slot_id: str, lock_key: str, *, seconds: float = 300, **kwargs: Any
    ) -> httpx.Response:
        """Lock a slot for `seconds` with the public key (as a frontend does)."""
        body = {"lock_key": lock_key, "lock_until": iso(from_now(seconds=seconds))}
        return self.call(
            "POST", f"/slots/{slot_id}/lock", body, key=kwargs.pop("key", "public"), **kwargs
        )

    def unlock(self, slot_id: str, lock_key: str, **kwargs: Any) -> httpx.Response:
        """Unlock a slot with the public key."""
        body = {"lock_key": lock_key}
        return self.call(
            "POST", f"/slots/{slot_id}/unlock", body, key=kwargs.pop("key", "public"), **kwargs
        )


def error_of(response: httpx.Response) -> tuple[int, str]:
    """(status, error code) of a failure envelope, checking the envelope's shape."""
    body = response.json()
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message", "status"}
    assert body["error"]["status"] == response.status_code
    return response.status_code, body["error"]["code"]


def slot_request_body(method: str, suffix: str) -> dict[str, Any] | None:
    """A valid body for `method /slots/:id<suffix>`, made now (a lock_until must lie ahead)."""
    if suffix == "/lock":
        return {"lock_key": "k", "lock_until": iso(from_now(minutes=5))}
    if suffix == "/unlock":
        return {"lock_key": "k"}
    return {"capacity": 2} if method == "PATCH" else None
