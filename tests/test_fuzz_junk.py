"""Junk to every POST and PATCH: never a 5xx, always the envelope, and a refusal changes nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx2 as httpx
import msgspec.inspect as mi
import pytest

from service.openapi import OPERATIONS, Operation
from service.payloads import SlotSpec
from service.store.client import RedisClient
from tests.api import Api, from_now, iso
from tests.junk import (
    E013,
    E047,
    EDGE_INSTANTS,
    EDGE_INTS,
    EDGE_METADATA,
    EDGE_STRINGS,
    EMPTY_BODIES,
    INVALID_INSTANTS,
    INVALID_METADATA,
    JUNK_BODIES,
    NOT_JSON_VALUES,
    NOT_UTF8_VALUES,
    SAMPLES_BY_KIND,
    WRONG_FOR_KIND,
    Codes,
)

JUNK_OPERATIONS = [operation for operation in OPERATIONS if operation.method in {"POST", "PATCH"}]
INSTANT_FIELDS = {"start_date", "end_date", "lock_until"}


@dataclass(frozen=True, slots=True)
class Shot:
    """One request body, and the codes it must be refused with (none: it may be accepted)."""

    label: str
    body: bytes
    codes: Codes

    @property
    def must_refuse(self) -> bool:
        """Whether any answer but a refusal is wrong."""
        return bool(self.codes)


@dataclass(slots=True)
class Report:
    """What went wrong over a batch, reported all at once."""

    problems: list[str] = field(default_factory=list)

    def add(self, shot: Shot, response: httpx.Response, problem: str) -> None:
        """Note a problem with the request that caused it."""
        excerpt = response.text[:300]
        self.problems.append(f"{shot.label}: {problem} [{response.status_code}] {excerpt}")


def _kinds(type_info: mi.Type) -> set[str]:
    """The JSON kinds a field of this msgspec type takes (`Any` counts as int: capacity)."""
    if isinstance(type_info, mi.Metadata):
        return _kinds(type_info.type)
    if isinstance(type_info, mi.UnionType):
        return set().union(*(_kinds(member) for member in type_info.types))
    kinds = {
        mi.StrType: "str",
        mi.IntType: "int",
        mi.BoolType: "bool",
        mi.NoneType: "null",
        mi.ListType: "list",
        mi.DictType: "dict",
        mi.AnyType: "int",
    }
    return {kinds[type(type_info)]}


def _fields(request_type: type[Any]) -> dict[str, set[str]]:
    info = mi.type_info(request_type)
    assert isinstance(info, mi.StructType)
    return {field.encode_name: _kinds(field.type) for field in info.fields}


def _values_for(name: str, kinds: set[str]) -> list[tuple[str, str | bytes, Codes]]:
    """(label, raw JSON value, codes of its refusal) for one field."""
    mistyped = E047 if name == "capacity" else E013
    values: list[tuple[str, str | bytes, Codes]] = [
        (f"{kind} where {'/'.join(sorted(kinds))} belongs", sample, mistyped)
        for kind, samples in SAMPLES_BY_KIND.items()
        if kind not in kinds
        for sample in samples
    ]
    values += [("not JSON", value, E013) for value in NOT_JSON_VALUES]
    values += [("not UTF-8", value, E013) for value in NOT_UTF8_VALUES]
    if name in INSTANT_FIELDS:
        values += [("invalid date", json.dumps(value), E013) for value in INVALID_INSTANTS]
        values += [("edge date", json.dumps(value), ()) for value in EDGE_INSTANTS]
    elif name == "metadata":
        values += [("invalid metadata", value, codes) for value, codes in INVALID_METADATA]
        values += [("edge metadata", value, ()) for value in EDGE_METADATA]
    elif "str" in kinds:
        values += [("edge string", value, ()) for value in EDGE_STRINGS]
    if "int" in kinds:
        values += [("edge number", value, ()) for value in EDGE_INTS]
    return values


def _with_raw(base: dict[str, Any], path: tuple[str | int, ...], raw: str | bytes) -> bytes:
    """`base` as JSON with the value at `path` replaced by raw JSON text."""
    marker = "@@junk@@"
    body = json.loads(json.dumps(base))
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = marker
    raw_bytes = raw.encode() if isinstance(raw, str) else raw
    return json.dumps(body).encode().replace(json.dumps(marker).encode(), raw_bytes)


def _field_shots(
    base: dict[str, Any], request_type: type[Any], prefix: tuple[str | int, ...]
) -> list[Shot]:
    """`base` with one field at a time (under `prefix`) set to each junk value for it."""
    shots = []
    for name, kinds in _fields(request_type).items():
        where = ".".join(map(str, (*prefix, name)))
        for label, raw, codes in _values_for(name, kinds):
            body = _with_raw(base, (*prefix, name), raw)
            shots.append(Shot(f"{where} = {label} {_excerpt(raw)}", body, codes))
    return shots


def _all_wrong_shot(request_type: type[Any]) -> Shot:
    """Every field at once of a kind it does not take: numbers as strings, strings as huge ints."""
    fields = _fields(request_type)
    wrong = {name: WRONG_FOR_KIND[sorted(kinds - {"null"})[0]] for name, kinds in fields.items()}
    body = "{" + ", ".join(f"{json.dumps(name)}: {raw}" for name, raw in wrong.items()) + "}"
    return Shot(f"every field of {request_type.__name__} mistyped", body.encode(), E013)


def _excerpt(raw: str | bytes) -> str:
    return f"{raw[:40]!r} ({len(raw)} long)"


@dataclass(frozen=True, slots=True)
class Target:
    """An operation aimed at live objects, with a body it accepts."""

    operation: Operation
    path: str
    base: dict[str, Any] | None  # None: the operation reads no body


def _target(api: Api, operation: Operation) -> Target:
    """Seed what the operation needs and name a body that it accepts."""
    resource = api.resource()
    slot = api.slot(resource["id"], capacity=5)
    other_slot = api.slot(resource["id"], hours_ahead=48)
    booking = api.ok("POST", "/bookings", {"slot_id": slot["id"]})
    path = operation.path.format(
        resource_id=resource["id"], slot_id=slot["id"], booking_id=booking["id"]
    )
    start = from_now(days=30)
    spec = {
        "start_date": iso(start),
        "end_date": iso(start + timedelta(minutes=30)),
        "capacity": 1,
    }
    bases: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/resources"): {"name": "Room"},
        ("PATCH", "/resources/{resource_id}"): {"name": "Room 2"},
        ("POST", "/slots"): {"resource_id": resource["id"], **spec},
        ("PATCH", "/slots/{slot_id}"): {"capacity": 6},
        ("POST", "/slots/{slot_id}/lock"): {
            "lock_key": "k",
            "lock_until": iso(from_now(minutes=5)),
        },
        ("POST", "/slots/{slot_id}/unlock"): {"lock_key": "k"},
        ("POST", "/bookings"): {"slot_id": slot["id"]},
        ("PATCH", "/bookings/{booking_id}"): {"metadata": {"a": 1}},
        ("POST", "/bookings/{booking_id}/enable"): {},
        ("POST", "/bookings/{booking_id}/reschedule"): {"target_slot_id": other_slot["id"]},
    }
    base = bases.get((operation.method, operation.path))
    assert (base is None) == (not operation.body), operation
    return Target(operation, path, base)


def _shots(target: Target) -> list[Shot]:
    reads_body = target.base is not None
    shots = [
        Shot(f"body {_excerpt(body)}", body, E013 if reads_body else ()) for body in JUNK_BODIES
    ]
    refuses_empty = reads_body and target.operation.body_required
    shots += [Shot(f"body {body!r}", body, E013 if refuses_empty else ()) for body in EMPTY_BODIES]
    if target.base is None:
        return shots
    shots += _field_shots(target.base, target.operation.body[0], ())
    shots += [_all_wrong_shot(request_type) for request_type in target.operation.body]
    if target.operation.path == "/slots":  # the bulk form, down into one of its slots
        spec = {name: value for name, value in target.base.items() if name != "resource_id"}
        bulk = {"resource_id": target.base["resource_id"], "slots": [spec]}
        shots += _field_shots(bulk, target.operation.body[1], ())
        shots += _field_shots(bulk, SlotSpec, ("slots", 0))
    return shots


async def _stored_state(redis: RedisClient) -> dict[str, Any]:
    """Everything the service keeps in Redis except rate-limit counters, which every call moves."""
    state: dict[str, Any] = {}
    async for key in redis.scan_iter(match="sl:*"):
        if key.startswith("sl:{rl:"):
            continue
        kind = await redis.type(key)
        if kind == "hash":
            state[key] = await redis.hgetall(key)
        elif kind == "zset":
            state[key] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "string":
            state[key] = await redis.get(key)
        else:
            state[key] = kind
    return state


def _totals(api: Api) -> dict[str, int]:
    return {
        path: api.call("GET", path, params={"limit": 1}).json()["meta"]["total"]
        for path in ("/resources", "/slots", "/bookings")
    }


def _envelope_problem(response: httpx.Response) -> str | None:
    """What is wrong with the response as an envelope of API.md, if anything."""
    if response.status_code >= 500:
        return "a server error"
    if response.headers.get("content-type") != "application/json":
        return f"content-type {response.headers.get('content-type')!r}"
    try:
        body = response.json()
    except ValueError:
        return "not JSON"
    except RecursionError:
        return "JSON too deeply nested to read back"
    if not isinstance(body, dict):
        return "not a JSON object"
    if body.get("success") is True and sorted(body) == ["data", "meta", "success"]:
        return None if response.status_code < 400 else "a success envelope on a failure"
    if sorted(body) != ["error", "success"] or body["success"] is not False:
        return "neither envelope"
    error = body["error"]
    if sorted(error) != ["code", "message", "status"] or error["status"] != response.status_code:
        return "a malformed error"
    return None


def _code(response: httpx.Response) -> str | None:
    try:
        code = response.json()["error"]["code"]
    except (ValueError, RecursionError, KeyError, TypeError):
        return None
    return str(code)


def _fire(api: Api, target: Target, shots: list[Shot], report: Report) -> None:
    """Send every shot with the secret key; check each answer and, on refusal, the state."""
    assert api.client.portal is not None
    portal, redis = api.client.portal, api.app.services.redis
    before = portal.call(_stored_state, redis)
    for shot in shots:
        response = api.call(
            target.operation.method,
            target.path,
            content=shot.body,
            headers={"content-type": "application/json"},
        )
        problem = _envelope_problem(response)
        if problem is not None:
            report.add(shot, response, problem)
        if response.status_code < 400 and shot.must_refuse:
            report.add(shot, response, "accepted")
        elif shot.must_refuse and _code(response) not in shot.codes:
            report.add(shot, response, f"refused, but not with {' or '.join(shot.codes)}")
        elif response.status_code >= 400 and portal.call(_stored_state, redis) != before:
            report.add(shot, response, "refused, yet the stored state changed")
        if response.status_code < 400 or problem is not None:
            before = portal.call(_stored_state, redis)


@pytest.mark.parametrize(
    "operation",
    JUNK_OPERATIONS,
    ids=[f"{operation.method} {operation.path}" for operation in JUNK_OPERATIONS],
)
def test_junk_gets_an_envelope_and_changes_nothing(api: Api, operation: Operation) -> None:
    """Junk bodies and fields: no 5xx, always the envelope, and a refusal leaves Redis as it was.

    Junk that must be refused goes first, and the lists' totals must not move over it; a
    body the operation accepts is then still accepted; edge values that are well-formed
    (and may be taken) go last.
    """
    target = _target(api, operation)
    shots = _shots(target)
    report = Report()
    totals = _totals(api)
    _fire(api, target, [shot for shot in shots if shot.must_refuse], report)
    assert _totals(api) == totals
    if target.base is not None:
        accepted = api.call(operation.method, target.path, target.base)
        assert accepted.status_code == 200, accepted.text
    _fire(api, target, [shot for shot in shots if not shot.must_refuse], report)
    problems = "\n".join(report.problems)
    assert not report.problems, f"{len(report.problems)} of {len(shots)} shots:\n{problems}"


POST_WITH_BODY = [op for op in JUNK_OPERATIONS if op.method == "POST" and op.body]


@pytest.mark.parametrize(
    "operation", POST_WITH_BODY, ids=[f"{op.method} {op.path}" for op in POST_WITH_BODY]
)
def test_junk_with_an_idempotency_key_is_answered_the_same_twice(
    api: Api, operation: Operation
) -> None:
    """Under an Idempotency-Key, junk is refused in the envelope, and the retry replays it."""
    target = _target(api, operation)
    report = Report()
    for index, body in enumerate([*JUNK_BODIES, *EMPTY_BODIES]):
        shot = Shot(f"body {_excerpt(body)}", body, E013 if body.strip() else ())
        headers = {"content-type": "application/json", "idempotency-key": f"junk-{index}"}
        first, again = (
            api.call(operation.method, target.path, content=body, headers=headers) for _ in range(2)
        )
        for response in (first, again):
            problem = _envelope_problem(response)
            if problem is not None:
                report.add(shot, response, problem)
        if (again.status_code, again.content) != (first.status_code, first.content):
            report.add(shot, again, f"the retry differs from the first answer {first.text[:100]}")
    assert not report.problems, "\n".join(report.problems)


def test_a_request_that_crashes_lets_go_of_its_idempotency_key(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry after an unexpected failure runs again, instead of waiting for the dead first try.

    Found by the junk above: before validation caught msgspec's UnicodeDecodeError,
    `POST /resources` with `{"name": "\\xff"}` answered 500, and its retry under the same
    Idempotency-Key waited 10 s and answered 503 E103 "still running", because the claim
    was only let go of on a 5xx answer, not when the route raised.
    """
    monkeypatch.setattr("service.idempotency._WAIT_FOR_FIRST_S", 0.2)
    monkeypatch.setattr(api.app.services.resources, "create", _crash)
    headers = {"idempotency-key": "crash-1"}
    first = api.call("POST", "/resources", {"name": "Room"}, headers=headers)
    again = api.call("POST", "/resources", {"name": "Room"}, headers=headers)
    assert first.status_code == 500
    assert (again.status_code, again.json()["error"]["code"]) == (500, "E001")


async def _crash(*args: object, **kwargs: object) -> None:
    raise RuntimeError("a bug in the store")
