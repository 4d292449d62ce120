"""Prometheus metrics of this process, exposed through prometheus-client's default registry.

The per-request metrics are plain counts kept here and turned into metric
families only when /metrics is scraped. prometheus-client's Counter and
Histogram take a lock on every update and find a histogram bucket in a Python
loop: about 2.4 us of every request, a few percent of a lock. One event loop
updates these counts, so they need no lock.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import REGISTRY, CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _Latencies:
    """One histogram: counts per bucket (the last one is +Inf) and the sum."""

    __slots__ = ("counts", "sum_s")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.sum_s = 0.0


class RequestMetrics(Collector):
    """Requests by route template, method and status; latency; lock and unlock outcomes."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, str], int] = {}
        self._latencies: dict[tuple[str, str], _Latencies] = {}
        self._lock_outcomes: dict[tuple[str, str], int] = {}

    def record_request(self, route: str, method: str, status: int, duration_s: float) -> None:
        """Count one answered request and its latency."""
        counted = (route, method, str(status))
        self._requests[counted] = self._requests.get(counted, 0) + 1
        latencies = self._latencies.get((route, method))
        if latencies is None:
            latencies = self._latencies[route, method] = _Latencies()
        latencies.counts[bisect.bisect_left(LATENCY_BUCKETS_S, duration_s)] += 1
        latencies.sum_s += duration_s

    def count_lock_outcome(self, operation: str, result: str) -> None:
        """Count one lock or unlock result: `ok` or the error code."""
        counted = (operation, result)
        self._lock_outcomes[counted] = self._lock_outcomes.get(counted, 0) + 1

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        yield _counter(
            "slotlock_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            list(self._requests.items()),  # a copy: a request may add a key meanwhile
        )
        latency = HistogramMetricFamily(
            "slotlock_request_duration_seconds",
            "HTTP request latency by route template.",
            labels=["route", "method"],
        )
        for latency_labels, latencies in list(self._latencies.items()):
            cumulative, buckets = 0, []
            for bound, count in zip(
                [*map(str, LATENCY_BUCKETS_S), "+Inf"], latencies.counts, strict=True
            ):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric(list(latency_labels), buckets, latencies.sum_s)
        yield latency
        yield _counter(
            "slotlock_lock_outcomes",
            "Lock and unlock results: `ok` or the error code.",
            ["operation", "result"],
            list(self._lock_outcomes.items()),
        )


def _counter(
    name: str, documentation: str, labels: list[str], counts: Iterable[tuple[Sequence[str], int]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for label_values, count in counts:
        family.add_metric(label_values, count)
    return family


REQUEST_METRICS = RequestMetrics()
REGISTRY.register(REQUEST_METRICS)
count_lock_outcome = REQUEST_METRICS.count_lock_outcome
