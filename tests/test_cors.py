"""CORS as API.md gives it: preflights on every path, CORS headers on every answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
from starlette.middleware.cors import CORSMiddleware
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from service.app import create_app
from service.cors import ALLOWED_HEADERS, ALLOWED_METHODS, EXPOSED_HEADERS, CorsPolicy
from service.openapi import OPERATIONS
from service.settings import RateLimit, Settings
from tests.api import Api, error_of

PAGE = "https://shop.example"
STRANGER = "https://evil.example"
REQUESTED_HEADERS = "authorization, content-type, idempotency-key, x-request-id, last-event-id"
SAMPLE_ID = "0badc0de-0000-4000-8000-000000000000"
PATHS = sorted(
    {
        operation.path.format(resource_id=SAMPLE_ID, slot_id=SAMPLE_ID, booking_id=SAMPLE_ID)
        for operation in OPERATIONS
    }
)


def preflight(api: Api, path: str, method: str = "POST", origin: str = PAGE) -> Any:
    """A browser's preflight for `method path` with every header API.md lists."""
    headers = {
        "origin": origin,
        "access-control-request-method": method,
        "access-control-request-headers": REQUESTED_HEADERS,
    }
    return api.call("OPTIONS", path, key="none", headers=headers)


def listed(response: Any, header: str) -> set[str]:
    """The comma-separated names of `header`, in lower case."""
    return {name.strip().lower() for name in response.headers[header].split(",")}


def readable(response: Any, allowed: str = "*") -> None:
    """Assert that a page may read `response` and its exposed headers (allowed: its ACAO)."""
    assert response.headers["access-control-allow-origin"] == allowed
    assert listed(response, "access-control-expose-headers") == {"retry-after", "x-request-id"}


@pytest.mark.parametrize("path", PATHS)
def test_preflight_on_every_path_is_204_without_a_key(api: Api, path: str) -> None:
    """Each documented path answers a preflight 204, empty, allowing the methods and headers."""
    response = preflight(api, path)
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == "*"
    assert {"get", "post", "patch", "delete"} <= listed(response, "access-control-allow-methods")
    allowed = listed(response, "access-control-allow-headers")
    assert {name.lower() for name in ALLOWED_HEADERS} <= allowed
    assert set(REQUESTED_HEADERS.split(", ")) <= allowed


@pytest.fixture
def api_with() -> Iterator[Callable[[Settings], Api]]:
    """Starts the app on a fakeredis of its own with the given settings, and a key pair."""
    clients: list[TestClient] = []

    def start(settings: Settings) -> Api:
        app = create_app(settings, fakeredis.FakeAsyncRedis(decode_responses=True))
        client = TestClient(app, raise_server_exceptions=False)
        clients.append(client.__enter__())
        assert client.portal is not None
        pair = client.portal.call(app.services.keys.create_pair, "test")
        return Api(client, pair, app)

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def test_options_that_is_no_preflight_is_405_with_cors_once(api: Api) -> None:
    """OPTIONS without Access-Control-Request-Method is no preflight: 405 E002, readable."""
    response = api.call("OPTIONS", "/slots", key="none", headers={"origin": PAGE})
    assert error_of(response) == (405, "E002")
    readable(response)
    assert response.headers.get_list("access-control-allow-origin") == ["*"]


def test_preflight_is_not_rate_limited(api_with: Callable[[Settings], Api]) -> None:
    """With the public key's limit spent, preflights still answer 204, and they spend nothing."""
    api = api_with(Settings(key_cache_s=0.0, rate_limit_public=RateLimit(1, 60)))
    assert all(preflight(api, "/slots").status_code == 204 for _ in range(20))
    assert api.call("GET", "/slots", key="public").status_code == 200
    limited = api.call("GET", "/slots", key="public", headers={"origin": PAGE})
    assert error_of(limited) == (429, "E062")
    readable(limited)
    assert limited.headers["retry-after"]
    assert preflight(api, "/slots", "GET").status_code == 204


def test_hot_path_answers_carry_cors(api: Api) -> None:
    """Lock and unlock (served ahead of the router) are readable cross-origin, refusals too."""
    slot = api.slot(api.resource()["id"])
    origin = {"origin": PAGE}
    for response in (
        api.lock(slot["id"], "mine", headers=origin),
        api.lock(slot["id"], "theirs", headers=origin),  # 422 E045 with Retry-After
        api.unlock(slot["id"], "theirs", headers=origin),  # 403 E059
        api.unlock(slot["id"], "mine", headers=origin),
        api.lock(SAMPLE_ID, "k", headers=origin),  # 404 E025
    ):
        readable(response)
    locked = api.lock(slot["id"], "mine", headers=origin | {"idempotency-key": "one"})
    readable(locked)  # the router's way, taken by a request with an Idempotency-Key


@pytest.mark.parametrize(
    ("method", "path", "key", "status"),
    [
        ("GET", "/resources", "secret", 200),
        ("POST", "/resources", "secret", 400),
        ("GET", "/resources", "none", 401),
        ("GET", "/nowhere", "secret", 404),
        ("PUT", "/resources", "secret", 405),
        ("GET", "/healthz", "none", 200),
    ],
)
def test_every_answer_carries_cors(api: Api, method: str, path: str, key: str, status: int) -> None:
    """Successes, refusals, unknown routes and operational endpoints are all readable."""
    response = api.call(method, path, {}, key=key, headers={"origin": PAGE})
    assert response.status_code == status
    readable(response)


def test_an_unexpected_failure_carries_cors(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even a 500 E001 is readable cross-origin, so the page can show the request id."""

    async def boom(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(api.app.services.resources, "page", boom)
    response = api.call("GET", "/resources", headers={"origin": PAGE})
    assert error_of(response) == (500, "E001")
    readable(response)


def test_an_outage_carries_cors(down_api: Api) -> None:
    """A 503 E103 is readable cross-origin with its Retry-After."""
    response = down_api.call("GET", "/resources", headers={"origin": PAGE})
    assert error_of(response) == (503, "E103")
    readable(response)
    assert response.headers["retry-after"]


@pytest.fixture
def listed_api(api_with: Callable[[Settings], Api]) -> Api:
    """The app allowing only PAGE (SLOTLOCK_CORS_ORIGINS=https://shop.example)."""
    return api_with(Settings(key_cache_s=0.0, cors_origins=(PAGE,)))


def test_a_listed_origin_is_echoed(listed_api: Api) -> None:
    """An allowed origin of a list is named in Access-Control-Allow-Origin, with Vary: Origin."""
    response = listed_api.call("GET", "/healthz", key="none", headers={"origin": PAGE})
    readable(response, allowed=PAGE)
    assert "origin" in response.headers["vary"].lower()
    assert preflight(listed_api, "/slots").headers["access-control-allow-origin"] == PAGE


def test_an_origin_not_listed_gets_no_allow_origin(listed_api: Api) -> None:
    """Another origin's answers carry no Access-Control-Allow-Origin; its preflight is refused."""
    response = listed_api.call("GET", "/healthz", key="none", headers={"origin": STRANGER})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    refused = preflight(listed_api, "/slots", origin=STRANGER)
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _starlettes_headers(options: dict[str, Any], scope: Scope) -> list[tuple[bytes, bytes]]:
    """The headers Starlette's CORSMiddleware, mounted as is, adds to an answer to `scope`."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request"}

    async def keep(message: Message) -> None:
        sent.append(message)

    asyncio.run(CORSMiddleware(_app, **options)(scope, receive, keep))
    return sorted(sent[0]["headers"])


@pytest.mark.parametrize("origins", [("*",), (PAGE, "https://other.example")], ids=["star", "list"])
@pytest.mark.parametrize("origin", [None, PAGE, "https://other.example", STRANGER, "null"])
def test_answer_headers_are_starlettes_own(origins: tuple[str, ...], origin: str | None) -> None:
    """For every kind of origin, CorsPolicy adds exactly the headers Starlette's path adds."""
    options: dict[str, Any] = {
        "allow_origins": origins,
        "allow_methods": ALLOWED_METHODS,
        "allow_headers": ALLOWED_HEADERS,
        "expose_headers": EXPOSED_HEADERS,
    }
    headers = [] if origin is None else [(b"origin", origin.encode())]
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
    policy_headers = sorted(CorsPolicy(origins).answer_headers(scope))
    assert policy_headers == _starlettes_headers(options, scope)
