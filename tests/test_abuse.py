"""Abuse resistance: hold caps, rate limits, key rotation, secrets kept out of logs."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis
from starlette.testclient import TestClient

from service.app import create_app
from service.settings import RateLimit, Settings
from service.store.api_keys import hash_key
from service.store.client import RedisClient
from tests.api import Api, error_of
from tests.redis_servers import RedisServer


def app_api(settings: Settings, redis: RedisClient) -> Iterator[Api]:
    """An in-process app on `redis` with a fresh key pair of environment `test`."""
    app = create_app(settings, redis, owns_redis=True)  # closed after its background jobs
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.portal is not None
        pair = client.portal.call(app.services.keys.create_pair, "test")
        yield Api(client, pair, app)


@pytest.fixture
def capped_api(redis_client: RedisClient) -> Iterator[Api]:
    """The app with at most 2 slots per lock_key and public holds of at most 60 s."""
    yield from app_api(
        Settings(key_cache_s=0.0, max_locks_per_key=2, max_lock_s_public=60), redis_client
    )


def test_one_lock_key_cannot_sweep_a_resource(capped_api: Api) -> None:
    """The third slot one lock_key tries to hold is 422 E104 and stays free."""
    resource = capped_api.resource()
    slots = [capped_api.slot(resource["id"], hours_ahead=hours) for hours in (10, 11, 12)]
    assert capped_api.lock(slots[0]["id"], "sweeper", seconds=30).status_code == 200
    assert capped_api.lock(slots[1]["id"], "sweeper", seconds=30).status_code == 200
    refused = capped_api.lock(slots[2]["id"], "sweeper", seconds=30)
    assert error_of(refused) == (422, "E104")
    assert capped_api.ok("GET", f"/slots/{slots[2]['id']}")["available"] is True


def test_a_released_hold_no_longer_counts(capped_api: Api) -> None:
    """Unlocking, or booking with the key, frees room under the cap."""
    resource = capped_api.resource()
    slots = [capped_api.slot(resource["id"], hours_ahead=hours) for hours in (10, 11, 12, 13)]
    capped_api.lock(slots[0]["id"], "buyer", seconds=30)
    capped_api.lock(slots[1]["id"], "buyer", seconds=30)
    assert capped_api.unlock(slots[0]["id"], "buyer").status_code == 200
    assert capped_api.lock(slots[2]["id"], "buyer", seconds=30).status_code == 200
    booked = capped_api.call(
        "POST", "/bookings", {"slot_id": slots[1]["id"], "lock_key": "buyer"}, key="public"
    )
    assert booked.status_code == 200
    assert capped_api.lock(slots[3]["id"], "buyer", seconds=30).status_code == 200


def test_a_lock_that_ended_by_itself_no_longer_counts(capped_api: Api) -> None:
    """Under the cap of 2, a lock that ran out beside a running one leaves room for one
    more, though its slot is still listed under the key when the count reaches the cap."""
    resource = capped_api.resource()
    slots = [capped_api.slot(resource["id"], hours_ahead=hours) for hours in (10, 11, 12, 13)]
    assert capped_api.lock(slots[0]["id"], "buyer", seconds=30).status_code == 200
    assert capped_api.lock(slots[1]["id"], "buyer", seconds=1).status_code == 200
    time.sleep(1.2)
    assert capped_api.lock(slots[2]["id"], "buyer", seconds=30).status_code == 200
    refused = capped_api.lock(slots[3]["id"], "buyer", seconds=30)
    assert error_of(refused) == (422, "E104")


def test_relocking_a_held_slot_is_not_a_new_hold(capped_api: Api) -> None:
    """Extending a lock the key already holds succeeds even at the cap."""
    resource = capped_api.resource()
    slots = [capped_api.slot(resource["id"], hours_ahead=hours) for hours in (10, 11)]
    for slot in slots:
        capped_api.lock(slot["id"], "buyer", seconds=30)
    assert capped_api.lock(slots[0]["id"], "buyer", seconds=50).status_code == 200


def test_public_hold_is_capped_below_the_secret_one(capped_api: Api) -> None:
    """A public key may hold for SLOTLOCK_MAX_LOCK_S_PUBLIC; a secret key longer."""
    slot = capped_api.slot(capped_api.resource()["id"])
    assert error_of(capped_api.lock(slot["id"], "k", seconds=120)) == (422, "E100")
    assert capped_api.lock(slot["id"], "k", seconds=120, key="secret").status_code == 200


@pytest.fixture
def limited_api(redis_client: RedisClient) -> Iterator[Api]:
    """The app with 5 requests a minute for public keys and 8 for secret keys."""
    settings = Settings(
        key_cache_s=0.0,
        rate_limit_public=RateLimit(5, 60),
        rate_limit_secret=RateLimit(8, 60),
    )
    yield from app_api(settings, redis_client)


def test_over_the_limit_is_429_with_retry_after(limited_api: Api) -> None:
    """The sixth public request in a minute is 429 E062 with Retry-After."""
    answers = [limited_api.call("GET", "/resources", key="public") for _ in range(6)]
    assert [answer.status_code for answer in answers[:5]] == [200] * 5
    assert error_of(answers[5]) == (429, "E062")
    assert 1 <= int(answers[5].headers["retry-after"]) <= 60


def test_public_and_secret_keys_have_their_own_limits(limited_api: Api) -> None:
    """Exhausting the public key leaves the secret key its own budget."""
    for _ in range(5):
        limited_api.call("GET", "/resources", key="public")
    assert limited_api.call("GET", "/resources", key="secret").status_code == 200


def test_the_limit_holds_across_pods(redis_server: RedisServer) -> None:
    """Pods share counts at every flush, so a key's total across pods stays at its limit."""
    redis_server.client().flushall()
    settings = Settings(key_cache_s=0.0, rate_limit_public=RateLimit(6, 60))
    first_redis, second_redis = (Redis(port=redis_server.port, decode_responses=True) for _ in "12")
    first_pod = create_app(settings, first_redis, owns_redis=True)
    second_pod = create_app(settings, second_redis, owns_redis=True)
    with (
        TestClient(first_pod, raise_server_exceptions=False) as first,
        TestClient(second_pod, raise_server_exceptions=False) as second,
    ):
        first_portal, second_portal = first.portal, second.portal
        assert first_portal is not None
        assert second_portal is not None
        pair = first_portal.call(first_pod.services.keys.create_pair, "test")
        headers = {"authorization": f"Bearer {pair.public_key}"}

        def send(client: TestClient, count: int) -> int:
            answers = [client.get("/resources", headers=headers) for _ in range(count)]
            return sum(answer.status_code == 200 for answer in answers)

        def flush_both() -> None:
            # Twice round, so that each pod has heard the other's latest count.
            for _ in range(2):
                first_portal.call(first_pod.services.rate_limiter.flush)
                second_portal.call(second_pod.services.rate_limiter.flush)

        admitted = send(first, 4)
        flush_both()
        admitted += send(second, 1)  # the second pod meets the key here
        flush_both()
        admitted += send(second, 4)
        flush_both()
        admitted += send(first, 2)
    assert admitted == 6


def test_rotation_keeps_old_keys_for_the_overlap_only(api: Api) -> None:
    """After a rotation the old pair works during the overlap, then is refused (E055)."""
    keys = api.app.services.keys
    assert api.client.portal is not None
    old = api.pair
    records = api.client.portal.call(keys.all)
    api.client.portal.call(lambda: keys.retire(records, after_ms=1000))
    new = api.client.portal.call(keys.create_pair, "test")
    assert api.call("GET", "/resources").status_code == 200
    time.sleep(1.2)
    assert error_of(api.call("GET", "/resources")) == (401, "E055")
    api.pair = new
    assert api.call("GET", "/resources").status_code == 200
    assert old.secret_key != new.secret_key


def test_no_secret_reaches_a_log_or_a_response(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    """API keys, their hashes and lock_keys never appear in logs or error messages."""
    caplog.set_level(logging.DEBUG)
    lock_key = "LOCK-KEY-S3CRET-771"
    slot = api.slot(api.resource()["id"])
    bodies = [
        api.lock(slot["id"], lock_key).text,
        api.lock(slot["id"], "someone-else").text,
        api.unlock(slot["id"], "someone-else").text,
        api.call("POST", "/bookings", {"slot_id": slot["id"]}, key="public").text,
        api.call(
            "POST", "/bookings", {"slot_id": slot["id"], "lock_key": lock_key}, key="public"
        ).text,
        api.client.get("/resources", headers={"authorization": "Bearer sk_" + "0" * 64}).text,
    ]
    secrets = [
        api.pair.public_key,
        api.pair.secret_key,
        hash_key(api.pair.public_key),
        hash_key(api.pair.secret_key),
        lock_key,
        "0" * 64,
    ]
    logged = caplog.text + " ".join(str(vars(record)) for record in caplog.records)
    assert "request" in logged  # the scenario was logged at all
    for secret in secrets:
        assert secret not in logged
        assert all(secret not in body for body in bodies)


def test_responses_carry_hardening_headers(api: Api) -> None:
    """Every answer says no-store and nosniff, errors included."""
    for response in (api.call("GET", "/resources"), api.call("GET", "/nowhere")):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
