"""A server's phase measured in rounds, taking turns with the other servers, merged into one.

This machine's speed drifts by tens of percent within a minute (other tenants, clock
changes): three phases run one after another could each meet a different machine, and
their ratio measured the drift as much as the servers. So each workload's servers run
side by side, idle but for the one loaded, and take turns in short rounds, in an order
that rotates each round; a slow spell then falls on all of them alike.

A merged phase counts every round's requests over every round's measured time. Its
latency percentiles are not those of the whole (the rounds' samples are not kept): p50
is the middle round's, p95 and p99 the worst round's, max the largest.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence

from service.bench.phases import PhaseResult


def rotated(names: Sequence[str], round_index: int) -> list[str]:
    """The order of the servers in round `round_index`: each starts one round in turn."""
    shift = round_index % len(names)
    return [*names[shift:], *names[:shift]]


def merged(rounds: Sequence[PhaseResult]) -> PhaseResult:
    """One phase from the rounds of one server and workload."""
    first = rounds[0]
    requests = sum(phase.requests for phase in rounds)
    measured_s = [
        phase.requests / phase.requests_per_s if phase.requests_per_s else 0.0 for phase in rounds
    ]
    total_s = sum(measured_s)

    def by_time(values: Sequence[float]) -> float:
        """The rounds' mean, each weighted by its measured time."""
        if total_s <= 0:
            return round(statistics.fmean(values), 1)
        return round(
            sum(value * s for value, s in zip(values, measured_s, strict=True)) / total_s, 1
        )

    commands: Counter[str] = Counter()
    for phase in rounds:
        commands.update(phase.redis_commands)
    return PhaseResult(
        name=first.name,
        requests=requests,
        requests_per_s=round(requests / total_s, 1) if total_s > 0 else 0.0,
        p50_ms=statistics.median_low(phase.p50_ms for phase in rounds),
        p95_ms=max(phase.p95_ms for phase in rounds),
        p99_ms=max(phase.p99_ms for phase in rounds),
        max_ms=max(phase.max_ms for phase in rounds),
        non_2xx=sum(phase.non_2xx for phase in rounds),
        server_cpu_us_per_request=round(
            sum(phase.server_cpu_us_per_request * phase.requests for phase in rounds)
            / max(1, requests),
            1,
        ),
        server_cpu_percent=by_time([phase.server_cpu_percent for phase in rounds]),
        server_core_busy_percent=by_time([phase.server_core_busy_percent for phase in rounds]),
        load_core_busy_percent=by_time([phase.load_core_busy_percent for phase in rounds]),
        generator_cpu_percent=by_time([phase.generator_cpu_percent for phase in rounds]),
        redis_cpu_percent=by_time([phase.redis_cpu_percent for phase in rounds]),
        server_rss_mb=max(phase.server_rss_mb for phase in rounds),
        redis_commands=dict(commands),
        workload=first.workload,
        round_requests_per_s=[phase.requests_per_s for phase in rounds],
    )
