"""The table `slotlock bench` prints: each workload's phases and ratios, Redis calls and
memory, targets."""

from __future__ import annotations

from service.bench.phases import PhaseResult
from service.bench.report import BenchReport, BenchSetup, Target, by_workload
from service.bench.workloads import LABELS

_PHASE_LABELS = {
    "ceiling": "ceiling (bare, no Redis)",
    "naive": "naive (1 EVALSHA/request)",
    "slotlock": "slotlock",
}
_LABEL_WIDTH = 28
_HEAD = (
    f"{'phase':<{_LABEL_WIDTH}}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
    f"{'max ms':>8}{'non-2xx':>8}{'us/req':>8}  CPU: server core  gen redis{'RSS MB':>8}"
)


def format_report(report: BenchReport) -> str:
    """The printed table: phases, ratios, Redis calls and memory, RSS, targets."""
    return "\n".join(
        [
            *_header(report.setup),
            "",
            _HEAD,
            *_phase_rows(report.phases),
            *report.warnings,
            "",
            *_ratio_rows(report),
            *_details(report),
            "",
            *_target_rows(report.targets),
        ]
    )


def _header(setup: BenchSetup) -> list[str]:
    return [
        f"slotlock bench: {setup.duration_s:g} s measured after {setup.warmup_s:g} s warm-up "
        f"per phase, {_in_rounds(setup.rounds)}{setup.connections} connections, each going "
        f"round its share of {setup.slots} slots",
        f"one uvicorn worker on {setup.server_cores}; load generator ({setup.client} client) "
        f"and redis-server on {setup.load_cores}; service log level {setup.log_level}",
    ]


def _in_rounds(rounds: int) -> str:
    if rounds <= 1:
        return ""
    return f"in {rounds} rounds taken in turn by a workload's three servers, "


def _phase_rows(phases: list[PhaseResult]) -> list[str]:
    rows = []
    for workload, servers in by_workload(phases).items():
        rows.append(f"{LABELS.get(workload, workload)}:")
        rows += [_phase_row(phase) for phase in servers.values()]
    return rows


def _phase_row(phase: PhaseResult) -> str:
    label = "  " + _PHASE_LABELS.get(phase.name, phase.name)
    return (
        f"{label:<{_LABEL_WIDTH}}{phase.requests_per_s:>8,.0f}"
        f"{phase.p50_ms:>8.2f}{phase.p95_ms:>8.2f}{phase.p99_ms:>8.2f}{phase.max_ms:>8.1f}"
        f"{phase.non_2xx:>8,}{phase.server_cpu_us_per_request:>8.0f}"
        f"{phase.server_cpu_percent:>13.0f}%"
        f"{phase.server_core_busy_percent:>5.0f}%{phase.generator_cpu_percent:>4.0f}%"
        f"{phase.redis_cpu_percent:>5.0f}%{phase.server_rss_mb:>8.1f}"
    )


def _ratio_rows(report: BenchReport) -> list[str]:
    return [
        f"{workload + ':':<6}slotlock/naive {ratios['slotlock/naive']:.2f}x   "
        f"slotlock/ceiling {ratios['slotlock/ceiling']:.2f}x   (by server CPU per request: "
        f"{ratios['slotlock/naive by CPU']:.2f}x and {ratios['slotlock/ceiling by CPU']:.2f}x)"
        for workload, ratios in report.ratios.items()
    ]


def _details(report: BenchReport) -> list[str]:
    memory = report.memory_per_slot
    calls = "   ".join(
        f"{name} {found.calls:.2f} ("
        + ", ".join(f"{command} {count:.2f}" for command, count in found.by_command.items())
        + ")"
        for name, found in report.calls_per_request.items()
    )
    load = ", ".join(
        f"{workload} {counts['all']:.2f} (script calls {counts['scripts']:.2f})"
        for workload, counts in report.commands_under_load.items()
    )
    requests = next(iter(report.calls_per_request.values())).requests
    return [
        "us/req: the server's CPU microseconds per request; CPU: % of one core during the phase "
        "(core: the server's core busy with anything)",
        f"Redis calls per request (MONITOR, {requests} sequential requests each, "
        "background jobs and cached API-key lookups excluded):",
        f"  {calls}",
        "Redis commands run per request under load (INFO commandstats, script internals "
        f"included): {load}",
        f"Redis memory per slot (MEMORY USAGE, SAMPLES 0): idle {memory.idle} B = slot hash "
        f"{memory.slot_hash} + index entries {memory.index_entries} + resource share "
        f"{memory.resource_share}; locked {memory.locked} B (+ lock string "
        f"{memory.lock_string} + holds zset {memory.holds_zset} + lock deadline "
        f"{memory.lock_deadline}); with a partial hold {memory.held} B (+ held zset "
        f"{memory.held_zset} + holds zset + lock deadline)",
    ]


def _target_rows(found: list[Target]) -> list[str]:
    rows = [f"{'target':<32}{'measured':>22}  {'goal':<28}"]
    for target in found:
        state = "ok" if target.met else "MISS"
        rows.append(f"{target.name:<32}{target.measured:>22}  {target.goal:<28}{state}")
    return rows
