"""One bench run: a redis-server; per workload, the ceiling, naive and slotlock phases; slotlock's
Redis calls and memory; the report.

A workload's three servers run side by side and take turns in short rounds (rounds.py),
so that its ratios compare figures measured seconds apart, on the same machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from service.bench.anchor_stores import seed_slots
from service.bench.phases import PhaseResult
from service.bench.processes import BenchError, can_pin, free_port, redis_server
from service.bench.report import BenchReport, BenchSetup, build_report, write_json
from service.bench.report_table import format_report
from service.bench.rounds import merged, rotated
from service.bench.servers import (
    Served,
    SlotlockFigures,
    SlotlockSlots,
    Stage,
    anchor_server,
    create_pair,
    create_slotlock_slots,
    load_phase,
    slotlock_figures,
    slotlock_server,
)
from service.bench.workloads import WORKLOADS, places_for_run
from service.loadtest.fixture import iso
from service.loadtest.runner import run_async

BARE = "service.bench.anchors:bare_app"
NAIVE = "service.bench.anchors:naive_app"
ANCHOR_TOKEN = "pk_anchor"  # noqa: S105 (the anchors take any key)

# A server, the key it is called with, and the slots its generator goes round.
Load = tuple[Served, str, list[str]]


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """Every knob of `slotlock bench`."""

    duration_s: float = 8.0  # per server and workload: nine phases in about two minutes
    warmup_s: float = 2.0
    rounds: int = 4  # each phase's duration and warm-up, split into turns (rounds.py)
    connections: int = 50
    slots: int = 1000
    server_core: int = 0
    load_core: int = 1
    client: str = "raw"
    log_level: str = "INFO"
    json_path: Path | None = None
    keep_files: bool = False
    workloads: tuple[str, ...] = WORKLOADS


def run_command(options: BenchOptions) -> int:
    """Run the bench and print its table (and write its JSON); 1 if it could not run."""
    try:
        report = run_bench(options)
    except BenchError as error:
        print(f"slotlock bench: {error}", file=sys.stderr)
        return 1
    print(format_report(report))
    if options.json_path is not None:
        write_json(report, options.json_path)
        print(f"figures written to {options.json_path}")
    return 0


def run_bench(options: BenchOptions) -> BenchReport:
    """Measure each workload's three phases on one machine; the files stay behind only on
    failure."""
    directory = Path(tempfile.mkdtemp(prefix="slotlock-bench-"))
    started_at = iso(time.time())
    try:
        with pinned_to(options.load_core if can_pin() else None):
            phases, figures = _phases(options, directory)
    except BaseException:
        print(f"slotlock bench: logs kept in {directory}", file=sys.stderr)
        raise
    if options.keep_files:
        print(f"slotlock bench: logs kept in {directory}", file=sys.stderr)
    else:
        shutil.rmtree(directory, ignore_errors=True)
    return build_report(started_at, _setup(options), phases, figures.calls, figures.memory)


def _phases(options: BenchOptions, directory: Path) -> tuple[list[PhaseResult], SlotlockFigures]:
    pin = can_pin()
    redis_port = free_port()
    with contextlib.ExitStack() as stack:
        server = redis_server(directory, redis_port, options.load_core if pin else None)
        stack.callback(server.stop)
        client = redis.Redis(port=redis_port, decode_responses=True, socket_timeout=10)
        stack.callback(client.close)
        stage = Stage(
            directory=directory, server_core=options.server_core if pin else None,
            load_core=options.load_core if pin else None, redis_port=redis_port,
            redis_pid=server.pid, redis=client, connections=options.connections,
            duration_s=options.duration_s, warmup_s=options.warmup_s, client=options.client,
            log_level=options.log_level,
        )  # fmt: skip
        return _measure_all(stage, options)


def _measure_all(stage: Stage, options: BenchOptions) -> tuple[list[PhaseResult], SlotlockFigures]:
    # One second past the deadline for the requests still in flight.
    places = places_for_run(options.warmup_s + options.duration_s + 1, options.slots)
    anchor_slot_ids = [str(uuid.uuid4()) for _ in range(options.slots)]
    seed_slots(stage.redis, anchor_slot_ids, places)
    pair = run_async(create_pair(stage.redis_url))
    with slotlock_server(stage) as served:
        bookable_places = places if "book" in options.workloads else None
        made = create_slotlock_slots(served.url, pair.secret_key, options.slots, bookable_places)
        slots: SlotlockSlots = run_async(made)
    phases = []
    for workload in options.workloads:
        with contextlib.ExitStack() as servers:
            ceiling = servers.enter_context(anchor_server(stage, "ceiling", BARE, workload))
            naive = servers.enter_context(anchor_server(stage, "naive", NAIVE, workload))
            served = servers.enter_context(slotlock_server(stage))
            loads = {
                "ceiling": (ceiling, ANCHOR_TOKEN, anchor_slot_ids),
                "naive": (naive, ANCHOR_TOKEN, anchor_slot_ids),
                "slotlock": (served, pair.public_key, slots.for_workload(workload)),
            }
            phases += _rounds(stage, options, workload, loads)
    with slotlock_server(stage) as served:
        figures = slotlock_figures(stage, served.url, pair.public_key, slots)
    return phases, figures


def _rounds(
    stage: Stage, options: BenchOptions, workload: str, loads: dict[str, Load]
) -> list[PhaseResult]:
    """Each server's phase of `workload`, measured in rounds taken in turn (rounds.py)."""
    per_round = dataclasses.replace(
        stage,
        duration_s=options.duration_s / options.rounds,
        warmup_s=options.warmup_s / options.rounds,
    )
    measured: dict[str, list[PhaseResult]] = {name: [] for name in loads}
    for index in range(options.rounds):
        for name in rotated(list(loads), index):
            _announce(workload, name, index, options)
            served, token, slot_ids = loads[name]
            measured[name].append(load_phase(per_round, name, served, token, workload, slot_ids))
    return [merged(measured[name]) for name in loads]


@contextlib.contextmanager
def pinned_to(core: int | None) -> Iterator[None]:
    """Keep this process (and the children it starts unpinned) on the generator's core."""
    if core is None:
        yield
        return
    original = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, original)


def _setup(options: BenchOptions) -> BenchSetup:
    pin = can_pin()
    return BenchSetup(
        duration_s=options.duration_s,
        warmup_s=options.warmup_s,
        connections=options.connections,
        slots=options.slots,
        client=options.client,
        server_cores=f"core {options.server_core}" if pin else "any core (no taskset)",
        load_cores=f"core {options.load_core}" if pin else "any core (no taskset)",
        log_level=options.log_level,
        workloads=list(options.workloads),
        rounds=options.rounds,
    )


def _announce(workload: str, phase: str, index: int, options: BenchOptions) -> None:
    print(
        f"slotlock bench: {workload}: {phase}, round {index + 1} of {options.rounds} "
        f"({options.warmup_s / options.rounds:g} s warm-up, "
        f"{options.duration_s / options.rounds:g} s measured)",
        file=sys.stderr,
        flush=True,
    )
