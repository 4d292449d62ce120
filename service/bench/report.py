"""The bench's figures, the targets they are held to, and the table that prints them."""

from __future__ import annotations

from pathlib import Path

import msgspec

from service.bench.calls import REPORTED, CallsPerRequest
from service.bench.phases import PhaseResult
from service.bench.redis_probe import SlotMemory

TARGET_VS_NAIVE = 1.5
LONG_TERM_VS_NAIVE = 2.0
LONG_TERM_VS_CEILING = 0.75
TARGET_P99_MS = 10.0
TARGET_SLOT_BYTES = 1024
TARGET_RSS_MB = 150.0
SCRIPT_CALLS = ("evalsha", "eval", "fcall")


class Target(msgspec.Struct, kw_only=True):
    """One target of the issue, and whether this run met it."""

    name: str
    measured: str
    goal: str
    met: bool


class BenchSetup(msgspec.Struct, kw_only=True):
    """How the bench ran."""

    duration_s: float
    warmup_s: float
    connections: int
    slots: int
    client: str
    server_cores: str
    load_cores: str
    log_level: str
    workloads: list[str] = msgspec.field(default_factory=lambda: ["lock"])
    rounds: int = 1  # turns each phase was measured in, taken with the other servers'


class BenchReport(msgspec.Struct, kw_only=True):
    """Everything one bench run measured; ratios and commands under load by workload."""

    started_at: str
    setup: BenchSetup
    phases: list[PhaseResult]
    ratios: dict[str, dict[str, float]]
    calls_per_request: dict[str, CallsPerRequest]
    commands_under_load: dict[str, dict[str, float]]
    memory_per_slot: SlotMemory
    targets: list[Target]
    warnings: list[str]


def by_workload(phases: list[PhaseResult]) -> dict[str, dict[str, PhaseResult]]:
    """Each workload's phases by server name, workloads in the order they ran."""
    grouped: dict[str, dict[str, PhaseResult]] = {}
    for phase in phases:
        grouped.setdefault(phase.workload, {})[phase.name] = phase
    return grouped


def build_report(
    started_at: str,
    setup: BenchSetup,
    phases: list[PhaseResult],
    calls: dict[str, CallsPerRequest],
    memory: SlotMemory,
) -> BenchReport:
    """Derive ratios and targets from the phases (ceiling, naive, slotlock for each workload)."""
    grouped = by_workload(phases)
    ratios = {workload: workload_ratios(servers) for workload, servers in grouped.items()}
    return BenchReport(
        started_at=started_at,
        setup=setup,
        phases=phases,
        ratios=ratios,
        calls_per_request=calls,
        commands_under_load={
            workload: commands_per_request(servers["slotlock"])
            for workload, servers in grouped.items()
        },
        memory_per_slot=memory,
        targets=targets(grouped, ratios, calls, memory, setup.connections),
        warnings=[found for phase in phases if (found := saturation_warning(phase))],
    )


def workload_ratios(servers: dict[str, PhaseResult]) -> dict[str, float]:
    """slotlock against each anchor, by requests/s and by server CPU per request."""
    ceiling, naive, slotlock = servers["ceiling"], servers["naive"], servers["slotlock"]
    return {
        "slotlock/naive": _ratio(slotlock.requests_per_s, naive.requests_per_s),
        "slotlock/ceiling": _ratio(slotlock.requests_per_s, ceiling.requests_per_s),
        # The same ratios from server CPU per request: what one saturated core would give.
        "slotlock/naive by CPU": _ratio(
            naive.server_cpu_us_per_request, slotlock.server_cpu_us_per_request
        ),
        "slotlock/ceiling by CPU": _ratio(
            ceiling.server_cpu_us_per_request, slotlock.server_cpu_us_per_request
        ),
    }


SATURATED_PERCENT = 85.0  # below this share of its core, the server did not set the pace


def saturation_warning(phase: PhaseResult) -> str | None:
    """Why a phase's server did not use its whole core, if it did not."""
    if phase.server_cpu_percent >= SATURATED_PERCENT:
        return None
    name = f"{phase.workload}, {phase.name}"
    others = phase.server_core_busy_percent - phase.server_cpu_percent
    if others > 100 - SATURATED_PERCENT:
        return (
            f"warning: {name}: the server had {phase.server_cpu_percent:.0f}% of its core, "
            f"other processes took {others:.0f}%: the figures understate one core; rerun on "
            "a quiet machine"
        )
    return (
        f"note: {name}: the server used {phase.server_cpu_percent:.0f}% of its core, the "
        f"load core was {phase.load_core_busy_percent:.0f}% busy: the load side (generator, "
        "Redis) or latency set the pace"
    )


def commands_per_request(phase: PhaseResult) -> dict[str, float]:
    """Commands Redis ran per request during the phase: scripts called, and all (internal too)."""
    requests = max(1, phase.requests)
    scripts = sum(phase.redis_commands.get(name, 0) for name in SCRIPT_CALLS)
    return {
        "scripts": round(scripts / requests, 2),
        "all": round(sum(phase.redis_commands.values()) / requests, 2),
    }


def targets(
    grouped: dict[str, dict[str, PhaseResult]],
    ratios: dict[str, dict[str, float]],
    calls: dict[str, CallsPerRequest],
    memory: SlotMemory,
    connections: int,
) -> list[Target]:
    """The issue's targets against this run's figures (the load's from the lock workload)."""
    load = grouped.get("lock")
    found = [] if load is None else _lock_targets(load["slotlock"], ratios["lock"], connections)
    call_counts = [calls[name].calls for name in REPORTED]
    rss_mb = max(servers["slotlock"].server_rss_mb for servers in grouped.values())
    return [*found,
        Target(name="Redis calls per request",
               measured=", ".join(f"{count:g}" for count in call_counts),
               goal="exactly 1 each (see above)", met=all(count == 1.0 for count in call_counts)),
        Target(name="Redis memory per locked slot", measured=f"{memory.locked} B",
               goal=f"<= {TARGET_SLOT_BYTES} B", met=memory.locked <= TARGET_SLOT_BYTES),
        Target(name="RSS per worker under load", measured=f"{rss_mb:.0f} MB",
               goal=f"<= {TARGET_RSS_MB:g} MB", met=rss_mb <= TARGET_RSS_MB),
    ]  # fmt: skip


def _lock_targets(
    slotlock: PhaseResult, ratios: dict[str, float], connections: int
) -> list[Target]:
    vs_naive, vs_ceiling = ratios["slotlock/naive"], ratios["slotlock/ceiling"]
    return [
        Target(name="slotlock / naive",
               measured=f"{vs_naive:.2f}x (CPU {ratios['slotlock/naive by CPU']:.2f}x)",
               goal=f">= {TARGET_VS_NAIVE}x (long-term {LONG_TERM_VS_NAIVE}x)",
               met=vs_naive >= TARGET_VS_NAIVE),
        Target(name="slotlock / ceiling",
               measured=f"{vs_ceiling:.2f}x (CPU {ratios['slotlock/ceiling by CPU']:.2f}x)",
               goal=f">= {LONG_TERM_VS_CEILING}x (long-term)",
               met=vs_ceiling >= LONG_TERM_VS_CEILING),
        Target(name=f"p99 at {connections} connections", measured=f"{slotlock.p99_ms:.1f} ms",
               goal=f"<= {TARGET_P99_MS:g} ms", met=slotlock.p99_ms <= TARGET_P99_MS),
    ]  # fmt: skip


def _ratio(value: float, base: float) -> float:
    return round(value / base, 2) if base > 0 else 0.0


def write_json(report: BenchReport, path: Path) -> None:
    """Write the report as indented JSON."""
    path.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
