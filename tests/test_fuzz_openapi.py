"""Schemathesis against /openapi.json in-process: every operation, with and without keys."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import fakeredis
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, BaseSchema, Case, CheckContext, GenerationMode, Response
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from service.app import SlotlockApp, create_app
from service.openapi import OPERATIONS
from service.settings import Settings
from service.store.api_keys import KeyPair
from tests.api import Api, from_now, iso

MAX_EXAMPLES = 25  # per operation; each is sent four times: secret, public, unknown, no key
NOT_JSON = {"/metrics"}  # Prometheus text
NOT_ENVELOPED = {"/metrics", "/openapi.json"}  # ... and the OpenAPI document itself
UNKNOWN_KEY = "sk_" + "0" * 64
AnyCase = Case[Any]
AnyOperation = APIOperation[Any, Any, Any, Any]
LIVE_ID_FIELDS = {
    "resource_id": "resource",
    "resoure_id": "resource",
    "slot_id": "slot",
    "target_slot_id": "slot",
    "booking_id": "booking",
}


@dataclass(frozen=True, slots=True)
class World:
    """The app under test, its keys, and live ids to aim some requests at."""

    app: SlotlockApp
    pair: KeyPair
    ids: dict[str, str]  # "resource", "slot", "booking" -> a live id of that kind


def _fake_redis(server: fakeredis.FakeServer) -> Any:
    return fakeredis.FakeAsyncRedis(server=server, decode_responses=True)


def _seed(server: fakeredis.FakeServer, settings: Settings) -> tuple[KeyPair, dict[str, str]]:
    """Keys, and a published resource with a slot and a booking, made through a set-up app."""
    redis = _fake_redis(server)
    setup_app = create_app(settings, redis, owns_redis=True)  # closed after its jobs
    with TestClient(setup_app, raise_server_exceptions=False) as client:
        assert client.portal is not None
        pair = client.portal.call(setup_app.services.keys.create_pair, "test")
        api = Api(client, pair, setup_app)
        resource = api.resource()
        slot = api.slot(resource["id"], capacity=1000)
        booking = api.ok("POST", "/bookings", {"slot_id": slot["id"]})
    return pair, {"resource": resource["id"], "slot": slot["id"], "booking": booking["id"]}


@pytest.fixture
def world() -> World:
    """An app on fakeredis (for speed), seeded through a second app on the same server.

    Schemathesis runs the app's lifespan (script preload) on its own event loop, so
    the app under test gets its own client; the set-up app's client stays on its loop.
    """
    server = fakeredis.FakeServer(version=(7,))
    settings = Settings(key_cache_s=0.0)
    pair, ids = _seed(server, settings)
    return World(create_app(settings, _fake_redis(server)), pair, ids)


@pytest.fixture
def fuzz_schema(world: World) -> BaseSchema:
    """The OpenAPI document as the app serves it; keys are sent by the test, not generated."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.app)
    schema.config.generation.update(with_security_parameters=False)
    return schema


def envelope_conformance(ctx: CheckContext, response: Response, case: AnyCase) -> bool | None:
    """Every API response is JSON in the envelope of API.md, its status echoed on failure."""
    if case.path in NOT_JSON:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type == "application/json", f"content-type is {content_type!r}"
    if case.path in NOT_ENVELOPED:
        return None
    body = json.loads(response.content)
    assert isinstance(body, dict), "the body is not a JSON object"
    if body.get("success") is True:
        assert sorted(body) == ["data", "meta", "success"], f"success envelope {sorted(body)}"
        assert isinstance(body["meta"], dict), "meta is not an object"
        assert response.status_code < 400, "a success envelope with a failure status"
        return None
    assert sorted(body) == ["error", "success"], f"failure envelope {sorted(body)}"
    assert body["success"] is False, "success is neither true nor false"
    error = body["error"]
    assert sorted(error) == ["code", "message", "status"], f"error fields {sorted(error)}"
    assert isinstance(error["code"], str), "error.code is not a string"
    assert isinstance(error["message"], str), "error.message is not a string"
    assert error["message"], "error.message is empty"
    assert error["status"] == response.status_code >= 400, "error.status is not the HTTP status"
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    envelope_conformance,
]


def _strategy(operation: AnyOperation) -> st.SearchStrategy[AnyCase]:
    """Valid and invalid requests; an operation with nothing to get wrong has valid ones only."""
    positive = operation.as_strategy(GenerationMode.POSITIVE)
    if not (operation.path_parameters or operation.query or operation.body):
        return positive
    return st.one_of(positive, operation.as_strategy(GenerationMode.NEGATIVE))


def _aim_at_live_objects(case: AnyCase, ids: dict[str, str]) -> None:
    """For about half of the cases, live ids and plausible times, so they get past the 404.

    Each operation has a world of its own, so a DELETE that succeeds starves no other test.
    """
    seed = zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode())
    if seed % 2:
        return
    start = from_now(days=1 + seed % 1000)
    live = {name: ids[kind] for name, kind in LIVE_ID_FIELDS.items()} | {
        "lock_until": iso(from_now(minutes=5)),
        "start_date": iso(start),
        "end_date": iso(start + timedelta(minutes=30)),
    }
    for fields in (case.path_parameters, case.query, case.body):
        if isinstance(fields, dict):
            for name, value in fields.items():
                if isinstance(value, str) and name in live:
                    fields[name] = live[name]


def _call_with_every_key(case: AnyCase, world: World) -> None:
    """The secret key, the public key, a well-formed unknown key, and no key at all."""
    _aim_at_live_objects(case, world.ids)
    for key in (world.pair.secret_key, world.pair.public_key, UNKNOWN_KEY, None):
        headers = {} if key is None else {"authorization": f"Bearer {key}"}
        case.call_and_validate(headers=headers, checks=CHECKS)


def test_the_document_lists_every_operation(fuzz_schema: BaseSchema) -> None:
    """The served document has exactly the operations of service.openapi.OPERATIONS."""
    served = {
        (method.upper(), path)
        for path, methods in fuzz_schema.raw_schema["paths"].items()
        for method in methods
    }
    assert served == {(operation.method, operation.path) for operation in OPERATIONS}


# An event stream answers 200 with a body that never ends, which an in-process ASGI call
# cannot read to its end: tests/test_events.py checks it over real HTTP instead.
ANSWERED = [operation for operation in OPERATIONS if not operation.stream]


@pytest.mark.parametrize(
    ("method", "path"),
    [(operation.method, operation.path) for operation in ANSWERED],
    ids=[f"{operation.method} {operation.path}" for operation in ANSWERED],
)
def test_every_operation_keeps_its_contract(
    fuzz_schema: BaseSchema, world: World, method: str, path: str
) -> None:
    """Secret, public, unknown or no key: never a 5xx, and every answer keeps the contract."""

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategy(fuzz_schema[path][method]))
    def run(case: AnyCase) -> None:
        _call_with_every_key(case, world)

    run()
