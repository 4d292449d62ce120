"""What a load run saw, per endpoint: latencies, statuses, error codes; and their summary.

Latencies are kept whole (8 bytes each, in an `array`), so the percentiles are
exact nearest-rank values rather than bucket estimates.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

TRANSPORT_ERROR = 0  # the status recorded when no HTTP answer arrived at all
REFUSALS = frozenset({403, 404, 409, 422})  # answers a scenario expects under contention

_error_decoder = msgspec.json.Decoder()


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of values sorted ascending (0.0 when there are none)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def is_error(status: int) -> bool:
    """Whether a status means trouble (no answer, 5xx, 429, a malformed request), not a no."""
    return not 200 <= status < 300 and status not in REFUSALS


def error_code(body: bytes) -> str | None:
    """The `error.code` of a failure envelope, or None when the body is not one."""
    try:
        decoded = _error_decoder.decode(body)
    except msgspec.DecodeError:
        return None
    error = decoded.get("error") if isinstance(decoded, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


@dataclass(slots=True)
class EndpointStats:
    """Every answer one endpoint gave during the run."""

    latencies_s: array[float] = field(default_factory=lambda: array("d"))
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)

    def add(self, status: int, latency_s: float, code: str | None) -> None:
        """Count one answer."""
        self.latencies_s.append(latency_s)
        self.statuses[status] += 1
        if code is not None:
            self.codes[code] += 1


class EndpointSummary(msgspec.Struct, kw_only=True):
    """One row of the report: throughput, latency percentiles and outcome counts."""

    endpoint: str
    requests: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    statuses: dict[str, int]
    codes: dict[str, int]


class Recorder:
    """Collects answers by endpoint; cheap enough to sit on the hot loop of a generator."""

    def __init__(self) -> None:
        self.endpoints: dict[str, EndpointStats] = {}
        self.requests = 0
        self.errors = 0

    def record(self, endpoint: str, status: int, latency_s: float, body: bytes) -> str | None:
        """Count one answer; returns its error code (decoded only for non-2xx answers)."""
        code = None if 200 <= status < 300 else error_code(body)
        stats = self.endpoints.get(endpoint)
        if stats is None:
            stats = self.endpoints[endpoint] = EndpointStats()
        stats.add(status, latency_s, code)
        self.requests += 1
        if is_error(status):
            self.errors += 1
        return code

    def summaries(self, elapsed_s: float) -> list[EndpointSummary]:
        """One summary per endpoint, in the order they were first used, then the total."""
        rows = [summarize(name, stats, elapsed_s) for name, stats in self.endpoints.items()]
        return [*rows, summarize("total", self.merged(), elapsed_s)]

    def merged(self) -> EndpointStats:
        """Every endpoint's answers as one."""
        total = EndpointStats()
        for stats in self.endpoints.values():
            total.latencies_s.extend(stats.latencies_s)
            total.statuses.update(stats.statuses)
            total.codes.update(stats.codes)
        return total


def summarize(endpoint: str, stats: EndpointStats, elapsed_s: float) -> EndpointSummary:
    """Throughput and nearest-rank percentiles (in ms) of one endpoint's answers."""
    ordered = sorted(stats.latencies_s)
    count = len(ordered)
    return EndpointSummary(
        endpoint=endpoint,
        requests=count,
        requests_per_s=round(count / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        p50_ms=_ms(percentile(ordered, 0.50)),
        p95_ms=_ms(percentile(ordered, 0.95)),
        p99_ms=_ms(percentile(ordered, 0.99)),
        max_ms=_ms(ordered[-1] if ordered else 0.0),
        errors=sum(n for status, n in stats.statuses.items() if is_error(status)),
        statuses={str(status): stats.statuses[status] for status in sorted(stats.statuses)},
        codes={code: stats.codes[code] for code in sorted(stats.codes)},
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
