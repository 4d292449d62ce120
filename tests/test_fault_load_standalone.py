"""Redis SIGKILLed and restarted under a booking load: 503s, recovery, nothing acknowledged mishaps.

One redis-server with `appendonly yes` and `appendfsync always` (every write on
disk before its reply), one `slotlock serve`, and a load of checkout users.
Mid-load the server is SIGKILLed, then restarted on its port and directory.
The record of every request is judged by FaultUnderLoadContract.

Then, without load, a proxy between the service and Redis loses replies on
purpose, so that what a SIGKILL does only by chance happens every time: a
booking that ran but whose answer was lost, and a partition that starts while a
booking is under way. Last, Redis refuses writes (min-replicas-to-write unmet),
and a restarted Redis is still loading a dataset, each while locks arrive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from service.store.api_keys import KeyPair
from tests.fault_checks import FaultUnderLoadContract, figures, unexpected_failures
from tests.fault_load import Attempt, Client, Load, Plan
from tests.fault_proxy import ReplyLosingProxy
from tests.fault_run import Fault, FaultRun, create_keys, new_resource, prepare, run_fault
from tests.live import LiveService
from tests.redis_servers import RedisServer

DURABLE = ["--appendonly", "yes", "--appendfsync", "always"]
REDIS_TIMEOUT_S = 1.0
LOAD_BEFORE_S = 1.5
DOWN_FOR_S = 1.0
LOAD_AFTER_S = 1.5
LOG_FLUSH_S = 0.6  # the service flushes its log 4 times a second
LOADING_KEYS = 1_500_000  # about half a second of loading


def service_settings(redis_url: str) -> dict[str, str]:
    """The service's environment: this Redis, and rate limits far above the load."""
    return {
        "REDIS_URL": redis_url,
        "SLOTLOCK_REDIS_TIMEOUT_S": str(REDIS_TIMEOUT_S),
        "SLOTLOCK_RATE_LIMIT_PUBLIC": "100000/second",
        "SLOTLOCK_RATE_LIMIT_SECRET": "100000/second",
    }


def kill_and_restart(redis: RedisServer) -> Fault:
    """SIGKILL the server mid-load, start it again DOWN_FOR_S later, wait for the first write."""

    async def fault(load: Load) -> dict[str, float]:
        await asyncio.sleep(LOAD_BEFORE_S)
        await load.in_flight("book", at_least=2)
        marks = {"fault": time.monotonic()}
        await asyncio.to_thread(redis.kill)
        await asyncio.sleep(DOWN_FOR_S)
        await asyncio.to_thread(redis.start)  # returns once PING answers (AOF loaded)
        marks["back"] = time.monotonic()
        marks["recovered"] = await load.answered_after(marks["fault"])
        await asyncio.sleep(LOAD_AFTER_S)
        return marks

    return fault


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultRun]:
    """The whole run, once for the module: load, SIGKILL, restart, settle."""
    directory = tmp_path_factory.mktemp("fault-standalone")
    redis = RedisServer.start_new(directory / "redis", DURABLE)
    service = LiveService(directory / "slotlock.log", **service_settings(redis.url))
    try:
        pair = create_keys(REDIS_URL=redis.url)
        service.start()
        fault = kill_and_restart(redis)
        result = asyncio.run(run_fault(service.url, pair, None, Plan(), fault, REDIS_TIMEOUT_S))
        service.stop()
        result.service_log = service.log()
        print(f"\nstandalone SIGKILL: {figures(result)}")
        yield result
    finally:
        service.stop()
        redis.kill()


class TestRedisKilledUnderLoad(FaultUnderLoadContract):
    """A durable standalone Redis, SIGKILLed and restarted while users book."""


@dataclass(frozen=True)
class Mishaps:
    """What the service answered when Redis lost replies, refused writes, or was loading."""

    first: Attempt  # the booking script ran, its reply was lost
    slot_after_first: Any
    retry: Attempt  # the same request, same Idempotency-Key, replies flowing again
    bookings_after_retry: list[Any]
    partitioned: Attempt  # every reply lost from the booking script on
    failures_logged: list[str]  # unexpected failures the service logged meanwhile
    refused: Attempt  # a lock while Redis refuses writes (NOREPLICAS)
    while_loading: list[Attempt]  # locks while a restarted Redis loads its dataset


@pytest.fixture(scope="module")
def mishaps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mishaps]:
    """A service behind a reply-losing proxy, and the stories recorded in Mishaps."""
    directory = tmp_path_factory.mktemp("mishaps")
    redis = RedisServer.start_new(directory / "redis", ["--enable-debug-command", "yes"])
    try:
        pair = create_keys(REDIS_URL=redis.url)
        yield asyncio.run(meet_mishaps(redis, pair, directory / "slotlock.log"))
    finally:
        redis.kill()


async def meet_mishaps(redis: RedisServer, pair: KeyPair, log_path: Path) -> Mishaps:
    """Run the stories against `slotlock serve` on a proxy to `redis`."""
    proxy = ReplyLosingProxy(redis.port)
    await proxy.start()
    service = LiveService(log_path, **service_settings(proxy.url), SLOTLOCK_KEY_CACHE_S="5")
    try:
        await asyncio.to_thread(service.start)
        async with aiohttp.ClientSession() as session:
            client = Client(session, service.url, pair)
            slots = await prepare(
                client, await new_resource(client), Plan(churn_slots=4, held_slots=0)
            )
            first, slot_after, retry, bookings = await lose_one_reply(client, proxy, slots.churn[0])
            partitioned, failures = await partition_mid_booking(
                client, proxy, slots.churn[1], service
            )
            refused = await lock_while_writes_refused(client, redis, slots.churn[2])
            while_loading = await lock_while_loading(client, redis, slots.churn[3])
    finally:
        await asyncio.to_thread(service.stop)
        await proxy.close()
    return Mishaps(
        first, slot_after, retry, bookings, partitioned, failures, refused, while_loading
    )


async def lose_one_reply(
    client: Client, proxy: ReplyLosingProxy, slot_id: str
) -> tuple[Attempt, Any, Attempt, list[Any]]:
    """Lock, book with the booking script's reply lost, look, retry with the same key, look."""
    assert (await client.lock(slot_id, "buyer-1", 60)).status == 200
    proxy.arm(b":receipt:")  # only create_booking names a receipt key
    first = await client.book(slot_id, "buyer-1", "checkout-1")
    proxy.disarm()
    slot_after = (await client.read(f"/slots/{slot_id}"))["data"]
    retry = await client.book(slot_id, "buyer-1", "checkout-1", phase="settle")
    bookings = (await client.read("/bookings", slot_id=slot_id))["data"]
    return first, slot_after, retry, bookings


async def partition_mid_booking(
    client: Client, proxy: ReplyLosingProxy, slot_id: str, service: LiveService
) -> tuple[Attempt, list[str]]:
    """Lock, then book while every reply is lost from the booking script on; what was logged."""
    assert (await client.lock(slot_id, "buyer-2", 60)).status == 200
    await asyncio.sleep(LOG_FLUSH_S)  # earlier stories' lines are in the log now
    logged_before = len(unexpected_failures(service.log()))
    proxy.arm(b":receipt:", everywhere=True)
    partitioned = await client.book(slot_id, "buyer-2", "checkout-2")
    # The service goes on after answering (its Idempotency-Key record) until its
    # Redis timeout, then logs.
    await asyncio.sleep(REDIS_TIMEOUT_S + LOG_FLUSH_S)
    proxy.disarm()
    return partitioned, unexpected_failures(service.log())[logged_before:]


async def lock_while_writes_refused(client: Client, redis: RedisServer, slot_id: str) -> Attempt:
    """A lock while Redis refuses every write: min-replicas-to-write 1 with no replica."""
    await asyncio.to_thread(redis.client().config_set, "min-replicas-to-write", 1)
    try:
        return await client.lock(slot_id, "buyer-3", 60)
    finally:
        await asyncio.to_thread(redis.client().config_set, "min-replicas-to-write", 0)


async def lock_while_loading(client: Client, redis: RedisServer, slot_id: str) -> list[Attempt]:
    """Locks sent from a restart of Redis with LOADING_KEYS keys until one is taken."""
    # A key pair looked up for the first time just before the restart stays cached
    # (SLOTLOCK_KEY_CACHE_S) while Redis loads: each lock reaches its script instead of
    # failing at the key lookup.
    pair = await asyncio.to_thread(create_keys, REDIS_URL=redis.url)
    client = Client(client.session, client.base_url, pair)
    await asyncio.to_thread(_save_a_large_dataset, redis)
    assert (await client.lock(slot_id, "buyer-4", 60)).status == 200
    await asyncio.to_thread(redis.kill)
    restarted = asyncio.create_task(asyncio.to_thread(redis.start))  # returns once loaded
    answers = []
    for _ in range(1000):
        answers.append(await client.lock(slot_id, "buyer-4", 60))  # a retry extends its lock
        if answers[-1].status == 200:
            break
        await asyncio.sleep(0.01)
    await restarted
    return answers


def _save_a_large_dataset(redis: RedisServer) -> None:
    with redis.client() as admin:
        admin.execute_command("DEBUG", "POPULATE", LOADING_KEYS, "filler")
        admin.save()


def test_a_booking_whose_reply_is_lost_is_503_e103_yet_made(mishaps: Mishaps) -> None:
    """The booking script ran but its reply was lost: 503 E103 to the client, the booking exists."""
    assert (mishaps.first.status, mishaps.first.code) == (503, "E103")
    assert mishaps.slot_after_first["num_bookings"] == 1


def test_retry_with_the_same_key_returns_the_booking_made(mishaps: Mishaps) -> None:
    """Retried with its Idempotency-Key, that booking comes back 200, and no second one is made."""
    assert mishaps.retry.status == 200, mishaps.retry
    assert [booking["id"] for booking in mishaps.bookings_after_retry] == [mishaps.retry.booking_id]


def test_a_partition_mid_booking_is_answered_once(mishaps: Mishaps) -> None:
    """Replies lost from the booking script on: one 503 E103, no second answer attempted."""
    assert (mishaps.partitioned.status, mishaps.partitioned.code) == (503, "E103")
    assert mishaps.failures_logged == []


def test_a_write_redis_refuses_for_want_of_replicas_is_503_e103(mishaps: Mishaps) -> None:
    """A primary refusing writes (NOREPLICAS, min-replicas-to-write unmet) answers 503 E103."""
    assert (mishaps.refused.status, mishaps.refused.code) == (503, "E103")


def test_a_request_while_redis_loads_its_dataset_is_503_e103(mishaps: Mishaps) -> None:
    """Redis restarted and still loading (LOADING): every lock is 503 E103, then 200 again."""
    statuses = [(attempt.status, attempt.code) for attempt in mishaps.while_loading]
    assert len(statuses) > 5  # it loaded for a while
    assert set(statuses[:-1]) == {(503, "E103")}
    assert statuses[-1] == (200, None)
