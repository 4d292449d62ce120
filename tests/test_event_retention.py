"""A resource's change stream keeps its last 10,000 events and at least its last hour."""

from __future__ import annotations

import time

import pytest

from service import keyspace
from tests.api import Api

KEPT = 10_000


def fill(api: Api, key: str, count: int, age_s: float) -> None:
    """Put `count` events `age_s` old into the stream, as if written then."""
    assert api.client.portal is not None
    redis = api.app.services.redis
    first_ms = int((time.time() - age_s) * 1000)

    async def write() -> None:
        pipe = redis.pipeline(transaction=False)
        for n in range(count):
            pipe.xadd(key, {"type": "slot.updated", "data": "{}"}, id=f"{first_ms}-{n + 1}")
        await pipe.execute()

    api.client.portal.call(write)


def stream_length(api: Api, key: str) -> int:
    """XLEN of the stream."""
    assert api.client.portal is not None
    found: int = api.client.portal.call(api.app.services.redis.xlen, key)
    return found


@pytest.mark.parametrize("redis_client", ["redis-server"], indirect=True)
def test_events_older_than_an_hour_beyond_10000_are_trimmed(api: Api) -> None:
    """Past 11,000 entries, those both beyond the last 10,000 and older than an hour go."""
    resource = api.resource()
    key = keyspace.events(resource["id"])
    fill(api, key, KEPT + 1000, age_s=7200)
    slot = api.slot(resource["id"])  # its slot.created passes 11,000: a trim to 10,000
    assert stream_length(api, key) == KEPT
    assert api.lock(slot["id"], "k").status_code == 200
    assert stream_length(api, key) == KEPT + 1  # the next trim waits for 1,000 more


@pytest.mark.parametrize("redis_client", ["redis-server"], indirect=True)
def test_events_of_the_last_hour_stay_however_many(api: Api) -> None:
    """11,000 events of the last ten minutes all stay: the hour wins over the count."""
    resource = api.resource()
    key = keyspace.events(resource["id"])
    fill(api, key, KEPT + 1000, age_s=600)
    slot = api.slot(resource["id"])
    assert api.lock(slot["id"], "k").status_code == 200
    assert stream_length(api, key) == KEPT + 1002  # + slot.created + slot.locked


@pytest.mark.parametrize("redis_client", ["redis-server"], indirect=True)
def test_a_busy_stream_of_the_last_hour_is_scanned_once_per_1000_appends(api: Api) -> None:
    """Past 11,000 events all of the last hour, appends do not each look for old ones."""
    resource = api.resource()
    key = keyspace.events(resource["id"])
    fill(api, key, KEPT + 1000, age_s=600)
    slot = api.slot(resource["id"])  # 11,001: looks, finds nothing older than the hour
    server = api.app.services.redis
    assert api.client.portal is not None
    api.client.portal.call(server.config_resetstat)
    for n in range(10):  # 20 more events
        assert api.lock(slot["id"], f"k{n}").status_code == 200
        assert api.unlock(slot["id"], f"k{n}").status_code == 200
    scans = api.client.portal.call(server.info, "commandstats").get("cmdstat_xrange", {})
    assert scans.get("calls", 0) == 0
    assert stream_length(api, key) == KEPT + 1021
