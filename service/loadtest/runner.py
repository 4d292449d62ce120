"""One load run: set up, drive the virtual users for the duration, check, report."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar

from service.loadtest.client import ApiClient
from service.loadtest.fixture import Schedule, SetupError, create_schedule, iso
from service.loadtest.invariants import verdict
from service.loadtest.observations import Observations
from service.loadtest.options import LoadOptions
from service.loadtest.progress import show_progress
from service.loadtest.report import (
    LoadReport,
    endpoint_table,
    invariant_lines,
    rate_limit_hint,
    write_json,
)
from service.loadtest.scenarios import Behaviour, Run, checkout_user, group_user, hot_lock_user
from service.loadtest.stats import Recorder
from service.loadtest.transport import Transport, open_transport
from service.loadtest.verify import CONCURRENCY, check_all

T = TypeVar("T")


@dataclass(slots=True)
class Outcome:
    """A finished run: its report, and what the invariants were checked against."""

    report: LoadReport
    schedule: Schedule
    observations: Observations


def run_command(options: LoadOptions) -> int:
    """Run, print the table and the invariants, write the JSON; 1 if an invariant broke."""
    print(_banner(options), file=sys.stderr)
    try:
        outcome = run_async(run_load(options))
    except SetupError as error:
        print(f"slotlock loadtest: {error}", file=sys.stderr)
        return 2
    show(outcome.report, options)
    return verdict(outcome.report.invariants)


def show(report: LoadReport, options: LoadOptions) -> None:
    """Print the table, any rate-limit hint and the invariants; write the JSON file."""
    print(endpoint_table(report.endpoints))
    hint = rate_limit_hint(report.endpoints)
    if hint is not None:
        print(hint)
    print("invariants:")
    print(invariant_lines(report.invariants))
    if options.json_path is not None:
        write_json(report, options.json_path)
        print(f"figures written to {options.json_path}")


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop where it is installed, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(work)


async def run_load(options: LoadOptions, stream: TextIO | None = None) -> Outcome:
    """Create the resource and slots, drive the users, then check every invariant."""
    stream = sys.stderr if stream is None else stream
    connections = options.users + CONCURRENCY
    transport = open_transport(options.client, options.url, connections, options.timeout_s)
    try:
        return await _drive(options, transport, stream)
    finally:
        await transport.close()


async def _drive(options: LoadOptions, transport: Transport, stream: TextIO) -> Outcome:
    admin = ApiClient(transport, options.secret_key, recorder=None)
    started_at = iso(time.time())
    name = f"loadtest {options.scenario} {started_at}"
    schedule = await create_schedule(admin, name, slot_count(options), options.places, time.time())
    recorder, observations = Recorder(), Observations()
    frontend = ApiClient(transport, options.frontend_key, recorder)
    run = Run(frontend, schedule, behaviour(options), 0.0, observations)
    elapsed_s = await drive_users(run, options, stream)
    results = await check_all(admin, schedule, observations)
    report = LoadReport(
        scenario=options.scenario,
        options=options.described(),
        started_at=started_at,
        elapsed_s=round(elapsed_s, 3),
        resource_id=schedule.resource_id,
        slots=len(schedule.slot_ids),
        endpoints=recorder.summaries(elapsed_s),
        invariants=results,
        ok=verdict(results) == 0,
    )
    return Outcome(report, schedule, observations)


def slot_count(options: LoadOptions) -> int:
    """Slots to create: hot-lock gives every user at least one of its own."""
    if options.scenario == "hot-lock":
        return max(options.slots, options.users)
    return options.slots


def behaviour(options: LoadOptions) -> Behaviour:
    """The users' decision knobs from the options."""
    return Behaviour(
        think_ms=options.think_ms,
        book_ratio=options.book_ratio,
        cancel_ratio=options.cancel_ratio,
        lock_hold_s=options.lock_hold_s,
    )


async def drive_users(run: Run, options: LoadOptions, stream: TextIO) -> float:
    """Run every user until the deadline (and their last iteration); the seconds it took."""
    started_s = time.monotonic()
    run.deadline_s = started_s + options.duration_s
    recorder = run.api.recorder
    progress = None
    if options.progress and recorder is not None:
        progress = asyncio.create_task(show_progress(recorder, options.duration_s, stream))
    try:
        users = [asyncio.create_task(user) for user in user_coroutines(run, options)]
        await wait_bounded(users, options.duration_s + grace_s(options))
    finally:
        if progress is not None:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
    return time.monotonic() - started_s


def grace_s(options: LoadOptions) -> float:
    """How long the last iterations may run past the deadline: 4 requests and 3 thinks."""
    return 4 * options.timeout_s + 3 * 1.5 * options.think_ms / 1000


async def wait_bounded(tasks: list[asyncio.Task[None]], limit_s: float) -> None:
    """Wait for the tasks at most `limit_s`, cancel the rest; re-raise a task's failure."""
    done, pending = await asyncio.wait(tasks, timeout=limit_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        failure = task.exception()
        if failure is not None:
            raise failure


def user_coroutines(run: Run, options: LoadOptions) -> list[Coroutine[Any, Any, None]]:
    """One coroutine per virtual user, each with its own seeded random generator."""
    rngs = [random.Random(options.seed * 1_000_003 + index) for index in range(options.users)]
    if options.scenario == "hot-lock":
        slot_ids = run.schedule.slot_ids
        return [
            hot_lock_user(run, rng, slot_ids[index :: options.users])
            for index, rng in enumerate(rngs)
        ]
    if options.scenario == "group":
        return [group_user(run, rng) for rng in rngs]
    return [checkout_user(run, rng) for rng in rngs]


def _banner(options: LoadOptions) -> str:
    return (
        f"slotlock loadtest {options.scenario}: {options.url}, {options.users} users, "
        f"{options.duration_s:g} s, {slot_count(options)} slots of capacity {options.places}, "
        f"think {options.think_ms:g} ms, seed {options.seed}, client {options.client}"
    )
