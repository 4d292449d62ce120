"""Operational endpoints (health, readiness, metrics, OpenAPI) and the access log."""

from __future__ import annotations

import json
import logging
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service import payloads
from service.logs import JsonFormatter
from service.metrics import RequestMetrics
from service.services import Services
from tests.api import Api, error_of

LOCK_ROUTE = "/slots/{slot_id}/lock"


def metric(api: Api, name: str, **labels: str) -> float:
    """The current value of one sample of /metrics (0 when it does not exist yet)."""
    text = api.call("GET", "/metrics", key="none").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def request_types() -> dict[str, type[payloads.Request]]:
    """Every request body Struct of payloads.py, by class name."""
    found: dict[str, type[payloads.Request]] = {}
    pending: list[type[payloads.Request]] = [payloads.Request]
    while pending:
        for subclass in pending.pop().__subclasses__():
            found[subclass.__name__] = subclass
            pending.append(subclass)
    return found


def field_names(struct_type: type[msgspec.Struct]) -> set[str]:
    """The JSON names of a Struct's fields."""
    return {field.encode_name for field in msgspec.structs.fields(struct_type)}


def body_schema_names(operation: dict[str, Any]) -> list[str]:
    """Names of the component schemas an operation's request body refers to."""
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    options = schema.get("oneOf", [schema])
    return [option["$ref"].rsplit("/", 1)[1] for option in options]


def test_healthz_is_200(api: Api) -> None:
    """/healthz answers 200 without a key."""
    assert api.call("GET", "/healthz", key="none").status_code == 200


def test_healthz_is_200_without_redis(down_api: Api) -> None:
    """/healthz never touches Redis: it is 200 while Redis is down."""
    response = down_api.call("GET", "/healthz", key="none")
    assert response.status_code == 200
    assert response.json()["success"] is True


def test_readyz_is_200_with_redis(api: Api) -> None:
    """/readyz answers 200 without a key when Redis answers."""
    assert api.call("GET", "/readyz", key="none").status_code == 200


def test_readyz_is_503_without_redis(down_api: Api) -> None:
    """/readyz is 503 E103 with Retry-After while Redis is down."""
    response = down_api.call("GET", "/readyz", key="none")
    assert error_of(response) == (503, "E103")
    assert response.headers["retry-after"]


def test_readyz_reloads_scripts_redis_lost(api: Api) -> None:
    """After SCRIPT FLUSH, /readyz is still 200 and the scripts are back in Redis."""
    services: Services = api.app.services
    portal = api.client.portal
    assert portal is not None
    portal.call(services.redis.script_flush)
    assert portal.call(services.scripts.loaded, services.redis) is False
    assert api.call("GET", "/readyz", key="none").status_code == 200
    assert portal.call(services.scripts.loaded, services.redis) is True


def test_metrics_count_requests_by_route_template(api: Api) -> None:
    """A lock is counted under its route template, method and status."""
    slot = api.slot(api.resource()["id"])
    labels = {"route": LOCK_ROUTE, "method": "POST", "status": "200"}
    before = metric(api, "slotlock_requests_total", **labels)
    api.lock(slot["id"], "k")
    assert metric(api, "slotlock_requests_total", **labels) == before + 1


def test_metrics_never_carry_raw_paths(api: Api) -> None:
    """Neither an object id nor an unknown path becomes a metric label."""
    slot = api.slot(api.resource()["id"])
    api.lock(slot["id"], "k")
    api.call("GET", "/no-such-path-5c1e")
    text = api.call("GET", "/metrics", key="none").text
    assert slot["id"] not in text
    assert "5c1e" not in text


def test_metrics_count_lock_outcomes(api: Api) -> None:
    """Lock results are counted as `ok` or by their error code."""
    slot = api.slot(api.resource()["id"])
    ok_before = metric(api, "slotlock_lock_outcomes_total", operation="lock", result="ok")
    refused_before = metric(api, "slotlock_lock_outcomes_total", operation="lock", result="E045")
    api.lock(slot["id"], "k-1")
    api.lock(slot["id"], "k-2")
    assert metric(api, "slotlock_lock_outcomes_total", operation="lock", result="ok") == (
        ok_before + 1
    )
    assert metric(api, "slotlock_lock_outcomes_total", operation="lock", result="E045") == (
        refused_before + 1
    )


def test_metrics_count_unlock_outcomes(api: Api) -> None:
    """Unlock results are counted too, refusals by their code."""
    slot = api.slot(api.resource()["id"])
    api.lock(slot["id"], "k-1")
    before = metric(api, "slotlock_lock_outcomes_total", operation="unlock", result="E059")
    api.unlock(slot["id"], "k-2")
    after = metric(api, "slotlock_lock_outcomes_total", operation="unlock", result="E059")
    assert after == before + 1


def test_metrics_are_prometheus_text(api: Api) -> None:
    """/metrics answers Prometheus text without a key."""
    response = api.call("GET", "/metrics", key="none")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")


def test_openapi_covers_exactly_the_apps_routes(api: Api) -> None:
    """Every route of the app is documented, and nothing else is."""
    document = api.call("GET", "/openapi.json", key="none").json()
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    served = {(route.method, route.path) for route in api.app.routes}
    assert documented == served


def test_openapi_names_every_request_field(api: Api) -> None:
    """Each request body Struct appears in the schemas with exactly its fields."""
    schemas = api.call("GET", "/openapi.json", key="none").json()["components"]["schemas"]
    for name, request_type in request_types().items():
        assert name in schemas, name
        assert set(schemas[name]["properties"]) == field_names(request_type), name


def test_openapi_request_bodies_are_request_structs(api: Api) -> None:
    """Every documented request body refers to a request Struct of payloads.py."""
    document = api.call("GET", "/openapi.json", key="none").json()
    known = request_types()
    operations = [op for item in document["paths"].values() for op in item.values()]
    referenced = [
        name for op in operations if "requestBody" in op for name in body_schema_names(op)
    ]
    assert referenced
    assert set(referenced) <= set(known)


def test_openapi_marks_required_fields(api: Api) -> None:
    """A field without a default is listed as required, for example `name` of a resource."""
    schemas = api.call("GET", "/openapi.json", key="none").json()["components"]["schemas"]
    assert schemas["ResourceCreate"]["required"] == ["name"]
    assert set(schemas["LockRequest"]["required"]) == {"lock_key", "lock_until"}


def test_one_json_log_line_per_request(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    """Each request writes one access log line, a JSON object carrying its request id."""
    caplog.set_level(logging.INFO, logger="slotlock.access")
    response = api.call("GET", "/resources", headers={"x-request-id": "req-42"})
    lines = [
        JsonFormatter().format(record)
        for record in caplog.records
        if record.name == "slotlock.access"
    ]
    assert len(lines) == 1
    assert "\n" not in lines[0]
    entry = json.loads(lines[0])
    assert entry["request_id"] == response.headers["x-request-id"] == "req-42"
    assert (entry["method"], entry["route"], entry["status"]) == ("GET", "/resources", 200)


def test_log_lines_never_carry_keys(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    """Neither the API key nor the lock_key reaches any log line."""
    caplog.set_level(logging.DEBUG)
    slot = api.slot(api.resource()["id"])
    api.lock(slot["id"], "lock-key-0e7b")
    api.lock(slot["id"], "other-key-91aa")
    api.unlock(slot["id"], "other-key-91aa")
    logged = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert logged
    for secret in ("lock-key-0e7b", "other-key-91aa", api.pair.secret_key, api.pair.public_key):
        assert secret not in logged


def test_latency_histogram_buckets_are_cumulative_and_inclusive() -> None:
    """An observation equal to a bound counts in that bucket and every larger one."""
    request_metrics = RequestMetrics()
    registry = CollectorRegistry()
    registry.register(request_metrics)
    for duration_s in (0.0025, 0.003, 7.0):
        request_metrics.record_request("/r", "GET", 200, duration_s)
    samples = {
        (sample.name, sample.labels.get("le")): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }
    assert samples["slotlock_request_duration_seconds_bucket", "0.001"] == 0
    assert samples["slotlock_request_duration_seconds_bucket", "0.0025"] == 1
    assert samples["slotlock_request_duration_seconds_bucket", "0.005"] == 2
    assert samples["slotlock_request_duration_seconds_bucket", "2.5"] == 2
    assert samples["slotlock_request_duration_seconds_bucket", "+Inf"] == 3
    assert samples["slotlock_request_duration_seconds_count", None] == 3
    assert samples["slotlock_request_duration_seconds_sum", None] == pytest.approx(7.0055)
    assert samples["slotlock_requests_total", None] == 3


def test_uvicorn_color_message_stays_out_of_the_json_log() -> None:
    """uvicorn's `color_message` (ANSI escapes) is not copied into the JSON line."""
    record = logging.LogRecord("uvicorn.error", logging.INFO, "", 0, "Started %s", ("x",), None)
    record.color_message = "Started \x1b[1m%s\x1b[0m"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "Started x"
    assert "color_message" not in entry
