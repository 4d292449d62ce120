"""Booking races over real HTTP: `slotlock serve` on a redis-server of its own, many clients.

The module starts one redis-server and one service process on free loopback
ports, issues a key pair with `slotlock keys create`, and stops both by pid at
the end. Each test fires its requests concurrently through aiohttp (with a
bounded connection pool) and checks what the API promises under contention:
no oversell, a lock that only its holder gets past, and one booking per
Idempotency-Key however many retries race.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx2 as httpx
import msgspec
import pytest

from service import keyspace
from service.store.api_keys import KeyPair
from tests.redis_servers import RedisServer, free_port

SLOTLOCK = str(Path(sys.executable).parent / "slotlock")
CONCURRENCY = 40  # connections open at once
HOLDER_AT = 25  # where the lock holder's request stands among the racers


@dataclass(frozen=True)
class Reply:
    """What one request got back."""

    status: int
    body: Any
    replayed: bool  # answered from a kept Idempotency-Key response

    @property
    def outcome(self) -> tuple[int, str | None]:
        """(status, error code or None)."""
        return self.status, None if self.body["success"] else self.body["error"]["code"]


@dataclass(frozen=True)
class Service:
    """A running service: its base URL and a key pair of environment `test`."""

    url: str
    pair: KeyPair
    log_path: Path
    redis: RedisServer


def service_environment(redis_url: str, data_dir: Path) -> dict[str, str]:
    """This process's environment without slotlock settings, pointed at `redis_url`."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("SLOTLOCK_") and name != "REDIS_URL"
    }
    return inherited | {
        "REDIS_URL": redis_url,
        "SLOTLOCK_DATA_DIR": str(data_dir),
        "SLOTLOCK_LOG_LEVEL": "WARNING",
    }


def ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> bool:
    """Whether /readyz answers 200; fails at once if the service died."""
    if process.poll() is not None:
        raise RuntimeError(f"slotlock exited early:\n{log_path.read_text(errors='replace')}")
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM by pid, SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`slotlock serve` on a free port, on a redis-server the module starts for it."""
    directory = tmp_path_factory.mktemp("booking-races")
    redis = RedisServer.start_new(directory / "redis")
    try:
        env = service_environment(redis.url, directory / "data")
        created = subprocess.run(
            [SLOTLOCK, "keys", "create", "--environment", "test"],
            env=env,
            capture_output=True,
            timeout=30,
            check=True,
        )
        pair = msgspec.json.decode(created.stdout, type=KeyPair)
        port, log_path = free_port(), directory / "slotlock.log"
        url = f"http://127.0.0.1:{port}"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [SLOTLOCK, "serve", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 20
            while not ready(url, process, log_path):
                assert time.monotonic() < deadline, "slotlock did not get ready in 20 s"
                time.sleep(0.05)
            yield Service(url, pair, log_path, redis)
        finally:
            stop(process)
    finally:
        redis.stop()


class Client:
    """Concurrent JSON calls to the service, at most CONCURRENCY connections at once."""

    def __init__(self, service: Service, session: aiohttp.ClientSession) -> None:
        self.service = service
        self.session = session

    async def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        key: str = "secret",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One request with the secret or the public key."""
        pair = self.service.pair
        token = pair.secret_key if key == "secret" else pair.public_key
        sent = {"authorization": f"Bearer {token}", **(headers or {})}
        async with self.session.request(
            method, self.service.url + path, json=json, headers=sent
        ) as response:
            replayed = response.headers.get("idempotent-replayed") == "true"
            return Reply(response.status, await response.json(), replayed)

    async def ok(self, method: str, path: str, json: Any = None) -> Any:
        """The `data` of a call (secret key) that must succeed."""
        reply = await self.call(method, path, json)
        assert reply.status == 200, reply.body
        return reply.body["data"]

    async def published_slot(self, capacity: int) -> str:
        """The id of a new slot, a day ahead, of a new published resource."""
        resource = await self.ok("POST", "/resources", {"name": "Race room"})
        await self.ok("POST", f"/resources/{resource['id']}/publish")
        return await self.slot(resource["id"], capacity)

    async def slot(self, resource_id: str, capacity: int, days_ahead: int = 1) -> str:
        """The id of a new slot of the resource, `days_ahead` from now."""
        start = datetime.now(UTC) + timedelta(days=days_ahead)
        body = {
            "resource_id": resource_id,
            "start_date": start.isoformat(),
            "end_date": (start + timedelta(minutes=30)).isoformat(),
            "capacity": capacity,
        }
        return str((await self.ok("POST", "/slots", body))["id"])

    async def book(
        self, slot_id: str, lock_key: str | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        """POST /bookings with the public key, as a frontend would."""
        body: dict[str, Any] = {"slot_id": slot_id}
        if lock_key is not None:
            body["lock_key"] = lock_key
        return await self.call("POST", "/bookings", body, key="public", headers=headers)


def against(service: Service, scenario: Any) -> Any:
    """Run `scenario(client)` on a fresh event loop with a bounded connection pool."""

    async def main() -> Any:
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            return await scenario(Client(service, session))

    return asyncio.run(main())


def test_concurrent_bookings_never_oversell(service: Service) -> None:
    """120 concurrent bookings of a 3-place slot: exactly 3 succeed, 117 are E049."""

    async def scenario(client: Client) -> tuple[Counter[tuple[int, str | None]], Any]:
        slot_id = await client.published_slot(capacity=3)
        replies = await asyncio.gather(*(client.book(slot_id) for _ in range(120)))
        outcomes = Counter(reply.outcome for reply in replies)
        return outcomes, await client.ok("GET", f"/slots/{slot_id}")

    outcomes, slot = against(service, scenario)
    assert outcomes == {(200, None): 3, (422, "E049"): 117}
    assert (slot["num_bookings"], slot["num_active_bookings"], slot["available"]) == (3, 3, False)


def test_only_the_lock_holder_gets_past_the_lock(service: Service) -> None:
    """A lock holder racing 50 others for a locked slot: only the holder books, the lock ends."""

    async def scenario(client: Client) -> tuple[list[Reply], Any]:
        slot_id = await client.published_slot(capacity=1)
        until = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        lock_body = {"lock_key": "holder-key", "lock_until": until}
        await client.ok("POST", f"/slots/{slot_id}/lock", lock_body)
        keys = [None if at % 2 else f"other-{at}" for at in range(50)]
        keys.insert(HOLDER_AT, "holder-key")
        replies = await asyncio.gather(*(client.book(slot_id, key) for key in keys))
        return replies, await client.ok("GET", f"/slots/{slot_id}")

    replies, slot = against(service, scenario)
    holder = replies.pop(HOLDER_AT)
    assert holder.outcome == (200, None)
    assert {reply.outcome for reply in replies} <= {(422, "E050"), (422, "E049")}
    assert slot["locked_until"] is None
    assert (slot["num_bookings"], slot["num_active_bookings"]) == (1, 1)


def test_concurrent_retries_of_one_idempotency_key_book_once(service: Service) -> None:
    """50 concurrent retries with one Idempotency-Key: 50 identical 200 answers, one booking."""

    async def scenario(client: Client) -> tuple[list[Reply], Any]:
        slot_id = await client.published_slot(capacity=5)
        headers = {"idempotency-key": "checkout-race-1"}
        replies = await asyncio.gather(*(client.book(slot_id, headers=headers) for _ in range(50)))
        return replies, await client.ok("GET", f"/slots/{slot_id}")

    replies, slot = against(service, scenario)
    assert {reply.status for reply in replies} == {200}
    assert all(reply.body == replies[0].body for reply in replies)
    assert sum(not reply.replayed for reply in replies) == 1
    assert slot["num_bookings"] == 1


def open_intents(service: Service) -> int:
    """Cross-resource moves the intent log still holds."""
    count: int = service.redis.client().zcard(keyspace.reschedule_intents())
    return count


def test_concurrent_moves_into_a_full_slot_never_oversell(service: Service) -> None:
    """30 bookings moving at once to a 3-place slot of another resource: 3 move, 27 are E049."""

    async def scenario(client: Client) -> tuple[Counter[tuple[int, str | None]], Any, Any]:
        source_id = await client.published_slot(capacity=30)
        target_id = await client.published_slot(capacity=3)
        made = await asyncio.gather(*(client.book(source_id) for _ in range(30)))
        moves = await asyncio.gather(
            *(
                client.call(
                    "POST",
                    f"/bookings/{reply.body['data']['id']}/reschedule",
                    {"target_slot_id": target_id},
                    key="public",
                )
                for reply in made
            )
        )
        slots = [await client.ok("GET", f"/slots/{slot_id}") for slot_id in (source_id, target_id)]
        return Counter(reply.outcome for reply in moves), slots[0], slots[1]

    outcomes, source, target = against(service, scenario)
    assert outcomes == {(200, None): 3, (422, "E049"): 27}
    assert (source["num_bookings"], source["num_active_bookings"]) == (27, 27)
    assert (target["num_bookings"], target["num_active_bookings"]) == (3, 3)
    assert open_intents(service) == 0


def test_one_booking_moved_to_many_slots_at_once_ends_on_one(service: Service) -> None:
    """Ten concurrent moves of one booking to ten resources leave it on exactly one slot."""

    async def scenario(client: Client) -> tuple[list[Reply], list[Any], Any]:
        source_id = await client.published_slot(capacity=1)
        targets = [await client.published_slot(capacity=1) for _ in range(10)]
        booking_id = (await client.book(source_id)).body["data"]["id"]
        path = f"/bookings/{booking_id}/reschedule"
        moves = await asyncio.gather(
            *(client.call("POST", path, {"target_slot_id": target}) for target in targets)
        )
        slots = [await client.ok("GET", f"/slots/{slot_id}") for slot_id in [source_id, *targets]]
        return moves, slots, await client.ok("GET", f"/bookings/{booking_id}")

    moves, slots, booking = against(service, scenario)
    assert {reply.status for reply in moves} <= {200, 503}, [reply.body for reply in moves]
    holding = [slot["id"] for slot in slots if slot["num_bookings"]]
    assert holding == [booking["slot_id"]]
    assert sum(slot["num_active_bookings"] for slot in slots) == 1
    assert open_intents(service) == 0
