"""End to end over real HTTP: `slotlock serve` on a real redis-server, as in production."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.live import LiveApi, LiveService, create_keys, lock_body, wait_for
from tests.redis_servers import RedisServer

CONTENDERS = 200


@pytest.fixture(scope="module")
def redis_for_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this module's own."""
    server = RedisServer.start_new(tmp_path_factory.mktemp("live-redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service(
    redis_for_live: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveService]:
    """`slotlock serve` on that Redis, ready."""
    log_path = tmp_path_factory.mktemp("live") / "slotlock.log"
    live = LiveService(log_path, REDIS_URL=redis_for_live.url)
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def live(service: LiveService, redis_for_live: RedisServer) -> Iterator[LiveApi]:
    """A client with a key pair from `slotlock keys create`."""
    client = LiveApi(service, create_keys(redis_for_live.url))
    yield client
    client.close()


async def lock_all(live: LiveApi, slot_id: str, count: int) -> list[tuple[int, dict[str, Any]]]:
    """`count` lock attempts on one slot at once, each with its own lock_key."""
    url = f"{live.service.url}/slots/{slot_id}/lock"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, headers=live.headers("public")) as http:

        async def attempt(n: int) -> tuple[int, dict[str, Any]]:
            async with http.post(url, json=lock_body(f"contender-{n}", 300)) as response:
                return response.status, await response.json()

        return await asyncio.gather(*(attempt(n) for n in range(count)))


def test_one_of_200_concurrent_lockers_wins(live: LiveApi) -> None:
    """200 keys racing for one slot: exactly one 200, and 199 refusals with E045."""
    slot = live.published_slot()
    results = asyncio.run(lock_all(live, slot["id"], CONTENDERS))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [422] * (CONTENDERS - 1)
    refused = {body["error"]["code"] for status, body in results if status == 422}
    assert refused == {"E045"}


def test_the_winner_holds_the_lock(live: LiveApi) -> None:
    """After the race, the slot is locked, and only the winner's key can release it."""
    slot = live.published_slot()
    results = asyncio.run(lock_all(live, slot["id"], 20))
    winner = next(body for status, body in results if status == 200)
    fetched = live.ok("GET", f"/slots/{slot['id']}")
    assert fetched["locked_until"] == winner["data"]["locked_until"]


def test_lock_ends_by_itself_at_lock_until(live: LiveApi) -> None:
    """A lock 1.5 s ahead is gone 2 s later, with no sweeper: another key may lock."""
    slot = live.published_slot()
    path = f"/slots/{slot['id']}/lock"
    first = live.call("POST", path, lock_body("short-lived", 1.5), key="public")
    assert first.status_code == 200
    time.sleep(2.0)
    fetched = live.ok("GET", f"/slots/{slot['id']}")
    assert (fetched["locked_until"], fetched["available"]) == (None, True)
    second = live.call("POST", path, lock_body("next-holder", 60), key="public")
    assert second.status_code == 200
    assert second.json()["meta"]["lock_token"] > first.json()["meta"]["lock_token"]


def test_script_flush_costs_nothing(live: LiveApi, redis_for_live: RedisServer) -> None:
    """After SCRIPT FLUSH on the running Redis, the next lock still succeeds."""
    slot = live.published_slot()
    with redis_for_live.client() as redis:
        redis.script_flush()
        assert redis.script_exists("0" * 40) == [False]
    response = live.call("POST", f"/slots/{slot['id']}/lock", lock_body("k", 60), key="public")
    assert response.status_code == 200, response.text


def test_service_log_is_json_without_secrets(live: LiveApi, service: LiveService) -> None:
    """Every line the service logs is JSON, and none holds an API key or a lock_key."""
    slot = live.published_slot()
    path = f"/slots/{slot['id']}/lock"
    live.call("POST", path, lock_body("logged-key-5e1d", 60), key="public", request_id="lg-1")
    # The service flushes its log a moment after writing it: poll for this request's line.
    assert wait_for(lambda: '"lg-1"' in service.log(), timeout_s=3)
    log = service.log()
    for secret in ("logged-key-5e1d", live.pair.secret_key, live.pair.public_key):
        assert secret not in log
    for line in log.splitlines():
        assert line.startswith("{"), line


def test_answers_carry_a_date_and_name_no_server_software(live: LiveApi) -> None:
    """Each answer has its `date`, and no `server` header telling which server runs."""
    response = live.call("GET", "/slots?limit=1")
    assert response.status_code == 200
    assert "date" in response.headers
    assert "server" not in response.headers


async def create_all(live: LiveApi, bodies: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """POST /slots with every body at once; (status, error code or "") each."""
    url = f"{live.service.url}/slots"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, headers=live.headers()) as http:

        async def attempt(body: dict[str, Any]) -> tuple[int, str]:
            async with http.post(url, json=body) as response:
                answer = await response.json()
                return response.status, "" if answer["success"] else answer["error"]["code"]

        return await asyncio.gather(*(attempt(body) for body in bodies))


def test_overlapping_creates_that_race_make_one_slot(live: LiveApi) -> None:
    """30 overlapping slots created at once: exactly one is made, the rest are 422 E024."""
    resource = live.ok("POST", "/resources", {"name": "Race room"})
    base_s = int(time.time()) + 86_400
    bodies = [
        {
            "resource_id": resource["id"],
            "start_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base_s + 60 * n)),
            "end_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base_s + 60 * n + 3600)),
            "capacity": 1,
        }
        for n in range(30)
    ]
    results = asyncio.run(create_all(live, bodies))
    assert sorted(results) == [(200, "")] + [(422, "E024")] * 29
    listed = live.ok("GET", f"/slots?resource_id={resource['id']}&limit=50")
    assert len(listed) == 1
