"""The bench's load generator, a process of its own: `python -m service.bench.generator`.

N connections each send one workload's requests (workloads.py) over their own
share of the slots in turn (lock: the hot-lock scenario, nothing observed) for
a warm-up and then a measured duration. It prints `measuring` when the
measured window opens and, at the end, one JSON object: the summary of that
window and the CPU it used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import msgspec

from service.bench.workloads import SINGLE_REQUESTS, WORKLOADS, single_request_user
from service.loadtest.client import ApiClient
from service.loadtest.fixture import Schedule
from service.loadtest.runner import run_async, wait_bounded
from service.loadtest.scenarios import Behaviour, Run, hot_lock_user
from service.loadtest.stats import Recorder
from service.loadtest.transport import CLIENTS, open_transport

MEASURING = "measuring"
TOKEN_VARIABLE = "BENCH_TOKEN"  # noqa: S105 (a variable name: the key stays off argv)
TIMEOUT_S = 10.0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def generate(arguments: argparse.Namespace, slot_ids: list[str]) -> dict[str, Any]:
    """Drive the load; the measured window's summary."""
    transport = open_transport(arguments.client, arguments.url, arguments.connections, TIMEOUT_S)
    api = ApiClient(transport, os.environ[TOKEN_VARIABLE], Recorder())
    schedule = Schedule("", slot_ids, 0, 1)
    started_s = time.monotonic()
    deadline_s = started_s + arguments.warmup + arguments.duration
    run = Run(api, schedule, Behaviour(), deadline_s, observations=None)
    count = arguments.connections
    users = [
        asyncio.create_task(_user(arguments.workload, run, n, slot_ids[n::count]))
        for n in range(count)
    ]
    try:
        await asyncio.sleep(arguments.warmup)
        api.recorder, window_started_s, cpu_before_s = Recorder(), time.monotonic(), _cpu_s()
        print(MEASURING, flush=True)
        await wait_bounded(users, deadline_s - time.monotonic() + 4 * TIMEOUT_S)
    finally:
        await transport.close()
    elapsed_s = time.monotonic() - window_started_s
    total = api.recorder.summaries(elapsed_s)[-1]
    return {"elapsed_s": elapsed_s, "cpu_s": _cpu_s() - cpu_before_s, "total": total}


def _user(workload: str, run: Run, number: int, slot_ids: list[str]) -> Coroutine[Any, Any, None]:
    if workload == "lock":
        return hot_lock_user(run, random.Random(number), slot_ids)
    return single_request_user(run, SINGLE_REQUESTS[workload], slot_ids)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the JSON summary (the key comes from BENCH_TOKEN)."""
    parser = argparse.ArgumentParser(prog="python -m service.bench.generator")
    parser.add_argument("--url", required=True)
    parser.add_argument("--slot-ids", type=Path, required=True, help="a JSON list of slot ids")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--client", choices=CLIENTS, default="raw")
    parser.add_argument("--workload", choices=WORKLOADS, default="lock")
    arguments = parser.parse_args(argv)
    slot_ids = json.loads(arguments.slot_ids.read_text())
    summary = run_async(generate(arguments, slot_ids))
    sys.stdout.write(msgspec.json.encode(summary).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
