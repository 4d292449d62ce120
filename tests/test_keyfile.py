"""Keys provisioned from a file (a mounted Secret): imported, kept, revoked by declaration."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from starlette.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from service.store.api_keys import KeyPair
from tests.api import Api, error_of
from tests.redis_servers import RedisServer

PAIR = KeyPair("prod", "pk_" + "1" * 64, "sk_" + "2" * 64)


def start(server: RedisServer, keys_file: Path) -> Iterator[Api]:
    """Run the app once with SLOTLOCK_KEYS_FILE, as a pod start would."""
    redis = Redis(port=server.port, decode_responses=True)
    settings = Settings(key_cache_s=0.0, keys_file=keys_file)
    app = create_app(settings, redis, owns_redis=True)  # closed after its background jobs
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, PAIR, app)


def write(path: Path, **extra: object) -> Path:
    """A key file holding PAIR (plus `extra` fields)."""
    entry = {
        "environment": PAIR.environment,
        "public_key": PAIR.public_key,
        "secret_key": PAIR.secret_key,
    }
    path.write_text(json.dumps([{**entry, **extra}]))
    return path


@pytest.fixture
def redis(redis_server: RedisServer) -> RedisServer:
    """One empty Redis shared by successive starts (each start has its own client)."""
    redis_server.client().flushall()
    return redis_server


def test_a_provisioned_pair_works_without_keys_create(redis: RedisServer, tmp_path: Path) -> None:
    """Both keys of the file authenticate in its environment right after start-up."""
    for api in start(redis, write(tmp_path / "keys.json")):
        assert api.call("GET", "/resources", key="public").status_code == 200
        assert api.call("POST", "/resources", {"name": "Room"}).status_code == 200


def test_a_restart_keeps_when_the_key_was_created(redis: RedisServer, tmp_path: Path) -> None:
    """Importing the file again at the next start changes no key's created time."""
    keys_file = write(tmp_path / "keys.json")
    created = []
    for _ in range(2):
        for api in start(redis, keys_file):
            assert api.client.portal is not None
            records = api.client.portal.call(api.app.services.keys.all)
            created.append(sorted(record.created_ms for record in records))
    assert created[0] == created[1]


def test_a_pair_marked_revoked_stops_working(redis: RedisServer, tmp_path: Path) -> None:
    """`"revoked": true` in the file revokes the pair at the next start, for good."""
    for api in start(redis, write(tmp_path / "keys.json")):
        assert api.call("GET", "/resources").status_code == 200
    for api in start(redis, write(tmp_path / "keys.json", revoked=True)):
        assert error_of(api.call("GET", "/resources")) == (401, "E055")
        assert error_of(api.call("GET", "/resources", key="public")) == (401, "E055")
