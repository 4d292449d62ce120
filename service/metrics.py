"""Prometheus metrics, defined once per process (prometheus-client's default registry)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "slotlock_requests_total",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "slotlock_request_duration_seconds",
    "HTTP request latency by route template.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
LOCK_OUTCOMES = Counter(
    "slotlock_lock_outcomes_total",
    "Lock and unlock results: `ok` or the error code.",
    ["operation", "result"],
)

_lock_outcomes: dict[tuple[str, str], Any] = {}


def count_lock_outcome(operation: str, result: str) -> None:
    """Count one lock or unlock result (labels() costs a lock per call; children are kept)."""
    child = _lock_outcomes.get((operation, result))
    if child is None:
        child = _lock_outcomes[operation, result] = LOCK_OUTCOMES.labels(operation, result)
    child.inc()
