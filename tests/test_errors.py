"""The failure envelope for every kind of failure, and the headers on every response."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import httpx2 as httpx
import pytest

from service.app import create_app
from service.connect import redis_from_settings
from service.settings import Settings
from tests.api import Api, error_of
from tests.redis_servers import RedisServer

BIG_BODY = b'{"name": "' + b"x" * 70_000 + b'"}'


def boom(*args: object, **kwargs: object) -> None:
    """Stands in for a store method with a bug."""
    raise RuntimeError("secret internal detail 7d1f")


def test_unknown_route_is_404_e002(api: Api) -> None:
    """A path the service does not have is 404 E002 in the failure envelope."""
    assert error_of(api.call("GET", "/nowhere")) == (404, "E002")


def test_unknown_route_needs_no_key(api: Api) -> None:
    """An unknown route is 404 E002 even without a key."""
    assert error_of(api.call("GET", "/nowhere", key="none")) == (404, "E002")


@pytest.mark.parametrize(("method", "path"), [("PUT", "/resources"), ("POST", "/healthz")])
def test_wrong_method_is_405_e002(api: Api, method: str, path: str) -> None:
    """A known path with a method it does not take is 405 E002."""
    response = api.call(method, path, {"name": "x"})
    assert error_of(response) == (405, "E002")
    assert method in response.json()["error"]["message"]


@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_malformed_json_is_400_e013(api: Api, content: bytes) -> None:
    """A body that is not one JSON object is 400 E013."""
    headers = {"content-type": "application/json"}
    response = api.call("POST", "/resources", content=content, headers=headers)
    assert error_of(response) == (400, "E013")


def test_malformed_json_on_slots_is_400_e013(api: Api) -> None:
    """POST /slots, which reads its body in two steps, refuses broken JSON too."""
    response = api.call("POST", "/slots", content=b'{"resource_id": ')
    assert error_of(response) == (400, "E013")


def test_body_over_64_kib_is_413_e102(api: Api) -> None:
    """A body over the 64 KiB default is 413 E102, and nothing is created."""
    response = api.call("POST", "/resources", content=BIG_BODY)
    assert error_of(response) == (413, "E102")
    assert api.ok("GET", "/resources") == []


def test_streamed_body_over_64_kib_is_413_e102(api: Api) -> None:
    """A chunked body with no Content-Length is cut off at the limit as well."""

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(BIG_BODY), 8192):
            yield BIG_BODY[start : start + 8192]

    response = api.call("POST", "/resources", content=chunks())
    assert "content-length" not in response.request.headers
    assert error_of(response) == (413, "E102")


def test_body_just_under_the_limit_is_read(api: Api) -> None:
    """A body of 64 KiB is within the limit (refused for its name, not its size)."""
    body = b'{"name": "' + b"x" * (65536 - 12) + b'"}'
    assert len(body) == 65536
    assert error_of(api.call("POST", "/resources", content=body)) == (400, "E013")


def test_unexpected_exception_is_500_e001(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the service answers 500 E001 in the failure envelope."""
    monkeypatch.setattr(api.app.services.resources, "page", boom)
    assert error_of(api.call("GET", "/resources")) == (500, "E001")


def test_unexpected_exception_keeps_its_details_out_of_the_body(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 500 body says nothing of the exception: no type, message or traceback."""
    monkeypatch.setattr(api.app.services.resources, "page", boom)
    text = api.call("GET", "/resources").text
    for detail in ("RuntimeError", "7d1f", "Traceback", "page", ".py"):
        assert detail not in text


def test_unexpected_exception_is_logged_with_its_request_id(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The details of a 500 go to the log, under the response's request id."""
    monkeypatch.setattr(api.app.services.resources, "page", boom)
    response = api.call("GET", "/resources")
    logged = [record for record in caplog.records if record.exc_info]
    assert [getattr(record, "request_id", None) for record in logged] == [
        response.headers["x-request-id"]
    ]
    assert "7d1f" in caplog.text


def test_redis_unreachable_is_503_e103_with_retry_after(down_api: Api) -> None:
    """When Redis does not answer, the service says 503 E103 and when to retry."""
    response = down_api.call("GET", "/resources")
    assert error_of(response) == (503, "E103")
    assert int(response.headers["retry-after"]) >= 1


def test_redis_unreachable_answers_fast(down_api: Api) -> None:
    """A lock attempt against a dead Redis fails within the Redis timeout, not later."""
    started = time.monotonic()
    response = down_api.lock("0badc0de-0000-4000-8000-000000000000", "k")
    assert error_of(response) == (503, "E103")
    assert time.monotonic() - started < 2.0


def test_redis_unreachable_message_names_no_internals(down_api: Api) -> None:
    """The 503 body does not carry the connection error's text (hosts, ports)."""
    text = down_api.call("GET", "/resources").text
    assert "127.0.0.1" not in text
    assert "Error" not in text


RESPONSES: dict[str, Callable[[Api], httpx.Response]] = {
    "success": lambda api: api.call("GET", "/resources"),
    "created": lambda api: api.call("POST", "/resources", {"name": "x"}),
    "refusal": lambda api: api.call("GET", "/resources", key="none"),
    "no route": lambda api: api.call("GET", "/nowhere"),
    "wrong method": lambda api: api.call("PUT", "/resources"),
    "too large": lambda api: api.call("POST", "/resources", content=BIG_BODY),
    "healthz": lambda api: api.call("GET", "/healthz", key="none"),
    "metrics": lambda api: api.call("GET", "/metrics", key="none"),
}


@pytest.mark.parametrize("kind", RESPONSES)
def test_every_response_has_a_request_id(api: Api, kind: str) -> None:
    """Each response carries a fresh `x-request-id`."""
    first, second = RESPONSES[kind](api), RESPONSES[kind](api)
    assert first.headers["x-request-id"]
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize("kind", RESPONSES)
def test_every_response_has_the_hardening_headers(api: Api, kind: str) -> None:
    """Each response says `cache-control: no-store` and `x-content-type-options: nosniff`."""
    response = RESPONSES[kind](api)
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_error_responses_of_a_bug_have_the_headers_too(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a 500 carries the request id and the hardening headers."""
    monkeypatch.setattr(api.app.services.resources, "page", boom)
    response = api.call("GET", "/resources")
    assert response.headers["x-request-id"]
    assert response.headers["cache-control"] == "no-store"


def test_an_outage_response_has_the_headers_too(down_api: Api) -> None:
    """A 503 carries the request id and the hardening headers."""
    response = down_api.call("GET", "/resources")
    assert response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_sent_request_id_is_honoured(api: Api) -> None:
    """A well-formed `x-request-id` from the client comes back unchanged."""
    response = api.call("GET", "/resources", headers={"x-request-id": "abc-123.def:4_5"})
    assert response.headers["x-request-id"] == "abc-123.def:4_5"


@pytest.mark.parametrize("sent", ["has space", "x" * 129, "semi;colon", "<script>"])
def test_a_malformed_request_id_is_replaced(api: Api, sent: str) -> None:
    """A request id with odd characters or over 128 long is replaced by a fresh one."""
    response = api.call("GET", "/resources", headers={"x-request-id": sent})
    assert response.headers["x-request-id"] not in ("", sent)


def test_failures_are_json(api: Api) -> None:
    """A failure envelope is sent as application/json."""
    response = api.call("GET", "/nowhere")
    assert response.headers["content-type"].startswith("application/json")


def test_a_burst_of_requests_is_no_outage(redis_server: RedisServer) -> None:
    """150 requests at once on a healthy Redis all succeed: a busy pool is no 503."""

    async def burst() -> list[int]:
        settings = Settings(redis_url=redis_server.url)
        redis = redis_from_settings(settings)
        app = create_app(settings, redis)
        pair = await app.services.keys.create_pair("test")
        headers = {"authorization": f"Bearer {pair.public_key}"}
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                calls = [client.get("/resources", headers=headers) for _ in range(150)]
                return [response.status_code for response in await asyncio.gather(*calls)]
        finally:
            # No lifespan runs here, so the test closes what the app opened: the
            # scripts' own connection (the raw transport, for a redis:// URL) and Redis.
            await app.services.batcher.aclose()
            await redis.aclose()

    assert asyncio.run(burst()) == [200] * 150
