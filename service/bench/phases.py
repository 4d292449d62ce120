"""One measured phase: the generator process against one server, and what was seen meanwhile."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import redis

from service.bench.generator import MEASURING, TOKEN_VARIABLE
from service.bench.probes import RssSampler, core_busy_s, cpu_s
from service.bench.processes import BenchError, clean_environment, pinned
from service.bench.redis_probe import calls_between, command_calls

START_SLACK_S = 30.0  # the generator's start-up, and its last requests after the duration


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """What the generator is told."""

    url: str
    token: str
    slot_ids_path: Path
    connections: int
    duration_s: float
    warmup_s: float
    client: str
    core: int | None
    log_path: Path
    workload: str = "lock"  # workloads.py


@dataclass(frozen=True, slots=True)
class Watched:
    """The processes a phase measures besides the load: the server and, if any, Redis."""

    server_pid: int
    server_core: int | None = None
    load_core: int | None = None
    redis_pid: int | None = None
    redis: redis.Redis | None = None


class PhaseResult(msgspec.Struct, kw_only=True):
    """The figures of one phase."""

    name: str
    requests: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    server_cpu_us_per_request: float  # robust where req/s is not: another process taking turns
    server_cpu_percent: float
    server_core_busy_percent: float  # by anything: the server, and whatever else ran there
    load_core_busy_percent: float  # the generator's and Redis's core, by anything
    generator_cpu_percent: float
    redis_cpu_percent: float
    server_rss_mb: float
    redis_commands: dict[str, int] = {}
    workload: str = "lock"  # what the generator sent (workloads.py)
    round_requests_per_s: list[float] = []  # each round's, when the phase ran in rounds (rounds.py)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    at_s: float
    server_cpu_s: float
    server_core_busy_s: float
    load_core_busy_s: float
    redis_cpu_s: float
    commands: dict[str, int]

    @classmethod
    def take(cls, watched: Watched) -> _Snapshot:
        return cls(
            at_s=time.monotonic(),
            server_cpu_s=cpu_s(watched.server_pid),
            server_core_busy_s=core_busy_s(watched.server_core),
            load_core_busy_s=core_busy_s(watched.load_core),
            redis_cpu_s=0.0 if watched.redis_pid is None else cpu_s(watched.redis_pid),
            commands={} if watched.redis is None else command_calls(watched.redis),
        )


class LineReader:
    """Whole lines from a pipe, each within a time limit."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""

    def read(self, timeout_s: float) -> str:
        """The next line; BenchError if none comes in time or the writer is gone."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise BenchError("the load generator gave no answer in time")
            if select.select([self._fd], [], [], remaining_s)[0]:
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    raise BenchError("the load generator exited early")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()


def measure(name: str, spec: LoadSpec, watched: Watched) -> PhaseResult:
    """Run the generator against the server, sampling CPU, RSS and Redis meanwhile."""
    with spec.log_path.open("ab") as log:
        generator = subprocess.Popen(
            pinned(_generator_argv(spec), spec.core),
            stdout=subprocess.PIPE, stderr=log,
            env=clean_environment(**{TOKEN_VARIABLE: spec.token}),
        )  # fmt: skip
    try:
        assert generator.stdout is not None
        return _observe(name, spec, watched, LineReader(generator.stdout.fileno()))
    finally:
        _stop(generator)


def _observe(name: str, spec: LoadSpec, watched: Watched, lines: LineReader) -> PhaseResult:
    if lines.read(spec.warmup_s + START_SLACK_S) != MEASURING:
        raise BenchError("the load generator did not start measuring")
    before = _Snapshot.take(watched)
    sampler = RssSampler(watched.server_pid)
    sampler.start()
    try:
        summary = json.loads(lines.read(spec.duration_s + START_SLACK_S))
    finally:
        rss_bytes = sampler.stop()
    after = _Snapshot.take(watched)
    return _result(name, spec.workload, summary, before, after, rss_bytes)


def _result(
    name: str,
    workload: str,
    summary: dict[str, Any],
    before: _Snapshot,
    after: _Snapshot,
    rss_bytes: int,
) -> PhaseResult:
    total, wall_s = summary["total"], after.at_s - before.at_s
    ok = sum(count for status, count in total["statuses"].items() if status.startswith("2"))
    return PhaseResult(
        name=name,
        requests=total["requests"],
        requests_per_s=total["requests_per_s"],
        p50_ms=total["p50_ms"],
        p95_ms=total["p95_ms"],
        p99_ms=total["p99_ms"],
        max_ms=total["max_ms"],
        non_2xx=total["requests"] - ok,
        server_cpu_us_per_request=round(
            1e6 * (after.server_cpu_s - before.server_cpu_s) / max(1, total["requests"]), 1
        ),
        server_cpu_percent=_percent(after.server_cpu_s - before.server_cpu_s, wall_s),
        server_core_busy_percent=_percent(
            after.server_core_busy_s - before.server_core_busy_s, wall_s
        ),
        load_core_busy_percent=_percent(after.load_core_busy_s - before.load_core_busy_s, wall_s),
        generator_cpu_percent=_percent(summary["cpu_s"], summary["elapsed_s"]),
        redis_cpu_percent=_percent(after.redis_cpu_s - before.redis_cpu_s, wall_s),
        server_rss_mb=round(rss_bytes / 2**20, 1),
        redis_commands=calls_between(before.commands, after.commands),
        workload=workload,
    )


def _percent(cpu_s: float, wall_s: float) -> float:
    return round(100 * cpu_s / wall_s, 1) if wall_s > 0 else 0.0


def _generator_argv(spec: LoadSpec) -> list[str]:
    return [
        sys.executable, "-m", "service.bench.generator", "--url", spec.url,
        "--slot-ids", str(spec.slot_ids_path), "--connections", str(spec.connections),
        "--duration", str(spec.duration_s), "--warmup", str(spec.warmup_s),
        "--client", spec.client, "--workload", spec.workload,
    ]  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()
