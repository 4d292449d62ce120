"""Event streams on Redis Cluster: resources on different shards, one reader per pod."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import LiveApi, LiveService, create_keys, lock_body
from tests.test_events import in_thread, new_resource, new_slot, run, stream
from tests.topologies import ClusterTopology

RESOURCES = 6


@pytest.fixture(scope="module")
def cluster_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """`slotlock serve` on a three-primary cluster, with a key pair."""
    with ClusterTopology.started(tmp_path_factory.mktemp("events-cluster")) as topology:
        service = LiveService(
            Path(tmp_path_factory.mktemp("pod")) / "slotlock.log", REDIS_URL=topology.url
        )
        service.start()
        api = LiveApi(service, create_keys(topology.url))
        try:
            yield api
        finally:
            api.close()
            service.stop()


@pytest.mark.slow
def test_streams_of_resources_on_every_shard_get_their_events(cluster_live: LiveApi) -> None:
    """Watched resources spread over the shards each see their own lock and lock end."""
    resources = [new_resource(cluster_live) for _ in range(RESOURCES)]
    slots = {resource_id: new_slot(cluster_live, resource_id) for resource_id in resources}

    async def body() -> None:
        async with contextlib.AsyncExitStack() as opened:
            readers = [
                await opened.enter_async_context(stream(cluster_live, rid)) for rid in resources
            ]
            for resource_id in resources:
                path = f"/slots/{slots[resource_id]['id']}/lock"
                await in_thread(cluster_live.ok, "POST", path, lock_body("k", 0.8), key="public")
            for reader, resource_id in zip(readers, resources, strict=True):
                events = await reader.wait_for(2, timeout_s=4)
                assert [e.type for e in events] == ["slot.locked", "slot.unlocked"]
                assert {e.data["slot"]["id"] for e in events} == {slots[resource_id]["id"]}
            await asyncio.sleep(0.2)

    run(body)
