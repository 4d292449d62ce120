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


class BenchReport(msgspec.Struct, kw_only=True):
    """Everything one bench run measured."""

    started_at: str
    setup: BenchSetup
    phases: list[PhaseResult]
    ratios: dict[str, float]
    calls_per_request: dict[str, CallsPerRequest]
    commands_under_load: dict[str, float]
    memory_per_slot: SlotMemory
    targets: list[Target]
    warnings: list[str]


def build_report(
    started_at: str,
    setup: BenchSetup,
    phases: list[PhaseResult],
    calls: dict[str, CallsPerRequest],
    memory: SlotMemory,
) -> BenchReport:
    """Derive ratios and targets from the phases (ceiling, naive, slotlock, in that order)."""
    ceiling, naive, slotlock = phases
    ratios = {
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
    return BenchReport(
        started_at=started_at,
        setup=setup,
        phases=phases,
        ratios=ratios,
        calls_per_request=calls,
        commands_under_load=commands_per_request(slotlock),
        memory_per_slot=memory,
        targets=targets(ratios, slotlock, calls, memory, setup.connections),
        warnings=[found for phase in phases if (found := saturation_warning(phase))],
    )


SATURATED_PERCENT = 85.0  # below this share of its core, the server did not set the pace


def saturation_warning(phase: PhaseResult) -> str | None:
    """Why a phase's server did not use its whole core, if it did not."""
    if phase.server_cpu_percent >= SATURATED_PERCENT:
        return None
    others = phase.server_core_busy_percent - phase.server_cpu_percent
    if others > 100 - SATURATED_PERCENT:
        return (
            f"warning: {phase.name}: the server had {phase.server_cpu_percent:.0f}% of its core, "
            f"other processes took {others:.0f}%: the figures understate one core; rerun on "
            "a quiet machine"
        )
    return (
        f"note: {phase.name}: the server used {phase.server_cpu_percent:.0f}% of its core, the "
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
    ratios: dict[str, float],
    slotlock: PhaseResult,
    calls: dict[str, CallsPerRequest],
    memory: SlotMemory,
    connections: int,
) -> list[Target]:
    """The issue's targets against this run's figures."""
    vs_naive, vs_ceiling = ratios["slotlock/naive"], ratios["slotlock/ceiling"]
    call_counts = [calls[name].calls for name in REPORTED]
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
        Target(name="Redis calls per request",
               measured=", ".join(f"{count:g}" for count in call_counts),
               goal="exactly 1 each (see above)", met=all(count == 1.0 for count in call_counts)),
        Target(name="Redis memory per locked slot", measured=f"{memory.locked} B",
               goal=f"<= {TARGET_SLOT_BYTES} B", met=memory.locked <= TARGET_SLOT_BYTES),
        Target(name="RSS per worker under load", measured=f"{slotlock.server_rss_mb:.0f} MB",
               goal=f"<= {TARGET_RSS_MB:g} MB", met=slotlock.server_rss_mb <= TARGET_RSS_MB),
    ]  # fmt: skip


def _ratio(value: float, base: float) -> float:
    return round(value / base, 2) if base > 0 else 0.0


_PHASE_LABELS = {
    "ceiling": "ceiling (bare, no Redis)",
    "naive": "naive (1 EVALSHA/request)",
    "slotlock": "slotlock",
}
_HEAD = (
    f"{'phase':<26}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'max ms':>8}"
    f"{'non-2xx':>8}{'us/req':>8}  CPU: server core  gen redis{'RSS MB':>8}"
)


def format_report(report: BenchReport) -> str:
    """The printed table: phases, ratios, Redis calls and memory, RSS, targets."""
    return "\n".join(
        [
            *_header(report.setup),
            "",
            _HEAD,
            *(_phase_row(phase) for phase in report.phases),
            *report.warnings,
            "",
            *_details(report),
            "",
            *_target_rows(report.targets),
        ]
    )


def _header(setup: BenchSetup) -> list[str]:
    return [
        f"slotlock bench: {setup.duration_s:g} s measured after {setup.warmup_s:g} s warm-up "
        f"per phase, {setup.connections} connections, lock/unlock alternating on "
        f"{setup.slots} slots",
        f"one uvicorn worker on {setup.server_cores}; load generator ({setup.client} client) "
        f"and redis-server on {setup.load_cores}; service log level {setup.log_level}",
    ]


def _phase_row(phase: PhaseResult) -> str:
    return (
        f"{_PHASE_LABELS.get(phase.name, phase.name):<26}{phase.requests_per_s:>8,.0f}"
        f"{phase.p50_ms:>8.2f}{phase.p95_ms:>8.2f}{phase.p99_ms:>8.2f}{phase.max_ms:>8.1f}"
        f"{phase.non_2xx:>8,}{phase.server_cpu_us_per_request:>8.0f}"
        f"{phase.server_cpu_percent:>13.0f}%"
        f"{phase.server_core_busy_percent:>5.0f}%{phase.generator_cpu_percent:>4.0f}%"
        f"{phase.redis_cpu_percent:>5.0f}%{phase.server_rss_mb:>8.1f}"
    )


def _details(report: BenchReport) -> list[str]:
    ratios, memory, load = report.ratios, report.memory_per_slot, report.commands_under_load
    calls = "   ".join(
        f"{name} {found.calls:.2f} ("
        + ", ".join(f"{command} {count:.2f}" for command, count in found.by_command.items())
        + ")"
        for name, found in report.calls_per_request.items()
    )
    requests = next(iter(report.calls_per_request.values())).requests
    return [
        f"slotlock/naive {ratios['slotlock/naive']:.2f}x   "
        f"slotlock/ceiling {ratios['slotlock/ceiling']:.2f}x   (by server CPU per request: "
        f"{ratios['slotlock/naive by CPU']:.2f}x and {ratios['slotlock/ceiling by CPU']:.2f}x)",
        "us/req: the server's CPU microseconds per request; CPU: % of one core during the phase "
        "(core: the server's core busy with anything)",
        f"Redis calls per request (MONITOR, {requests} sequential requests each, "
        "background jobs and cached API-key lookups excluded):",
        f"  {calls}",
        f"Redis commands run per request under load (INFO commandstats, script internals "
        f"included): {load['all']:.2f}, of which script calls {load['scripts']:.2f}",
        f"Redis memory per slot (MEMORY USAGE, SAMPLES 0): idle {memory.idle} B = slot hash "
        f"{memory.slot_hash} + index entries {memory.index_entries} + resource share "
        f"{memory.resource_share}; locked {memory.locked} B (+ lock string "
        f"{memory.lock_string} + holds zset {memory.holds_zset}); with a partial hold "
        f"{memory.held} B (+ held zset {memory.held_zset} + holds zset)",
    ]


def _target_rows(found: list[Target]) -> list[str]:
    rows = [f"{'target':<32}{'measured':>22}  {'goal':<28}"]
    for target in found:
        state = "ok" if target.met else "MISS"
        rows.append(f"{target.name:<32}{target.measured:>22}  {target.goal:<28}{state}")
    return rows


def write_json(report: BenchReport, path: Path) -> None:
    """Write the report as indented JSON."""
    path.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
