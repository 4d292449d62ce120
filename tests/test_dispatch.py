"""Every route takes one path: what a client sees of it on lock and unlock, and on a tiny app.

Lock and unlock are nearly all the traffic when a popular slot opens, so their
answers, refusals, errors, headers and metrics are checked here through the
whole app; the dispatcher's own choices (404, 405, HEAD, redirects, root path,
start-up) on an app of a few stub routes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.testclient import TestClient

from service.cors import CorsPolicy
from service.dispatch import Dispatcher, _request_id
from service.errors import SlotNotFound
from service.logs import AccessLog
from service.outage import OutageLog
from service.routing import Route
from tests.api import Api, error_of, from_now, iso
from tests.script_faults import ScriptFaults
from tests.test_ops import LOCK_ROUTE, metric


def test_lock_and_unlock_answer_the_slot(api: Api) -> None:
    """Lock answers the locked slot and its token; unlock frees it."""
    slot = api.slot(api.resource()["id"])
    locked = api.lock(slot["id"], "k")
    assert locked.status_code == 200
    assert locked.json()["data"]["locked_until"] is not None
    assert locked.json()["data"]["available"] is False
    assert locked.json()["meta"]["lock_token"] >= 1
    unlocked = api.unlock(slot["id"], "k")
    assert unlocked.status_code == 200
    assert unlocked.json()["data"]["locked_until"] is None
    assert unlocked.json()["data"]["available"] is True


def test_refusals_are_failure_envelopes(api: Api) -> None:
    """Held slot (with Retry-After), unknown slot, bad body and missing key: their codes."""
    slot = api.slot(api.resource()["id"])
    assert api.lock(slot["id"], "first").status_code == 200
    held = api.lock(slot["id"], "second")
    assert error_of(held) == (422, "E045")
    assert int(held.headers["retry-after"]) >= 1
    assert error_of(api.lock("not-a-slot", "k")) == (404, "E025")
    bad_body = api.call("POST", f"/slots/{slot['id']}/lock", {"lock_key": "k"})
    assert error_of(bad_body) == (400, "E013")
    assert error_of(api.lock(slot["id"], "k", key="none")) == (401, "E056")


@pytest.mark.parametrize("sent", [{}, {"idempotency-key": "bug-1"}])
def test_a_bug_is_e001_with_its_request_id_in_the_log(
    api_with_faults: tuple[Api, ScriptFaults],
    sent: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unexpected exception in lock is 500 E001, logged once under the answer's request id."""
    api, faults = api_with_faults
    slot = api.slot(api.resource()["id"])
    faults.answer(api.app.services.scripts.lock_slot.sha, RuntimeError("internal detail 7d1f"))
    with caplog.at_level(logging.ERROR):
        response = api.lock(slot["id"], "k", headers=sent)
    assert error_of(response) == (500, "E001")
    assert "7d1f" not in response.text
    logged = [record for record in caplog.records if record.exc_info]
    assert [getattr(record, "request_id", None) for record in logged] == [
        response.headers["x-request-id"]
    ]


def test_redis_down_is_503_e103_with_retry_after(down_api: Api) -> None:
    """Without Redis, lock is 503 E103 with Retry-After."""
    response = down_api.lock("0" * 8 + "-0000-4000-8000-000000000000", "k")
    assert error_of(response) == (503, "E103")
    assert int(response.headers["retry-after"]) >= 1


def test_counted_under_the_route_template_with_hardening_headers(api: Api) -> None:
    """Metrics name the route template; every answer carries the hardening headers."""
    slot = api.slot(api.resource()["id"])
    labels = {"route": LOCK_ROUTE, "method": "POST", "status": "200"}
    before = metric(api, "slotlock_requests_total", **labels)
    response = api.lock(slot["id"], "k")
    assert metric(api, "slotlock_requests_total", **labels) == before + 1
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-request-id"]


def test_an_idempotent_lock_replays_its_first_answer(api: Api) -> None:
    """With an Idempotency-Key, a repeated lock answers as the first did and locks nothing."""
    slot = api.slot(api.resource()["id"])
    body = {"lock_key": "k", "lock_until": iso(from_now(minutes=5))}
    sent = {"idempotency-key": "lock-once", "authorization": f"Bearer {api.pair.public_key}"}
    first = api.client.post(f"/slots/{slot['id']}/lock", json=body, headers=sent)
    api.unlock(slot["id"], "k")
    again = api.client.post(f"/slots/{slot['id']}/lock", json=body, headers=sent)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert api.ok("GET", f"/slots/{slot['id']}")["locked_until"] is None  # not locked again


# The dispatcher on a tiny app of stub routes.


async def _slot(request: Request) -> Response:
    slot_id = request.path_params["slot_id"]
    if slot_id == "missing":
        raise SlotNotFound("slot not found")
    if slot_id == "buggy":
        raise RuntimeError("a bug")
    return PlainTextResponse(f"slot {slot_id}")


async def _listing(request: Request) -> Response:
    return PlainTextResponse("all slots")


class Lifespan:
    """Start-up and shutdown of the tiny app, noted; `fail` makes start-up raise."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.events: list[str] = []

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        if self.fail:
            raise RuntimeError("cannot start")
        self.events.append("started")
        yield
        self.events.append("stopped")


def tiny_app(lifespan: Lifespan | None = None) -> Dispatcher:
    """Two stub routes behind the dispatcher, CORS for every origin."""
    routes = [Route("/slots", "GET", _listing), Route("/slots/{slot_id}", "GET", _slot)]
    return Dispatcher(
        routes,
        cors=CorsPolicy(("*",)),
        access_log=AccessLog(None),
        outage=OutageLog(),
        retry_after_s=1,
        lifespan=lifespan or Lifespan(),
    )


def call(method: str, path: str, **kwargs: Any) -> Any:
    """One request to a fresh tiny app."""
    with TestClient(tiny_app(), raise_server_exceptions=False) as client:
        return client.request(method, path, follow_redirects=False, **kwargs)


@pytest.mark.parametrize(
    ("method", "path", "status", "text"),
    [
        ("GET", "/slots", 200, "all slots"),
        ("GET", "/slots/s-1", 200, "slot s-1"),
        ("HEAD", "/slots/s-1", 200, ""),
        ("GET", "/slots/a/b", 404, "E002"),
        ("GET", "/slots/a/b/", 404, "E002"),
        ("GET", "/nowhere", 404, "E002"),
        ("POST", "/slots/s-1", 405, "E002"),
        ("GET", "/slots/missing", 404, "E025"),
        ("GET", "/slots/buggy", 500, "E001"),
    ],
)
def test_each_request_gets_its_routes_answer(
    method: str, path: str, status: int, text: str
) -> None:
    """Its template and method's endpoint; else 404 or 405 E002; its ApiError's envelope; E001."""
    response = call(method, path, headers={"origin": "https://shop.example"})
    assert response.status_code == status
    assert text in response.text
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["x-request-id"]


def test_a_trailing_slash_redirects_to_the_route_without_it() -> None:
    """GET /slots/ answers 307 to /slots, keeping the query, as Starlette's router did."""
    response = call("GET", "/slots/?limit=5")
    assert response.status_code == 307
    assert response.headers["location"] == "http://testserver/slots?limit=5"


def test_a_root_path_is_left_out_of_routing() -> None:
    """Under a root path (a proxy's prefix), /api/slots/s-1 is the route /slots/{slot_id}."""
    with TestClient(tiny_app(), root_path="/api") as client:
        full = client.get("/api/slots/s-1")  # as uvicorn passes it: the root path included
        bare = client.get("/slots/s-1")  # as some servers pass it: without
    assert (full.status_code, full.text) == (200, "slot s-1")
    assert (bare.status_code, bare.text) == (200, "slot s-1")


def test_a_preflight_is_answered_before_routing() -> None:
    """OPTIONS with Origin and Access-Control-Request-Method is 204 on any path, even unknown."""
    headers = {"origin": "https://shop.example", "access-control-request-method": "POST"}
    response = call("OPTIONS", "/nowhere", headers=headers)
    assert response.status_code == 204
    assert "POST" in response.headers["access-control-allow-methods"]


def test_start_up_and_shutdown_run_once_each() -> None:
    """The lifespan's start-up runs before the first request, its shutdown after the last."""
    lifespan = Lifespan()
    with TestClient(tiny_app(lifespan)) as client:
        assert lifespan.events == ["started"]
        client.get("/slots")
    assert lifespan.events == ["started", "stopped"]


def test_a_failed_start_up_stops_the_server() -> None:
    """A start-up that raises is reported to the server, which then does not serve."""
    with (
        pytest.raises(RuntimeError, match="cannot start"),
        TestClient(tiny_app(Lifespan(fail=True))),
    ):
        pass


def test_request_ids_are_new_for_every_request_and_every_forked_worker() -> None:
    """An id the service makes is 32 hex digits, never repeated and not a count; a worker
    forked from the process draws ids of its own, never the ones its parent hands out next."""
    no_header: dict[str, Any] = {"headers": []}
    here = [_request_id(no_header) for _ in range(600)]  # more than one draw
    assert len(set(here)) == 600
    assert all(len(found) == 32 and int(found, 16) >= 0 for found in here)
    assert len({found[:16] for found in here}) == 600  # random throughout, no shared prefix
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # the forked worker: report its first id, and leave at once
        os.write(writing, _request_id(no_header).encode())
        os._exit(0)
    os.close(writing)
    os.waitpid(child, 0)
    theirs = os.read(reading, 64).decode()
    os.close(reading)
    assert len(theirs) == 32
    assert theirs != _request_id(no_header)
