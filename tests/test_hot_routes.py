"""Lock and unlock answer the same whether HotRoutes or Starlette's router serves them.

A request with an Idempotency-Key takes the router (the Idempotency middleware
must see it); one without takes HotRoutes. Every test here runs both ways.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from service.errors import ApiError, SlotNotFound
from service.hot_routes import HotRoutes
from tests.api import Api, error_of, from_now, iso
from tests.test_errors import boom
from tests.test_ops import LOCK_ROUTE, metric

_fresh_keys = itertools.count()

WAYS = ["hot path", "router"]


def headers_for(way: str) -> dict[str, str]:
    """No Idempotency-Key for HotRoutes; a fresh one sends the request through the router."""
    return {} if way == "hot path" else {"idempotency-key": f"hot-routes-{next(_fresh_keys)}"}


def lock(api: Api, way: str, slot_id: str, lock_key: str, **kwargs: Any) -> Any:
    """Lock for five minutes with the public key, the given way."""
    return api.lock(slot_id, lock_key, headers=headers_for(way), **kwargs)


@pytest.mark.parametrize("way", WAYS)
def test_lock_and_unlock_answer_the_slot(api: Api, way: str) -> None:
    """Lock answers the locked slot and its token; unlock frees it."""
    slot = api.slot(api.resource()["id"])
    locked = lock(api, way, slot["id"], "k")
    assert locked.status_code == 200
    assert locked.json()["data"]["locked_until"] is not None
    assert locked.json()["data"]["available"] is False
    assert locked.json()["meta"]["lock_token"] >= 1
    unlocked = api.unlock(slot["id"], "k", headers=headers_for(way))
    assert unlocked.status_code == 200
    assert unlocked.json()["data"]["locked_until"] is None
    assert unlocked.json()["data"]["available"] is True


@pytest.mark.parametrize("way", WAYS)
def test_refusals_are_the_same_envelope(api: Api, way: str) -> None:
    """Held slot, unknown slot, bad body and missing key: the same codes either way."""
    slot = api.slot(api.resource()["id"])
    assert lock(api, way, slot["id"], "first").status_code == 200
    held = lock(api, way, slot["id"], "second")
    assert error_of(held) == (422, "E045")
    assert int(held.headers["retry-after"]) >= 1
    assert error_of(lock(api, way, "not-a-slot", "k")) == (404, "E025")
    bad_body = api.call(
        "POST", f"/slots/{slot['id']}/lock", {"lock_key": "k"}, headers=headers_for(way)
    )
    assert error_of(bad_body) == (400, "E013")
    assert error_of(lock(api, way, slot["id"], "k", key="none")) == (401, "E056")


@pytest.mark.parametrize("way", WAYS)
def test_a_bug_is_e001_with_its_request_id_in_the_log(
    api: Api, way: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception in lock is 500 E001, logged under the response's request id."""
    slot = api.slot(api.resource()["id"])
    monkeypatch.setattr(api.app.state.services.slots, "lock", boom)
    with caplog.at_level(logging.ERROR):
        response = lock(api, way, slot["id"], "k")
    assert error_of(response) == (500, "E001")
    assert "7d1f" not in response.text
    logged = [record for record in caplog.records if record.exc_info]
    assert [getattr(record, "request_id", None) for record in logged] == [
        response.headers["x-request-id"]
    ]


@pytest.mark.parametrize("way", WAYS)
def test_redis_down_is_503_e103_with_retry_after(down_api: Api, way: str) -> None:
    """Without Redis, lock is 503 E103 with Retry-After."""
    response = lock(down_api, way, "0" * 8 + "-0000-4000-8000-000000000000", "k")
    assert error_of(response) == (503, "E103")
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize("way", WAYS)
def test_counted_under_the_route_template_with_hardening_headers(api: Api, way: str) -> None:
    """Metrics name the route template; every answer carries the hardening headers."""
    slot = api.slot(api.resource()["id"])
    labels = {"route": LOCK_ROUTE, "method": "POST", "status": "200"}
    before = metric(api, "slotlock_requests_total", **labels)
    response = lock(api, way, slot["id"], "k")
    assert metric(api, "slotlock_requests_total", **labels) == before + 1
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-request-id"]


def test_an_idempotent_lock_replays_its_first_answer(api: Api) -> None:
    """With an Idempotency-Key the router's Idempotency middleware answers repeats."""
    slot = api.slot(api.resource()["id"])
    body = {"lock_key": "k", "lock_until": iso(from_now(minutes=5))}
    sent = {"idempotency-key": "lock-once", "authorization": f"Bearer {api.pair.public_key}"}
    first = api.client.post(f"/slots/{slot['id']}/lock", json=body, headers=sent)
    api.unlock(slot["id"], "k")
    again = api.client.post(f"/slots/{slot['id']}/lock", json=body, headers=sent)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert api.ok("GET", f"/slots/{slot['id']}")["locked_until"] is None  # not locked again


# HotRoutes on its own: which requests it takes.


class Recorder:
    """The app behind HotRoutes and its one route's endpoint, noting which answered."""

    def __init__(self) -> None:
        self.answered_by: list[str] = []

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.answered_by.append("app")
        await Response(status_code=204)(scope, receive, send)

    async def endpoint(self, request: Request) -> Response:
        slot_id = request.path_params["slot_id"]
        self.answered_by.append(f"endpoint {slot_id}")
        if slot_id == "missing":
            raise SlotNotFound("slot not found")
        if slot_id == "buggy":
            raise RuntimeError("a bug")
        return Response(status_code=200)

    def hot_routes(self) -> HotRoutes:
        route = Route("/slots/{slot_id}/lock", self.endpoint, methods=["POST"])
        return HotRoutes(self.app, [route], {ApiError: answer_api_error})


async def answer_api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return JSONResponse({"code": error.code}, status_code=error.status)


def call(hot: HotRoutes, method: str, path: str, **scope: Any) -> int:
    """Send one request through `hot`; the status it answered."""
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    request_scope = {"type": "http", "method": method, "path": path, "headers": [], **scope}
    asyncio.run(hot(request_scope, receive, send))
    return statuses[0]


@pytest.mark.parametrize(
    ("method", "path", "scope", "answered_by"),
    [
        ("POST", "/slots/s-1/lock", {}, "endpoint s-1"),
        ("GET", "/slots/s-1/lock", {}, "app"),
        ("POST", "/slots/s-1/lock/", {}, "app"),
        ("POST", "/slots/s-1/unlock", {}, "app"),
        ("POST", "/slots/a/b/lock", {}, "app"),
        ("POST", "/slots/s-1/lock", {"headers": [(b"idempotency-key", b"x")]}, "app"),
        ("POST", "/api/slots/s-1/lock", {"root_path": "/api"}, "app"),
    ],
)
def test_hot_routes_take_only_their_routes(
    method: str, path: str, scope: dict[str, Any], answered_by: str
) -> None:
    """Their method and path, without an Idempotency-Key or root path; the rest passes on."""
    recorder = Recorder()
    call(recorder.hot_routes(), method, path, **scope)
    assert recorder.answered_by == [answered_by]


def test_hot_routes_answer_errors_with_the_apps_handlers() -> None:
    """An ApiError from the endpoint gets its handler's answer."""
    assert call(Recorder().hot_routes(), "POST", "/slots/missing/lock") == 404


def test_hot_routes_let_other_errors_through() -> None:
    """An exception without a handler reaches the middleware outside (RequestContext: E001)."""
    with pytest.raises(RuntimeError, match="a bug"):
        call(Recorder().hot_routes(), "POST", "/slots/buggy/lock")
