"""The `slotlock` command: key management, settings errors, and serving on embedded Redis."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis
from starlette.testclient import TestClient

from service.app import create_app
from service.embedded import ping
from service.settings import Settings
from service.store.api_keys import KeyPair
from tests.api import Api, error_of
from tests.live import LiveApi, LiveService, create_keys, slotlock, wait_for
from tests.redis_servers import RedisServer

KEY_FORM = {
    "public_key": re.compile(r"^pk_[0-9a-f]{64}$"),
    "secret_key": re.compile(r"^sk_[0-9a-f]{64}$"),
}


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's real Redis, emptied for this test."""
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture
def app_on(redis_server: RedisServer, redis_url: str) -> Iterator[Api]:
    """The app in-process on the same Redis as the CLI, with no key cache; no keys of its own."""
    client = Redis(port=redis_server.port, decode_responses=True, socket_timeout=2)
    app = create_app(Settings(key_cache_s=0.0), client, owns_redis=True)  # closed after its jobs
    with TestClient(app, raise_server_exceptions=False) as http:
        yield Api(http, create_keys(redis_url, "unused"), app)


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[LiveService]:
    """`slotlock serve` without REDIS_URL, its data directory in tmp_path."""
    service = LiveService(tmp_path / "serve.log", SLOTLOCK_DATA_DIR=str(tmp_path / "data"))
    service.start()
    yield service
    service.stop()


def test_keys_create_prints_one_json_object(redis_url: str) -> None:
    """`keys create` prints exactly one JSON object: the environment and both keys."""
    done = slotlock("keys", "create", "--environment", "shop", REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    pair = json.loads(lines[0])
    assert set(pair) == {"environment", "public_key", "secret_key"}
    assert pair["environment"] == "shop"
    for name, form in KEY_FORM.items():
        assert form.match(pair[name]), pair[name]


def test_keys_create_gives_new_keys_each_time(redis_url: str) -> None:
    """Two pairs of one environment share no key."""
    first, second = create_keys(redis_url, "shop"), create_keys(redis_url, "shop")
    assert {first.public_key, first.secret_key}.isdisjoint({second.public_key, second.secret_key})


def test_created_keys_work(app_on: Api, redis_url: str) -> None:
    """A pair from `keys create` authenticates against the service in its environment."""
    pair = create_keys(redis_url, "shop")
    headers = {"authorization": f"Bearer {pair.secret_key}"}
    created = app_on.client.post("/resources", json={"name": "x"}, headers=headers)
    assert created.status_code == 200


def test_keys_list_shows_the_pair_without_the_keys(redis_url: str) -> None:
    """`keys list` shows one row per key, its environment and scope, but not the key."""
    pair = create_keys(redis_url, "shop")
    done = slotlock("keys", "list", REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted((row["environment"], row["scope"], row["state"]) for row in rows) == [
        ("shop", "public", "active"),
        ("shop", "secret", "active"),
    ]
    assert len({row["pair_id"] for row in rows}) == 1
    assert pair.public_key not in done.stdout
    assert pair.secret_key not in done.stdout
    assert pair.secret_key[3:] not in done.stdout


def test_keys_revoke_makes_the_key_stop_working(app_on: Api, redis_url: str) -> None:
    """After `keys revoke <key>`, the service refuses that key with 401 E055."""
    pair = create_keys(redis_url, "shop")
    headers = {"authorization": f"Bearer {pair.secret_key}"}
    assert app_on.client.get("/resources", headers=headers).status_code == 200
    done = slotlock("keys", "revoke", pair.secret_key, REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr
    assert error_of(app_on.client.get("/resources", headers=headers)) == (401, "E055")


def test_keys_revoke_shows_in_the_list(redis_url: str) -> None:
    """A revoked key is listed as revoked; its pair stays active."""
    pair = create_keys(redis_url, "shop")
    slotlock("keys", "revoke", pair.public_key, REDIS_URL=redis_url)
    rows = [
        json.loads(line)
        for line in slotlock("keys", "list", REDIS_URL=redis_url).stdout.splitlines()
    ]
    assert {row["scope"]: row["state"] for row in rows} == {"public": "revoked", "secret": "active"}


def test_keys_revoke_of_an_unknown_key_fails(redis_url: str) -> None:
    """Revoking a key that does not exist exits non-zero and says so."""
    done = slotlock("keys", "revoke", "sk_" + "0" * 64, REDIS_URL=redis_url)
    assert done.returncode != 0
    assert "no such key" in done.stderr


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("SLOTLOCK_MAX_LOCK_S", "an hour"),
        ("SLOTLOCK_RATE_LIMIT_PUBLIC", "fast"),
        ("SLOTLOCK_LOG_LEVEL", "LOUD"),
    ],
)
def test_serve_with_a_bad_setting_exits_naming_it(name: str, raw: str, redis_url: str) -> None:
    """`slotlock serve` with an unusable SLOTLOCK_* value exits non-zero, naming the variable."""
    done = slotlock("serve", "--port", "1", REDIS_URL=redis_url, **{name: raw})
    assert done.returncode != 0
    assert name in done.stderr


def test_keys_with_a_bad_setting_exits_naming_it(redis_url: str) -> None:
    """The keys commands check the settings too, before touching Redis."""
    done = slotlock("keys", "list", REDIS_URL=redis_url, SLOTLOCK_MAX_BODY_BYTES="-5")
    assert done.returncode != 0
    assert "SLOTLOCK_MAX_BODY_BYTES" in done.stderr


def test_keys_without_redis_url_or_a_running_server_fails(tmp_path: Path) -> None:
    """With no REDIS_URL and no embedded server running, `keys` says what to do."""
    done = slotlock("keys", "list", SLOTLOCK_DATA_DIR=str(tmp_path))
    assert done.returncode != 0
    assert "REDIS_URL" in done.stderr


def test_serve_without_redis_url_runs_an_embedded_redis(embedded: LiveService) -> None:
    """Without REDIS_URL, `serve` starts its own redis-server, says so, and gets ready."""
    assert embedded.ready()
    # The service flushes its log a moment after writing it: poll for the line.
    assert wait_for(lambda: "embedded redis-server" in embedded.log(), timeout_s=3)


def test_keys_reach_the_embedded_redis(embedded: LiveService, tmp_path: Path) -> None:
    """`keys create` without REDIS_URL uses the running embedded server; the keys work."""
    done = slotlock(
        "keys", "create", "--environment", "dev", SLOTLOCK_DATA_DIR=str(tmp_path / "data")
    )
    assert done.returncode == 0, done.stderr
    pair = json.loads(done.stdout)
    live = LiveApi(embedded, KeyPair(**pair))
    try:
        assert live.call("POST", "/resources", {"name": "x"}).status_code == 200
    finally:
        live.close()


def test_sigterm_stops_the_service_and_its_embedded_redis(
    embedded: LiveService, tmp_path: Path
) -> None:
    """After SIGTERM the service exits, and the redis-server it started is gone too."""
    socket_path = tmp_path / "data" / "redis.sock"
    with redis.Redis(unix_socket_path=str(socket_path), socket_timeout=2) as client:
        redis_pid = int(client.info("server")["process_id"])
    embedded.signal(signal.SIGTERM)
    assert embedded.process is not None
    try:
        embedded.process.wait(timeout=15)
        assert wait_for(lambda: not alive(redis_pid), timeout_s=5)
        assert not ping(socket_path)
    finally:
        if alive(redis_pid):
            os.kill(redis_pid, signal.SIGKILL)  # left behind by a failure: do not leak it


def alive(pid: int) -> bool:
    """Whether a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
