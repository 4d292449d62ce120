"""Redis Sentinel under a booking load: a killed master, then SENTINEL FAILOVER.

A primary, one replica and three Sentinels; both data nodes run with
`min-replicas-to-write 1` and `min-replicas-max-lag 2`, so a master that lost
its replica refuses writes (NOREPLICAS) instead of taking writes a failover
would discard. `slotlock serve` runs with SLOTLOCK_REPLICA_ACKS=1: a write is
acknowledged only once the replica holds it.

One replica, not more: with two or more, WAIT 1 can be satisfied by a replica
that is not the one promoted, and that replica, once it follows the new master,
drops what the old master took after the switch. Under this very load, three
replicas and SLOTLOCK_REPLICA_ACKS=1 lost every write acknowledged in the second
before the Sentinels announced a SENTINEL FAILOVER. The price of one replica:
writes stop while the master has none (until a killed node is back, or the old
master follows the new one; Sentinel takes 8-10 s for that, the test re-attaches
it at once with `rejoin`).

Under load, the master is SIGKILLed (its replica is promoted; the killed node is
restarted as the new master's replica), then failed over with SENTINEL FAILOVER.
Meanwhile a second, in-process pod that has stopped asking the Sentinels where
the master is (as any pod does for up to 1 s after a switch, or longer when cut
off from the Sentinels) tries to write to the old master. The record is judged
by FaultUnderLoadContract. Then, without load, the replica is paused (SIGSTOP):
a partition between the master and its replica.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import httpx2 as httpx
import pytest
import redis

from service import keyspace
from service.app import create_app
from service.connect import ConnectionOptions, redis_from_settings
from service.redis_clients import FollowingSentinelPool, SentinelMaster
from service.settings import Settings
from service.store.api_keys import KeyPair
from tests.fault_checks import RECOVERY_LIMIT_S, FaultUnderLoadContract, figures
from tests.fault_load import Attempt, Client, Load, Plan
from tests.fault_run import Fault, FaultRun, create_keys, new_resource, prepare, run_fault
from tests.live import LiveService
from tests.topologies import SENTINEL_PASSWORD, Node, SentinelTopology, wait_for

REDIS_TIMEOUT_S = 1.0
MIN_REPLICAS_MAX_LAG_S = 2
MIN_REPLICAS = (
    "--min-replicas-to-write",
    "1",
    "--min-replicas-max-lag",
    str(MIN_REPLICAS_MAX_LAG_S),
)
OPTIONS = ConnectionOptions(sentinel_password=SENTINEL_PASSWORD)
LOAD_BEFORE_S = 1.5
LOAD_BETWEEN_S = 1.0
LOAD_AFTER_S = 1.5


def service_settings(redis_url: str) -> dict[str, str]:
    """The service's environment: the Sentinels, one replica ack per write, high rate limits."""
    return {
        "REDIS_URL": redis_url,
        "SLOTLOCK_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
        "SLOTLOCK_REPLICA_ACKS": "1",
        "SLOTLOCK_REDIS_TIMEOUT_S": str(REDIS_TIMEOUT_S),
        "SLOTLOCK_RATE_LIMIT_PUBLIC": "100000/second",
        "SLOTLOCK_RATE_LIMIT_SECRET": "100000/second",
    }


class Pod:
    """The service in-process on the Sentinels' URL, without SLOTLOCK_REPLICA_ACKS."""

    def __init__(self, redis_url: str, pair: KeyPair) -> None:
        settings = Settings(redis_url=redis_url, key_cache_s=0.0, redis_timeout_s=REDIS_TIMEOUT_S)
        self.redis = redis_from_settings(settings, OPTIONS)
        transport = httpx.ASGITransport(app=create_app(settings, self.redis))
        self.http = httpx.AsyncClient(transport=transport, base_url="http://pod")
        self.headers = {"authorization": f"Bearer {pair.secret_key}"}

    async def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """One request with the secret key."""
        return await self.http.request(method, path, json=body, headers=self.headers)

    async def slots(self, count: int) -> list[str]:
        """Ids of `count` new slots of a new resource."""
        made = await self.call("POST", "/resources", {"name": "Pod room"})
        start = datetime.now(UTC) + timedelta(days=2)
        specs = [
            {
                "start_date": (start + timedelta(hours=index)).isoformat(),
                "end_date": (start + timedelta(hours=index, minutes=30)).isoformat(),
                "capacity": 1,
            }
            for index in range(count)
        ]
        body = {"resource_id": made.json()["data"]["id"], "slots": specs}
        created = await self.call("POST", "/slots", body)
        assert created.status_code == 200, created.text
        return [slot["id"] for slot in created.json()["data"]]

    async def lock(self, slot_id: str) -> httpx.Response:
        """Lock the slot for a minute."""
        until = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        body = {"lock_key": f"pod-{slot_id}", "lock_until": until}  # one slot per key
        return await self.call("POST", f"/slots/{slot_id}/lock", body)

    def stop_following(self) -> None:
        """Stop asking the Sentinels where the master is: keep the pooled connections."""
        assert isinstance(self.redis, SentinelMaster)
        pool = self.redis.connection_pool
        assert isinstance(pool, FollowingSentinelPool)
        pool.RECHECK_S = 3600.0

    async def aclose(self) -> None:
        """Close the HTTP client and the Redis connections."""
        await self.http.aclose()
        await self.redis.aclose()


@dataclass(frozen=True)
class Deployment:
    """The Sentinel topology and the service on it."""

    topology: SentinelTopology
    service: LiveService
    pair: KeyPair


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A primary, its replica, three Sentinels, and `slotlock serve` with replica acks."""
    directory = tmp_path_factory.mktemp("fault-sentinel")
    with SentinelTopology.started(directory / "sentinel", MIN_REPLICAS) as topology:
        settings = service_settings(topology.url)
        service = LiveService(directory / "slotlock.log", **settings)
        try:
            pair = create_keys(**settings)
            service.start()
            yield Deployment(topology, service, pair)
        finally:
            service.stop()


def connected_replicas(node: Node) -> int:
    """How many replicas `node` serves now."""
    with node.client() as client:
        return int(client.info("replication")["connected_slaves"])


def holds_lock(nodes: list[Node], slot_id: str) -> bool:
    """Whether any of `nodes` has the slot's lock."""
    return any(node.client().exists(keyspace.lock(slot_id)) for node in nodes if node.running)


def refused_write(node: Node) -> str:
    """What `node` answers to a plain SET: "" if it took it, else the error."""
    try:
        with node.client() as client:
            client.set("probe-write", "1")
    except redis.exceptions.ResponseError as error:
        return f"{type(error).__name__}: {error}"
    return ""


def kill_then_fail_over(deployment: Deployment, notes: dict[str, Any]) -> Fault:
    """SIGKILL the master mid-load; once the load recovered, SENTINEL FAILOVER the new one."""
    topology = deployment.topology

    async def fault(load: Load) -> dict[str, float]:
        await asyncio.sleep(LOAD_BEFORE_S)
        await load.in_flight("book", at_least=2)
        killed = topology.current_primary()
        marks = {"fault": time.monotonic()}
        await asyncio.to_thread(topology.kill, killed)
        promoted = await asyncio.to_thread(topology.wait_for_new_primary, killed)
        await asyncio.to_thread(topology.rejoin, killed, promoted)  # writes need a replica
        marks["back"] = time.monotonic()
        marks["recovered"] = await load.answered_after(marks["fault"])
        await asyncio.sleep(LOAD_BETWEEN_S)
        pod = Pod(topology.url, deployment.pair)
        try:
            marks |= await fail_over_with_a_stale_pod(load, topology, pod, notes)
        finally:
            await pod.aclose()
        await asyncio.sleep(LOAD_AFTER_S)
        return marks

    return fault


async def fail_over_with_a_stale_pod(
    load: Load, topology: SentinelTopology, pod: Pod, notes: dict[str, Any]
) -> dict[str, float]:
    """SENTINEL FAILOVER while `pod` keeps writing to the old master; marks and notes."""
    (slot_id,) = await pod.slots(1)
    pod.stop_following()
    old = topology.current_primary()
    new = await asyncio.to_thread(topology.failover)
    switched_s = time.monotonic()
    await asyncio.to_thread(wait_for, lambda: connected_replicas(old) == 0, "the old master alone")
    answer = await pod.lock(slot_id)
    notes["stale_pod_answer"] = (answer.status_code, answer.json().get("error", {}).get("code"))
    notes["old_master_set"] = await asyncio.to_thread(refused_write, old)
    notes["old_master_role"] = await asyncio.to_thread(old.role)
    notes["stale_pod_lock_stored"] = await asyncio.to_thread(
        holds_lock, topology.data_nodes(), slot_id
    )
    await asyncio.to_thread(topology.rejoin, old, new)  # writes need a replica
    recovered_s = await load.answered_after(switched_s)
    notes["failover_recovery_s"] = round(recovered_s - switched_s, 3)
    return {"switched": switched_s, "switch_recovered": recovered_s}


@pytest.fixture(scope="module")
def run(deployment: Deployment) -> FaultRun:
    """The whole run, once for the module: load, SIGKILL, SENTINEL FAILOVER, settle."""
    notes: dict[str, Any] = {}
    fault = kill_then_fail_over(deployment, notes)
    service = deployment.service
    result = asyncio.run(
        run_fault(service.url, deployment.pair, None, Plan(), fault, REDIS_TIMEOUT_S)
    )
    result.notes |= notes
    result.service_log = service.log()
    print(f"\nsentinel SIGKILL + SENTINEL FAILOVER: {figures(result)}")
    return result


class TestSentinelMasterKilledThenFailedOverUnderLoad(FaultUnderLoadContract):
    """A Sentinel-managed master SIGKILLed, then its successor failed over, while users book."""

    def test_service_follows_sentinel_failover(self, run: FaultRun) -> None:
        """After SENTINEL FAILOVER, writes are answered by the new master within seconds."""
        assert run.marks["switch_recovered"] - run.marks["switched"] < RECOVERY_LIMIT_S

    def test_old_master_refuses_writes_once_alone(self, run: FaultRun) -> None:
        """The old master, still a master, refuses writes: min-replicas-to-write is unmet."""
        assert run.notes["old_master_role"] == "master"
        assert "Not enough good replicas to write" in run.notes["old_master_set"]

    def test_a_pod_still_writing_to_the_old_master_gets_503_e103(self, run: FaultRun) -> None:
        """A pod that has not followed the switch gets 503 E103, and its lock is nowhere."""
        assert run.notes["stale_pod_answer"] == (503, "E103")
        assert run.notes["stale_pod_lock_stored"] is False


@dataclass(frozen=True)
class Partition:
    """What a pause of the replica did to writes."""

    unreplicated: Attempt  # a booking through the service (replica acks) during the pause
    bookings_meanwhile: int  # its slot's bookings, read during the pause
    refused: tuple[int, str | None]  # the pod's first write that was not answered 200
    refused_after_s: float  # since the pause
    refused_lock_stored: bool
    resumed_after_s: float  # since the replicas came back, until the pod's writes pass
    retry: Attempt  # the booking again, same Idempotency-Key, replicas back
    bookings_after_retry: list[Any]


@pytest.fixture(scope="module")
def partition(deployment: Deployment, run: FaultRun) -> Partition:
    """Pause (SIGSTOP) the master's replica, write, resume (SIGCONT), retry."""
    del run  # only its order: after the load run
    found = asyncio.run(pause_the_replicas(deployment))
    print(
        f"\nsentinel replica paused: booking {found.unreplicated.status} "
        f"in {found.unreplicated.latency_s:.3f} s, writes refused {found.refused} after "
        f"{found.refused_after_s:.3f} s, back {found.resumed_after_s:.3f} s after SIGCONT"
    )
    return found


async def pause_the_replicas(deployment: Deployment) -> Partition:
    """The partition story, through the service (replica acks) and a pod (min-replicas)."""
    pod = Pod(deployment.topology.url, deployment.pair)
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(session, deployment.service.url, deployment.pair)
            return await partition_story(deployment.topology, client, pod)
    finally:
        await pod.aclose()


async def partition_story(topology: SentinelTopology, client: Client, pod: Pod) -> Partition:
    """Lock, pause the replica, book (service) and lock (pod), resume, retry the booking."""
    plan = Plan(churn_slots=1, held_slots=0)
    (slot_id,) = (await prepare(client, await new_resource(client), plan)).churn
    assert (await client.lock(slot_id, "buyer", 60)).status == 200
    pod_slots = await pod.slots(40)
    primary = topology.current_primary()
    replicas = [node for node in topology.data_nodes() if node is not primary and node.running]
    paused_s = time.monotonic()
    for replica in replicas:
        assert replica.process is not None
        os.kill(replica.process.pid, signal.SIGSTOP)
    try:
        unreplicated = await client.book(slot_id, "buyer", "unreplicated-1")
        bookings = (await client.read(f"/slots/{slot_id}"))["data"]["num_bookings"]
        refused, refused_slot = await first_refusal(pod, pod_slots[:20])
        refused_after_s = time.monotonic() - paused_s
        stored = await asyncio.to_thread(holds_lock, [primary], refused_slot)
    finally:
        for replica in replicas:
            assert replica.process is not None
            os.kill(replica.process.pid, signal.SIGCONT)
    resumed_s = time.monotonic()
    await first_success(pod, pod_slots[20:])
    resumed_after_s = time.monotonic() - resumed_s
    retry = await client.book(slot_id, "buyer", "unreplicated-1", phase="settle")
    listed = (await client.read("/bookings", slot_id=slot_id))["data"]
    return Partition(
        unreplicated, bookings, refused, refused_after_s, stored, resumed_after_s, retry, listed
    )


async def first_refusal(pod: Pod, slot_ids: list[str]) -> tuple[tuple[int, str | None], str]:
    """Lock one slot after another until a lock is not answered 200; that answer, that slot."""
    for slot_id in slot_ids:
        answer = await pod.lock(slot_id)
        if answer.status_code != 200:
            return (answer.status_code, answer.json()["error"]["code"]), slot_id
        await asyncio.sleep(0.25)
    raise AssertionError("every lock was taken while the replicas were paused")


async def first_success(pod: Pod, slot_ids: list[str]) -> None:
    """Lock one slot after another until a lock is answered 200."""
    for slot_id in slot_ids:
        if (await pod.lock(slot_id)).status_code == 200:
            return
        await asyncio.sleep(0.25)
    raise AssertionError("no lock was taken after the replicas came back")


def test_a_booking_no_replica_confirmed_is_503_e103(partition: Partition) -> None:
    """With replica acks on and the replica paused, a booking is not acknowledged: 503 E103."""
    attempt = partition.unreplicated
    assert (attempt.status, attempt.code) == (503, "E103")
    assert attempt.latency_s < REDIS_TIMEOUT_S + 0.5


def test_a_master_cut_off_from_its_replicas_refuses_writes(partition: Partition) -> None:
    """Once its replicas lag past min-replicas-max-lag, writes are 503 E103 and not applied."""
    assert partition.refused == (503, "E103")
    assert partition.refused_after_s < MIN_REPLICAS_MAX_LAG_S + 2.5
    assert partition.refused_lock_stored is False


def test_writes_resume_when_the_replicas_return(partition: Partition) -> None:
    """Resumed replicas catch up and writes pass again within seconds, with no restart."""
    assert partition.resumed_after_s < RECOVERY_LIMIT_S


def test_retry_returns_the_booking_no_replica_had_confirmed(partition: Partition) -> None:
    """That booking was made on the master; its retry returns it, and makes no second one."""
    assert partition.bookings_meanwhile == 1
    assert partition.retry.status == 200, partition.retry
    assert [b["id"] for b in partition.bookings_after_retry] == [partition.retry.booking_id]
