"""SLOTLOCK_REPLICA_ACKS: a write is acknowledged only once N replicas hold it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from starlette.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.api import Api, error_of
from tests.redis_servers import RedisServer


@pytest.fixture
def primary_and_replica(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    """A primary and one replica that has caught up with it."""
    # The primary decides when to send its snapshot: no delay keeps the sync instant.
    primary = RedisServer.start_new(tmp_path / "primary", ["--repl-diskless-sync-delay", "0"])
    replica = RedisServer.start_new(
        tmp_path / "replica", ["--replicaof", "127.0.0.1", str(primary.port)]
    )
    deadline = time.monotonic() + 10
    while primary.client().info("replication").get("slave0", {}).get("state") != "online":
        assert time.monotonic() < deadline, "the replica never connected"
        time.sleep(0.05)
    yield primary, replica
    replica.stop()
    primary.stop()


@pytest.fixture
def acked_api(primary_and_replica: tuple[RedisServer, RedisServer]) -> Iterator[Api]:
    """The app on the primary, asking one replica to confirm every write."""
    primary, _ = primary_and_replica
    # Generous: on a busy machine a replica can take a few hundred ms to confirm.
    settings = Settings(key_cache_s=0.0, replica_acks=1, redis_timeout_s=2.0)
    redis = Redis(port=primary.port, decode_responses=True, socket_timeout=2.0)
    app = create_app(settings, redis, owns_redis=True)  # closed after its background jobs
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.portal is not None
        pair = client.portal.call(app.services.keys.create_pair, "test")
        yield Api(client, pair, app)


def test_acknowledged_lock_is_on_the_replica(
    acked_api: Api, primary_and_replica: tuple[RedisServer, RedisServer]
) -> None:
    """With a replica up, a lock is answered 200 and the replica already holds it."""
    _, replica = primary_and_replica
    slot = acked_api.slot(acked_api.resource()["id"])
    assert acked_api.lock(slot["id"], "k").status_code == 200
    assert replica.client().keys("sl:*:lock:*")


def test_missing_replica_acks_answer_503(
    acked_api: Api, primary_and_replica: tuple[RedisServer, RedisServer]
) -> None:
    """With the replica gone, a write is 503 E103 with Retry-After; reads still answer."""
    _, replica = primary_and_replica
    slot = acked_api.slot(acked_api.resource()["id"])
    replica.kill()
    response = acked_api.lock(slot["id"], "k")
    assert error_of(response) == (503, "E103")
    assert "retry-after" in response.headers
    assert acked_api.call("GET", f"/slots/{slot['id']}").status_code == 200
