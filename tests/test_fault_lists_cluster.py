"""Lists on a 3-primary Redis Cluster: every list script stays within its resource's shard.

The list scripts read the page's records by name prefix (see the README's Lists),
so this checks on a real Cluster that no read crosses a slot, and that lists over
resources on several shards merge right.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from service.app import create_app
from service.connect import redis_from_settings
from service.settings import Settings
from tests.api import Api
from tests.list_world import build, check_every_list
from tests.test_bookings import ManualClock
from tests.topologies import ClusterTopology


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterTopology]:
    """One healthy cluster."""
    with ClusterTopology.started(tmp_path_factory.mktemp("cluster")) as topology:
        yield topology


def test_every_list_equals_brute_force_on_a_cluster(cluster: ClusterTopology) -> None:
    """Every filter, page and total of every list, with resources on their own shards."""
    clock = ManualClock()
    settings = Settings(redis_url=cluster.url, key_cache_s=0.0)
    app = create_app(settings, redis_from_settings(settings), clock, owns_redis=True)
    with TestClient(app, raise_server_exceptions=True) as client:
        assert client.portal is not None
        environment = f"test-{secrets.token_hex(4)}"
        pair = client.portal.call(app.services.keys.create_pair, environment)
        api = Api(client, pair, app)
        world = build(api, clock)
        check_every_list(api, world, limits=(5,))
