"""Idempotency-Key keeps only the answer of a request that reached its operation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient
from starlette.types import Message

from service.app import create_app
from service.settings import RateLimit, Settings
from service.store.client import RedisClient
from service.store.idempotency import IdempotencyRecords, KeptAnswer
from tests.api import Api, error_of
from tests.test_ops import metric

KEY = {"idempotency-key": "order-7"}


def kept_answers(api: Api) -> list[str]:
    """Every Idempotency-Key record in Redis."""
    redis = api.app.services.redis
    assert api.client.portal is not None
    return list(api.client.portal.call(_keys, redis))


async def _keys(redis: RedisClient) -> list[str]:
    return [key async for key in redis.scan_iter(match="sl:{idem:*")]


def test_a_malformed_body_keeps_nothing_so_the_fixed_retry_runs(api: Api) -> None:
    """400 E013 on an unknown field keeps nothing; the corrected body with the same key creates."""
    refused = api.call("POST", "/resources", {"name": "Room", "nmae": "typo"}, headers=KEY)
    assert error_of(refused) == (400, "E013")
    assert kept_answers(api) == []
    retried = api.call("POST", "/resources", {"name": "Room"}, headers=KEY)
    assert retried.status_code in (200, 201), retried.text
    assert "idempotent-replayed" not in retried.headers
    assert [resource["id"] for resource in api.ok("GET", "/resources")] == [
        retried.json()["data"]["id"]
    ]


def test_a_validation_error_keeps_nothing(api: Api) -> None:
    """A slot refused by validation before its script (bad date) keeps nothing under its key."""
    resource = api.resource()
    body = {"resource_id": resource["id"], "start_date": "soon", "end_date": "later"}
    refused = api.call("POST", "/slots", body, headers=KEY)
    assert refused.status_code in (400, 422)
    assert kept_answers(api) == []


def test_an_authentication_failure_keeps_nothing(api: Api) -> None:
    """A public key on a secret-only POST is 401 and keeps nothing under its key."""
    refused = api.call("POST", "/resources", {"name": "Room"}, key="public", headers=KEY)
    assert error_of(refused) == (401, "E015")
    assert kept_answers(api) == []


def test_an_answer_from_the_operation_is_kept_and_replayed(api: Api) -> None:
    """A refusal by the operation itself (slot full, 422 E049) is kept and replayed as it was."""
    slot = api.slot(api.resource()["id"])
    api.ok("POST", "/bookings", {"slot_id": slot["id"]}, key="public")
    first = api.call("POST", "/bookings", {"slot_id": slot["id"]}, key="public", headers=KEY)
    assert error_of(first) == (422, "E049")
    assert len(kept_answers(api)) == 1
    again = api.call("POST", "/bookings", {"slot_id": slot["id"]}, key="public", headers=KEY)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()


def test_a_replay_is_counted_under_its_route(api: Api) -> None:
    """The replayed answer is counted under its route template, not `unmatched`."""
    labels = {"route": "/resources", "method": "POST", "status": "200"}
    api.call("POST", "/resources", {"name": "Room"}, headers=KEY)
    status = str(api.call("POST", "/resources", {"name": "Room"}, headers=KEY).status_code)
    labels["status"] = status
    unmatched = {"route": "unmatched", "method": "POST", "status": status}
    before, before_unmatched = (
        metric(api, "slotlock_requests_total", **labels),
        metric(api, "slotlock_requests_total", **unmatched),
    )
    replay = api.call("POST", "/resources", {"name": "Room"}, headers=KEY)
    assert replay.headers["idempotent-replayed"] == "true"
    assert metric(api, "slotlock_requests_total", **labels) == before + 1
    assert metric(api, "slotlock_requests_total", **unmatched) == before_unmatched


@pytest.fixture
def limited_api(redis_client: RedisClient) -> Iterator[Api]:
    """The app with one public request an hour allowed per key."""
    settings = Settings(key_cache_s=0.0, rate_limit_public=RateLimit(1, 3600))
    app = create_app(settings, redis_client, owns_redis=True)  # closed after its jobs
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.portal is not None
        pair = client.portal.call(app.services.keys.create_pair, "test")
        yield Api(client, pair, app)


def test_a_rate_limited_request_keeps_nothing(limited_api: Api) -> None:
    """429 E062 keeps nothing under its key, so the retry after Retry-After runs."""
    limited_api.call("GET", "/slots", key="public")
    refused = limited_api.call(
        "POST", "/bookings", {"slot_id": "0" * 32}, key="public", headers=KEY
    )
    assert error_of(refused) == (429, "E062")
    assert kept_answers(limited_api) == []


def test_an_upload_cut_off_claims_nothing(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A POST whose client goes away mid-body is 400 E013 before its Idempotency-Key is
    claimed: so the whole retry, however soon it comes, is not refused as another body's."""
    claimed: list[str] = []
    claim = IdempotencyRecords.claim

    async def counted(records: IdempotencyRecords, record_key: str, kept: KeptAnswer) -> bool:
        claimed.append(record_key)
        return await claim(records, record_key, kept)

    monkeypatch.setattr(IdempotencyRecords, "claim", counted)
    body = b'{"name": "Room 12"}'
    assert api.client.portal is not None
    sent = api.client.portal.call(_cut_off_upload, api, body)
    assert sent[0]["status"] == 400
    assert b'"E013"' in sent[1]["body"]
    assert claimed == []
    retried = api.call("POST", "/resources", {"name": "Room 12"}, headers=KEY)
    assert retried.status_code in (200, 201), retried.text
    assert len(claimed) == 1


async def _cut_off_upload(api: Api, body: bytes) -> list[Message]:
    """POST /resources as ASGI: the first 8 bytes of `body`, then the client is gone."""
    headers = [
        (b"host", b"test"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {api.pair.secret_key}".encode()),
        (b"idempotency-key", KEY["idempotency-key"].encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/resources", "raw_path": b"/resources", "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
    }  # fmt: skip
    parts: Iterator[Message] = iter([
        {"type": "http.request", "body": body[:8], "more_body": True},
        {"type": "http.disconnect"},
    ])  # fmt: skip
    sent: list[Message] = []

    async def receive() -> Message:
        return next(parts)

    async def send(message: Message) -> None:
        sent.append(message)

    await api.app(scope, receive, send)
    return sent
