"""Fixtures: each behaviour test runs on fakeredis and on a real redis-server."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from starlette.testclient import TestClient

from service.app import create_app
from service.connect import redis_from_settings, transport_for
from service.fake_redis import fake_redis, install
from service.settings import Settings
from service.store.api_keys import KeyPair
from service.store.client import RedisClient
from service.store.transport import Transport
from tests.api import Api
from tests.redis_servers import RedisServer, free_port
from tests.script_faults import ScriptFaults

# The `browser` fixture (headless Chromium) for the browser test modules.
pytest_plugins = ["tests.browser"]

install()  # every fakeredis in the tests reads the scripts' `#!lua` first line, as Redis 7 does


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session, on a free port (never the machine's 6379)."""
    server = RedisServer.start_new(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(params=["fakeredis", "redis-server"])
def redis_client(request: pytest.FixtureRequest) -> RedisClient:
    """A fresh, empty Redis: fakeredis, or the real server flushed for this test."""
    if request.param == "fakeredis":
        return fake_redis()
    server: RedisServer = request.getfixturevalue("redis_server")
    server.client().flushall()
    return Redis(port=server.port, decode_responses=True, socket_timeout=2)


@pytest.fixture
def settings() -> Settings:
    """Production defaults, with no key cache so that revocation shows at once."""
    return Settings(key_cache_s=0.0)


@pytest.fixture
def api(
    request: pytest.FixtureRequest, redis_client: RedisClient, settings: Settings
) -> Iterator[Api]:
    """The app in-process with a secret and a public key of environment `test`.

    On the real server, settings name its URL, so script calls take the raw transport
    as in production (connect.transport_for); fakeredis takes redis-py's.
    """
    yield from serve(on_the_server(request, settings), redis_client)


@pytest.fixture
def api_with_faults(
    request: pytest.FixtureRequest, redis_client: RedisClient, settings: Settings
) -> Iterator[tuple[Api, ScriptFaults]]:
    """`api`, whose script calls go through ScriptFaults: a test picks a script's reply."""
    settings = on_the_server(request, settings)
    faults = ScriptFaults(transport_for(settings, redis_client))
    for api in serve(settings, redis_client, faults):
        yield api, faults


def on_the_server(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """`settings`, naming the real server's URL when the test runs on it."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("redis_client") == "redis-server":
        server: RedisServer = request.getfixturevalue("redis_server")
        return dataclasses.replace(settings, redis_url=server.url)
    return settings


def serve(
    settings: Settings, redis_client: RedisClient, transport: Transport | None = None
) -> Iterator[Api]:
    """The app on `redis_client` in a TestClient, with a key pair of environment `test`."""
    # The app closes the client as it stops, after its background jobs: closed any earlier,
    # a job's next round would open a connection that nothing closes.
    app = create_app(settings, redis_client, owns_redis=True, transport=transport)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.portal is not None
        keys = app.services.keys
        pair = client.portal.call(keys.create_pair, "test")
        yield Api(client, pair, app)


@pytest.fixture
def other_api(api: Api) -> Api:
    """The same app, with a key pair of another environment."""
    keys = api.app.services.keys
    assert api.client.portal is not None
    pair = api.client.portal.call(keys.create_pair, "other")
    return Api(api.client, pair, api.app)


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Files named *_slow_test or marked slow are what `-m 'not slow'` skips."""
    for item in items:
        if Path(str(item.fspath)).name.startswith("test_fault"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def down_api() -> Iterator[Api]:
    """The app pointed at a port where no Redis listens, with a well-formed key pair."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    settings = Settings(redis_url=url, redis_timeout_s=0.5, key_cache_s=0.0)
    redis = redis_from_settings(settings)
    app = create_app(settings, redis, owns_redis=True)  # closed after its jobs, as `api`'s
    pair = KeyPair("test", "pk_" + "a" * 64, "sk_" + "b" * 64)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, pair, app)
