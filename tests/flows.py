"""The app in-process on any REDIS_URL, and the request flows the topology tests run on it."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx2 as httpx
from starlette.testclient import TestClient

from service.app import create_app
from service.connect import ConnectionOptions, redis_from_settings
from service.settings import Settings
from tests.api import Api, error_of, from_now, iso


@contextlib.contextmanager
def api_on(redis_url: str, options: ConnectionOptions | None = None) -> Iterator[Api]:
    """The app on `redis_url`, built as production builds it, with keys of a new environment.

    Each call has an environment of its own, so tests that share a topology do not
    see each other's objects. Server exceptions are raised in the test, so an error
    that would be a 500 (a NOSCRIPT or cross-slot error reaching a client) fails it
    with its traceback.
    """
    settings = Settings(redis_url=redis_url, key_cache_s=0.0)
    redis = redis_from_settings(settings, options or ConnectionOptions())
    app = create_app(settings, redis, owns_redis=True)
    with TestClient(app, raise_server_exceptions=True) as client:
        assert client.portal is not None
        environment = f"test-{secrets.token_hex(4)}"
        pair = client.portal.call(app.services.keys.create_pair, environment)
        yield Api(client, pair, app)


def slot_spec(start: datetime, minutes: float = 30) -> dict[str, Any]:
    """One slot of a bulk create: `minutes` long from `start`, capacity 1."""
    end = start + timedelta(minutes=minutes)
    return {"start_date": iso(start), "end_date": iso(end), "capacity": 1}


def create_slots(api: Api, resource_id: str) -> list[str]:
    """One slot alone and two in a bulk create; their ids in start order."""
    single = api.slot(resource_id, hours_ahead=24)
    start = from_now(hours=48)
    specs = [slot_spec(start), slot_spec(start + timedelta(hours=1))]
    body = {"resource_id": resource_id, "slots": specs}
    bulk = api.ok("POST", "/slots", body)
    return [single["id"], *[slot["id"] for slot in bulk]]


def listed(api: Api, **params: str) -> list[str]:
    """Ids of GET /slots with `params`."""
    return [slot["id"] for slot in api.ok("GET", "/slots", params=params)]


def check_lock_cycle(api: Api, slot_id: str) -> None:
    """Lock, relock with the same key, refuse another key, unlock, get: as API.md says."""
    first = api.lock(slot_id, "key-a")
    assert first.status_code == 200, first.text
    token = first.json()["meta"]["lock_token"]
    assert first.json()["data"]["available"] is False
    again = api.lock(slot_id, "key-a", seconds=600)
    assert again.status_code == 200, again.text
    assert again.json()["meta"]["lock_token"] == token
    assert error_of(api.lock(slot_id, "key-b")) == (422, "E045")
    unlocked = api.unlock(slot_id, "key-a")
    assert unlocked.status_code == 200, unlocked.text
    assert unlocked.json()["data"]["locked_until"] is None
    got = api.ok("GET", f"/slots/{slot_id}", key="public")
    assert (got["locked_until"], got["available"]) == (None, True)


def check_slots_flow(api: Api, resource_id: str) -> list[str]:
    """Create and list slots of a resource, run a lock cycle on each; their ids."""
    slot_ids = create_slots(api, resource_id)
    assert listed(api, resource_id=resource_id) == slot_ids
    for slot_id in slot_ids:
        check_lock_cycle(api, slot_id)
    return slot_ids


def check_flow(api: Api) -> tuple[str, list[str]]:
    """Create and publish a resource, then `check_slots_flow`; its id and its slots' ids."""
    resource_id = api.resource()["id"]
    return resource_id, check_slots_flow(api, resource_id)


def concurrently(api: Api, calls: list[tuple[str, str, Any]]) -> list[httpx.Response]:
    """(method, path, json) calls with the public key, all sent at once into the app's loop."""
    headers = {"authorization": f"Bearer {api.pair.public_key}"}

    async def send_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            sent = [client.request(m, path, json=body, headers=headers) for m, path, body in calls]
            return list(await asyncio.gather(*sent))

    assert api.client.portal is not None
    return api.client.portal.call(send_all)


class Outages:
    """Counts the 503 E103 answers a request needed before it got through."""

    def __init__(self) -> None:
        self.count = 0

    def through(
        self, call: Callable[[], httpx.Response], attempts: int = 20, pause_s: float = 0.1
    ) -> httpx.Response:
        """The first answer to `call` that is not 503 E103; any other error fails at once."""
        for _ in range(attempts):
            response = call()
            if response.status_code != 503:
                return response
            assert error_of(response) == (503, "E103")
            assert response.headers["retry-after"]
            self.count += 1
            time.sleep(pause_s)
        raise AssertionError(f"still 503 after {attempts} attempts")
