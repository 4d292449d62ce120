"""The service behind Redis Sentinel: the flow, and a failover it follows to the new master."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service import keyspace
from service.connect import ConnectionOptions
from service.redis_clients import FollowingSentinelPool
from tests.flows import Outages, api_on, check_flow, check_lock_cycle, listed
from tests.topologies import SENTINEL_PASSWORD, Node, SentinelTopology

OPTIONS = ConnectionOptions(sentinel_password=SENTINEL_PASSWORD)


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelTopology]:
    """A primary, a replica and three Sentinels of the test's own."""
    with SentinelTopology.started(tmp_path / "sentinel") as topology:
        yield topology


def holds_lock(node: Node, slot_id: str) -> bool:
    """Whether `node` has the slot's lock key."""
    with node.client() as client:
        return bool(client.exists(keyspace.lock(slot_id)))


def test_flow_and_failover_on_sentinel(sentinels: SentinelTopology) -> None:
    """The flow works on the master; after SENTINEL FAILOVER, writes go to the new master."""
    with api_on(sentinels.url, OPTIONS) as api:
        resource_id, slot_ids = check_flow(api)
        old = sentinels.current_primary()
        new = sentinels.failover()
        assert new is not old
        assert old.role() == "master"  # not demoted yet: it would still take writes
        time.sleep(FollowingSentinelPool.RECHECK_S)
        outages = Outages()
        response = outages.through(lambda: api.lock(slot_ids[0], "key-a"))
        assert response.status_code == 200, response.text
        assert outages.count == 0
        assert holds_lock(new, slot_ids[0])  # not on the old master, whose writes are lost
        if old.role() == "master":  # a Sentinel demotes it 8 to 10 s after the switch
            assert not holds_lock(old, slot_ids[0])
        assert api.unlock(slot_ids[0], "key-a").status_code == 200
        assert listed(api, resource_id=resource_id) == slot_ids  # nothing was lost
        for slot_id in slot_ids:
            check_lock_cycle(api, slot_id)
        check_flow(api)


def test_service_recovers_when_the_master_is_killed(sentinels: SentinelTopology) -> None:
    """SIGKILL the master: once the Sentinels promote the replica, the service works there."""
    with api_on(sentinels.url, OPTIONS) as api:
        resource_id, slot_ids = check_flow(api)
        old = sentinels.current_primary()
        sentinels.wait_replicated(old)
        sentinels.kill(old)
        new = sentinels.wait_for_new_primary(old)
        outages = Outages()
        response = outages.through(lambda: api.lock(slot_ids[0], "key-a"))
        assert response.status_code == 200, response.text
        assert outages.count <= 2  # the dropped connection, at most once more while it moves
        assert holds_lock(new, slot_ids[0])
        assert api.unlock(slot_ids[0], "key-a").status_code == 200
        assert listed(api, resource_id=resource_id) == slot_ids
        check_flow(api)
