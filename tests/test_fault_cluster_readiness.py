"""Cluster readiness with one shard gone: the pod stays ready for the shards that answer."""

from __future__ import annotations

import time
from pathlib import Path

from service import keyspace
from tests.api import error_of
from tests.live import LiveApi, LiveService, create_keys, lock_body, wait_for
from tests.topologies import ClusterTopology, Node


def replica_of(cluster: ClusterTopology, primary: Node) -> Node:
    """The replica that follows `primary`."""
    for node in cluster.live():
        if node.role() == "slave":
            with node.client() as client:
                if int(client.info("replication")["master_port"]) == primary.port:
                    return node
    raise LookupError(f"no replica follows {primary.port}")


def resource_on(live: LiveApi, cluster: ClusterTopology, wanted: set[int]) -> dict[str, str]:
    """A new published resource with a slot, on a shard whose primary listens in `wanted`."""
    for _ in range(200):
        resource = live.ok("POST", "/resources", {"name": "Sharded room"})
        if cluster.primary_of_key(keyspace.resource(resource["id"])).port in wanted:
            live.ok("POST", f"/resources/{resource['id']}/publish")
            start = time.time() + 86_400
            body = {
                "resource_id": resource["id"],
                "start_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
                "end_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 1800)),
                "capacity": 1,
            }
            slot = live.ok("POST", "/slots", body)
            return {"id": resource["id"], "slot_id": slot["id"]}
    raise LookupError("no resource landed on the wanted shard")


def test_one_shard_down_keeps_the_pod_ready_and_fails_only_its_slots(tmp_path: Path) -> None:
    """A shard with no node left: /readyz stays 200, its resources get 503, the others 200."""
    full_coverage_off = ("--cluster-require-full-coverage", "no")
    with ClusterTopology.started(tmp_path / "cluster", full_coverage_off) as cluster:
        pair = create_keys(cluster.url)
        service = LiveService(tmp_path / "slotlock.log", REDIS_URL=cluster.url)
        service.start()
        live = LiveApi(service, pair)
        try:
            keys_port = cluster.primary_of_key(keyspace.api_keys_index()).port
            others = {node.port for node in cluster.primaries()} - {keys_port}
            doomed = resource_on(live, cluster, others)
            doomed_primary = cluster.primary_of_key(keyspace.resource(doomed["id"]))
            alive = resource_on(live, cluster, others - {doomed_primary.port})
            replica = replica_of(cluster, doomed_primary)
            cluster.kill(replica)  # first, so that nothing takes over the shard
            cluster.kill(doomed_primary)

            def failed_over_to_nothing() -> bool:
                response = live.call("GET", f"/resources/{doomed['id']}")
                return response.status_code == 503

            assert wait_for(failed_over_to_nothing, timeout_s=15, step_s=0.2)
            time.sleep(2 * 1.0)  # cluster-node-timeout passes: live nodes mark it failed
            for _ in range(5):
                assert live.call("GET", "/readyz").status_code == 200
                assert live.call("GET", f"/resources/{alive['id']}").status_code == 200
                path = f"/slots/{alive['slot_id']}/lock"
                assert live.call("POST", path, lock_body("k", 60), key="public").status_code == 200
                down = live.call("GET", f"/resources/{doomed['id']}")
                assert error_of(down) == (503, "E103")
                assert int(down.headers["retry-after"]) >= 1
            assert wait_for(lambda: "does not answer" in service.log(), timeout_s=3)
            assert service.log().count(f"cluster primary 127.0.0.1:{doomed_primary.port}") == 1
        finally:
            live.close()
            service.stop()
