"""The service on a 3-primary, 3-replica Redis Cluster: flows, lost scripts, a killed primary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.crc import key_slot

from service import keyspace
from service.scripts import Scripts
from tests.api import Api, from_now, iso
from tests.flows import (
    Outages,
    api_on,
    check_lock_cycle,
    check_slots_flow,
    concurrently,
    create_slots,
    listed,
)
from tests.topologies import ClusterTopology, Node


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterTopology]:
    """One healthy cluster for the tests that leave its topology as they found it."""
    with ClusterTopology.started(tmp_path_factory.mktemp("cluster")) as topology:
        yield topology


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[ClusterTopology]:
    """A cluster of the test's own, for a test that kills one of its nodes."""
    with ClusterTopology.started(tmp_path / "cluster") as topology:
        yield topology


def shas(api: Api) -> list[str]:
    """The SHA1 of every script the app registered."""
    scripts: Scripts = api.app.services.scripts
    return [script.sha for script in scripts.all()]


def holds_scripts(node: Node, wanted: list[str]) -> bool:
    """Whether `node` has every script in `wanted` in its script cache."""
    with node.client() as client:
        return all(client.script_exists(*wanted))


def primary_of_resource(cluster: ClusterTopology, resource_id: str) -> Node:
    """The primary that holds a resource and everything it owns."""
    return cluster.primary_of_key(keyspace.resource(resource_id))


def resources_on_shards(api: Api, cluster: ClusterTopology, count: int) -> dict[int, str]:
    """One new resource on each of `count` shards (by primary port); extra draws are deleted."""
    placed: dict[int, str] = {}
    while len(placed) < count:  # a resource's shard is that of its random home tag
        resource_id = api.resource()["id"]
        port = primary_of_resource(cluster, resource_id).port
        if port in placed:
            api.ok("DELETE", f"/resources/{resource_id}")
        else:
            placed[port] = resource_id
    return placed


def test_flow_works_on_cluster(cluster: ClusterTopology) -> None:
    """Resources, single and bulk slots, lists and the lock cycle work on every shard."""
    with api_on(cluster.url) as api:
        every = []
        for resource_id in resources_on_shards(api, cluster, 3).values():
            every += check_slots_flow(api, resource_id)
        # The environment's index, then slots read by pipelines that span all three shards.
        assert sorted(listed(api, limit="50")) == sorted(every)


def test_preload_puts_every_script_on_every_primary(cluster: ClusterTopology) -> None:
    """Start-up loads every script on each of the three primaries, and /readyz sees them."""
    with api_on(cluster.url) as api:
        wanted = shas(api)
        assert [holds_scripts(node, wanted) for node in cluster.primaries()] == [True] * 3
        assert api.call("GET", "/readyz", key="none").status_code == 200


def test_lock_works_after_script_flush_on_every_node(cluster: ClusterTopology) -> None:
    """After SCRIPT FLUSH everywhere, locks work at once and /readyz reloads every primary."""
    with api_on(cluster.url) as api:
        resource_id = api.resource()["id"]
        slot_ids = create_slots(api, resource_id)
        cluster.flush_scripts()
        check_lock_cycle(api, slot_ids[0])  # NOSCRIPT, then the source: never a 500
        cluster.flush_scripts()
        assert api.call("GET", "/readyz", key="none").status_code == 200
        wanted = shas(api)
        assert [holds_scripts(node, wanted) for node in cluster.primaries()] == [True] * 3


def test_bookings_reschedule_across_shards(cluster: ClusterTopology) -> None:
    """Book with the lock, replay by Idempotency-Key, move to another shard, delete: no 500."""
    with api_on(cluster.url) as api:
        source, target = resources_on_shards(api, cluster, 2).values()
        source_slots, target_slots = create_slots(api, source), create_slots(api, target)
        assert api.lock(source_slots[0], "buyer").status_code == 200
        body = {"slot_id": source_slots[0], "lock_key": "buyer"}
        once = {"idempotency-key": "checkout-1"}
        booked = api.call("POST", "/bookings", body, key="public", headers=once)
        assert booked.status_code == 200, booked.text
        replay = api.call("POST", "/bookings", body, key="public", headers=once)
        assert replay.text == booked.text
        booking_id = booked.json()["data"]["id"]
        move = {"target_slot_id": target_slots[0]}
        moved = api.ok("POST", f"/bookings/{booking_id}/reschedule", move, key="public")
        assert moved["slot_id"] == target_slots[0]
        assert api.ok("GET", f"/bookings/{booking_id}", key="public")["resource_id"] == target
        for resource_id in (source, target):
            api.ok("DELETE", f"/resources/{resource_id}")


def test_concurrent_locks_on_every_shard_after_script_flush(cluster: ClusterTopology) -> None:
    """Locks sent at once to slots on all three shards, with no script loaded, all succeed."""
    with api_on(cluster.url) as api:
        every = []
        for resource_id in resources_on_shards(api, cluster, 3).values():
            every += create_slots(api, resource_id)
        cluster.flush_scripts()
        until = iso(from_now(minutes=5))
        locks = [
            ("POST", f"/slots/{i}/lock", {"lock_key": "k", "lock_until": until}) for i in every
        ]
        assert [response.status_code for response in concurrently(api, locks)] == [200] * len(every)
        unlocks = [("POST", f"/slots/{i}/unlock", {"lock_key": "k"}) for i in every]
        replies = concurrently(api, unlocks)
        assert [reply.json()["data"]["locked_until"] for reply in replies] == [None] * len(every)


def test_locks_survive_a_killed_primary(own_cluster: ClusterTopology) -> None:
    """SIGKILL the primary of a resource: once its replica is promoted, lists and locks work."""
    cluster = own_cluster
    with api_on(cluster.url) as api:
        keys_primary = cluster.primary_of_key(keyspace.api_keys_index())
        resource_id = api.resource()["id"]
        while primary_of_resource(cluster, resource_id) is keys_primary:
            resource_id = api.resource()["id"]  # keep authentication off the killed node
        slot_ids = create_slots(api, resource_id)
        victim = primary_of_resource(cluster, resource_id)
        cluster.wait_replicated(victim)
        cluster.kill(victim)
        promoted = cluster.wait_for_new_primary(
            key_slot(keyspace.resource(resource_id).encode()), victim
        )
        outages = Outages()
        # Only pipelines touch the dead node here: the client must still find the new primary.
        found = outages.through(
            lambda: api.call("GET", "/slots", params={"resource_id": resource_id})
        )
        assert [slot["id"] for slot in found.json()["data"]] == slot_ids
        assert outages.count <= 1
        assert not holds_scripts(promoted, shas(api))  # a promoted replica starts empty
        for slot_id in slot_ids:
            check_lock_cycle(api, slot_id)  # NOSCRIPT recovered inside the client
        scripts: Scripts = api.app.services.scripts
        used = [scripts.lock_slot.sha, scripts.unlock_slot.sha, scripts.read_slot.sha]
        assert holds_scripts(promoted, used)  # loaded there by the fallback
        cluster.restart(victim)  # it comes back as the replica of the promoted one
        cluster.wait_until_healthy()
        assert victim.role() == "slave"
        check_lock_cycle(api, slot_ids[0])
