"""The start-up migration: data laid out as the previous version wrote it gets its list indexes.

The previous version used the same keys with one plain index per kind (every score a
sort key), no lock ends, no change streams, no per-name resource indexes and no revisions. Data
built through the service is brought back to exactly that layout, then new app
instances start on it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from redis.asyncio import Redis
from starlette.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from service.store.bands import sort_key_of
from service.store.migration import ListIndexMigration
from tests.api import Api
from tests.list_world import World, build, check_every_list
from tests.redis_servers import RedisServer
from tests.test_bookings import ManualClock, open_api

_PLAIN_INDEXES = (":slots", ":bookings", ":resources")
_NEW_KEYS = (":lock-ends", ":events", ":resource-index", ":resource-changes", "{migrations}")


def scored(client: redis.Redis, key: str) -> list[tuple[str, float]]:
    """A sorted set's members with their scores."""
    entries: list[tuple[str, float]] = client.zrange(key, 0, -1, withscores=True)  # type: ignore[assignment]
    return entries


def previous_layout(client: redis.Redis) -> None:
    """Rewrite the data as the previous version kept it (what its scripts wrote)."""
    for key in list(client.scan_iter("sl:*", count=1000)):
        kind = client.type(key)
        if any(part in key for part in _NEW_KEYS) or ":resources:name:" in key:
            client.delete(key)
        elif kind == "zset" and (key.endswith(_PLAIN_INDEXES) or ":slot-bookings:" in key):
            client.zadd(key, {member: sort_key_of(score) for member, score in scored(client, key)})
        elif kind == "hash" and key.endswith(":resource"):
            client.hdel(key, "revision", "index_version")


@pytest.fixture
def legacy(redis_server: RedisServer) -> tuple[World, Any, ManualClock]:
    """A world written through the service, then laid out as the previous version had it."""
    redis_server.client().flushall()
    clock = ManualClock()
    session = open_api(
        Redis(port=redis_server.port, decode_responses=True), Settings(key_cache_s=0.0), clock
    )
    api = next(session)
    world = build(api, clock)
    pair = api.pair
    for _ in session:
        pass
    previous_layout(redis_server.client())
    return world, pair, clock


def start_together(server: RedisServer, clock: ManualClock, count: int) -> list[TestClient]:
    """`count` app instances on one Redis, their start-ups (and so migrations) at once."""
    clients = [
        TestClient(
            create_app(
                Settings(key_cache_s=0.0),
                Redis(port=server.port, decode_responses=True, socket_timeout=5),
                clock,
                owns_redis=True,
            ),
            raise_server_exceptions=False,
        )
        for _ in range(count)
    ]
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda client: client.__enter__(), clients))
    return clients


@pytest.fixture
def two_pods(
    redis_server: RedisServer, legacy: tuple[World, Any, ManualClock]
) -> Iterator[list[Api]]:
    """Two instances of the new version started at once on the previous version's data."""
    _, pair, clock = legacy
    clients = start_together(redis_server, clock, 2)
    yield [Api(client, pair, client.app) for client in clients]  # type: ignore[arg-type]
    for client in clients:
        client.__exit__(None, None, None)


def test_the_previous_layout_has_no_list_indexes(
    redis_server: RedisServer, legacy: tuple[World, Any, ManualClock]
) -> None:
    """The fixture really is the old layout: plain scores, no lock ends, no marker."""
    client = redis_server.client()
    world, _, _ = legacy
    assert not list(client.scan_iter("*:lock-ends"))
    assert not list(client.scan_iter("sl:{migrations}:*"))
    scores = [score for key in client.scan_iter("*:slots") for _, score in scored(client, key)]
    assert len(scores) == len(world.slot_ids)
    assert all(sort_key_of(score) == score for score in scores)


def test_two_pods_starting_at_once_build_indexes_every_list_trusts(
    two_pods: list[Api], legacy: tuple[World, Any, ManualClock], caplog: pytest.LogCaptureFixture
) -> None:
    """After two instances migrated at once, every list of each equals brute force."""
    world, _, _ = legacy
    for api in two_pods:
        check_every_list(api, world, limits=(4,))


def test_the_migration_logs_its_progress(
    redis_server: RedisServer,
    legacy: tuple[World, Any, ManualClock],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Start-up says how far the migration got, and a second start-up does nothing."""
    _, _, clock = legacy
    with caplog.at_level(logging.INFO, logger="slotlock.migration"):
        (first,) = start_together(redis_server, clock, 1)
        first.__exit__(None, None, None)
        said = caplog.text
        caplog.clear()
        (second,) = start_together(redis_server, clock, 1)
        second.__exit__(None, None, None)
    assert "1 of 1 environments done (42 slots so far)" in said
    assert "built, 42 slots" in said
    assert "list indexes" not in caplog.text


class Interrupted(RuntimeError):
    """The migration's process died here."""


def test_an_interrupted_migration_resumes(
    redis_server: RedisServer,
    legacy: tuple[World, Any, ManualClock],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed after a few steps, the next start-up finishes the job and the lists are exact."""
    world, pair, clock = legacy
    monkeypatch.setattr("service.store.migration.SLOTS_PER_STEP", 3)
    original = ListIndexMigration._slots
    calls = {"count": 0}

    async def dies_on_the_second_resource(self: ListIndexMigration, resource_id: str) -> int:
        calls["count"] += 1
        if calls["count"] == 2:
            raise Interrupted("killed")
        return await original(self, resource_id)

    monkeypatch.setattr(ListIndexMigration, "_slots", dies_on_the_second_resource)
    with pytest.raises(Interrupted):
        start_together(redis_server, clock, 1)
    monkeypatch.setattr(ListIndexMigration, "_slots", original)
    (client,) = start_together(redis_server, clock, 1)
    try:
        check_every_list(Api(client, pair, client.app), world, limits=(4,))  # type: ignore[arg-type]
    finally:
        client.__exit__(None, None, None)
