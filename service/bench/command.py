"""`slotlock bench`: its arguments. The bench itself is imported only when it runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from service.loadtest.command import at_least
from service.loadtest.transport import CLIENTS

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MAIN_DURATION_S = 8.0
OTHER_DURATION_S = 10.0


def register(commands: Any) -> None:
    """Add the `bench` subcommand to the `slotlock` parser's subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "bench",
        help="measure slotlock against a bare and a naive anchor on this machine",
        description="Start a redis-server, a bare Starlette app, a naive one-EVALSHA app and "
        "`slotlock serve` (one worker pinned to one core), load each from the other core with "
        "each workload (lock/unlock, GET /slots/:id, POST /bookings), "
        "and print requests/s, latency, Redis calls and memory per slot, RSS and targets.",
    )
    parser.add_argument(
        "--duration",
        type=at_least(1.0, float),
        default=None,
        help=f"measured seconds per phase (default {MAIN_DURATION_S:g}: all three workloads, "
        f"nine phases, take about two minutes; --scale and --streams: {OTHER_DURATION_S:g})",
    )
    parser.add_argument(
        "--warmup", type=at_least(0.0, float), default=2.0, help="unmeasured seconds first"
    )
    parser.add_argument(
        "--rounds",
        type=at_least(1, int),
        default=4,
        help="turns a workload's three servers take, each phase's duration and warm-up split "
        "over them, so that a drift in the machine's speed falls on all three alike",
    )
    parser.add_argument("--connections", type=at_least(1, int), default=50)
    parser.add_argument("--slots", type=at_least(1, int), default=1000)
    parser.add_argument("--server-core", type=at_least(0, int), default=0, help="worker's core")
    parser.add_argument(
        "--load-core", type=at_least(0, int), default=1, help="generator and Redis core"
    )
    parser.add_argument("--client", choices=CLIENTS, default="raw", help="the generator's client")
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default="INFO", help="the service's (INFO: default)"
    )
    parser.add_argument(
        "--workload",
        choices=("lock", "read", "book", "all"),
        default="all",
        help="what the load sends: lock/unlock, GET /slots/:id, POST /bookings, or all three "
        "(default; each its own three phases)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--keep-files", action="store_true", help="keep the logs directory")
    parser.add_argument(
        "--instructions",
        type=at_least(2, int),
        default=None,
        metavar="N",
        help="instead: count each server's instructions per request over N requests of each "
        "workload under valgrind's callgrind (steady where requests/s are noisy)",
    )
    parser.add_argument(
        "--in-process",
        type=at_least(100, int),
        default=None,
        metavar="N",
        help="instead: the service's own CPU per lock/unlock request in one process, best of "
        "five samples of N requests (its HTTP protocol over stand-in sockets, every script call "
        "answered at once: steadier than requests/s)",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="instead: list latency at 1,000 and 100,000 slots per filter, lock p99 beside a "
        "client that lists without pause, and Redis memory per slot (about a minute)",
    )
    parser.add_argument(
        "--scale-samples", type=at_least(10, int), default=200, help="requests per list measured"
    )
    parser.add_argument(
        "--streams",
        type=at_least(1, int),
        default=None,
        metavar="N",
        help="instead: N open event streams under a lock load (latency, memory per stream, "
        "lock throughput beside the run without streams; --duration per phase)",
    )
    parser.set_defaults(command=run)


def run(arguments: argparse.Namespace, settings: object) -> int:
    """Run the bench (or, with --instructions, the instruction count)."""
    if arguments.instructions is not None:
        return count_instructions(arguments)
    if arguments.in_process is not None:
        from service.bench.in_process import format_in_process, measure_in_process

        print(format_in_process(measure_in_process(arguments.in_process, arguments.connections)))
        return 0
    if arguments.scale:
        from service.bench.scale import ScaleOptions
        from service.bench.scale_report import run_scale_command

        options = ScaleOptions(
            samples=arguments.scale_samples,
            duration_s=_duration_s(arguments, OTHER_DURATION_S),
            warmup_s=arguments.warmup,
            connections=arguments.connections,
            server_core=arguments.server_core,
            load_core=arguments.load_core,
        )
        return run_scale_command(options, arguments.json, arguments.keep_files)
    if arguments.streams is not None:
        from service.bench.streams import StreamBenchOptions
        from service.bench.streams import run_command as run_streams

        return run_streams(
            StreamBenchOptions(arguments.streams, _duration_s(arguments, OTHER_DURATION_S))
        )
    from service.bench.runner import BenchOptions, run_command
    from service.bench.workloads import chosen

    return run_command(
        BenchOptions(
            duration_s=_duration_s(arguments, MAIN_DURATION_S),
            warmup_s=arguments.warmup,
            rounds=arguments.rounds,
            connections=arguments.connections,
            slots=arguments.slots,
            server_core=arguments.server_core,
            load_core=arguments.load_core,
            client=arguments.client,
            log_level=arguments.log_level,
            json_path=arguments.json,
            keep_files=arguments.keep_files,
            workloads=chosen(arguments.workload),
        )
    )


def _duration_s(arguments: argparse.Namespace, default_s: float) -> float:
    """--duration, or this mode's default."""
    return default_s if arguments.duration is None else float(arguments.duration)


def count_instructions(arguments: argparse.Namespace) -> int:
    """`slotlock bench --instructions N`."""
    from service.bench.instructions import (
        InstructionOptions,
        format_instructions,
        run_instructions,
        write_json,
    )
    from service.bench.processes import BenchError
    from service.bench.workloads import chosen

    options = InstructionOptions(
        requests=arguments.instructions,
        warmup_requests=max(2 * arguments.connections, arguments.instructions // 5),
        connections=arguments.connections,
        slots=arguments.slots,
        server_core=arguments.server_core,
        load_core=arguments.load_core,
        workloads=chosen(arguments.workload),
    )
    try:
        counts = run_instructions(options)
    except BenchError as error:
        print(f"slotlock bench: {error}", file=sys.stderr)
        return 1
    print(format_instructions(counts, options))
    if arguments.json is not None:
        write_json(counts, arguments.json)
    return 0
