"""A Redis outage under a running service: fast 503s, then recovery without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api import error_of
from tests.live import LiveApi, LiveService, create_keys, lock_body, wait_for
from tests.redis_servers import RedisServer

# Every write fsynced, so a SIGKILL loses nothing: after the restart the keys and
# slots are still there, and only the outage itself is under test.
DURABLE = ["--appendonly", "yes", "--appendfsync", "always"]


@pytest.fixture
def redis_to_kill(tmp_path: Path) -> Iterator[RedisServer]:
    """A durable redis-server of this test's own."""
    server = RedisServer.start_new(tmp_path / "redis", DURABLE)
    yield server
    server.stop()


@pytest.fixture
def live(redis_to_kill: RedisServer, tmp_path: Path) -> Iterator[LiveApi]:
    """`slotlock serve` on that Redis, with a key pair."""
    service = LiveService(tmp_path / "slotlock.log", REDIS_URL=redis_to_kill.url)
    service.start()
    client = LiveApi(service, create_keys(redis_to_kill.url))
    yield client
    client.close()
    service.stop()


def lock_status(live: LiveApi, slot_id: str, lock_key: str) -> int:
    """The status of one lock attempt."""
    path = f"/slots/{slot_id}/lock"
    return live.call("POST", path, lock_body(lock_key, 60), key="public").status_code


def test_redis_outage_is_a_fast_503_and_heals_without_restart(
    live: LiveApi, redis_to_kill: RedisServer
) -> None:
    """Redis killed: a lock is 503 E103 with Retry-After in under 2 s; Redis back: 200 again."""
    slot = live.published_slot()
    redis_to_kill.kill()

    started = time.monotonic()
    response = live.call("POST", f"/slots/{slot['id']}/lock", lock_body("k", 60), key="public")
    assert time.monotonic() - started < 2.0
    assert error_of(response) == (503, "E103")
    assert int(response.headers["retry-after"]) >= 1
    assert live.call("GET", "/readyz").status_code == 503
    assert live.call("GET", "/healthz").status_code == 200

    redis_to_kill.start()
    assert wait_for(lambda: lock_status(live, slot["id"], "k") == 200, timeout_s=10, step_s=0.2)
    assert live.call("GET", "/readyz").status_code == 200
    assert live.service.process is not None
    assert live.service.process.poll() is None


def test_outage_is_logged_once_and_its_end_too(live: LiveApi, redis_to_kill: RedisServer) -> None:
    """Many failed requests in one outage give one "unreachable" line and one "again" line."""
    slot = live.published_slot()
    redis_to_kill.kill()
    for _ in range(5):
        live.call("GET", f"/slots/{slot['id']}")
    redis_to_kill.start()
    assert wait_for(lambda: live.call("GET", f"/slots/{slot['id']}").status_code == 200, 10, 0.2)
    # The end is logged once calls went OutageLog.QUIET_S without a failure, and the
    # service flushes its log a moment after writing it: poll for the last line.
    assert wait_for(lambda: "redis reachable again" in live.service.log(), timeout_s=6)
    log = live.service.log()
    assert log.count("redis unreachable:") == 1
    assert log.count("redis reachable again") == 1
