"""`slotlock bench --instructions N`: instructions per request, counted by callgrind.

Requests/s and even CPU time per request move by 10-30% between runs on a
shared virtual machine; an instruction count barely does (the anchors' within
0.1%, slotlock's within a few percent, as its batch sizes follow the timing),
so it tells whether a change made the service's own work smaller.
Each server (bare, naive, slotlock) runs under `valgrind --tool=callgrind`
with counting off; after an unmeasured warm-up, counting is switched on for N
lock/unlock requests at the bench's concurrency, and off again. slotlock is
then counted a second time, in the same process, over N lock/unlock requests
that send `quantity` (partial holds of 2 places on slots of capacity 4), and a
third time over whole-slot locks again. The holds are compared with that third
count: the first counted window of a process costs some 10% more whichever
kind it counts (valgrind translates the code afresh when counting starts, so
that window runs longer and more of the service's timed background work falls
into it), and the first count stays as it always was, comparable with earlier
runs.

What it counts: the server process's user-space instructions (the interpreter,
C extensions, libc). What it leaves out: the kernel's work, system calls and
the loopback network, which is where the naive anchor's Redis round trip per
request costs most; so these ratios are not requests/s ratios.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from service.bench.processes import (
    BenchError,
    Child,
    can_pin,
    clean_environment,
    free_port,
    pinned,
    port_open,
    ready,
    redis_server,
    slotlock_argv,
    uvicorn_argv,
)
from service.bench.runner import BARE, NAIVE
from service.bench.servers import UNLIMITED, create_classes, create_pair, create_schedules
from service.loadtest.client import ApiClient
from service.loadtest.fixture import iso
from service.loadtest.runner import run_async
from service.loadtest.transport import open_transport

VALGRIND_START_TIMEOUT_S = 300.0  # Python under valgrind starts some 50x slower
REQUEST_TIMEOUT_S = 60.0
LOCK_AHEAD_S = 600
HOLD_QUANTITY = 2  # places per partial hold in the holds count
HOLD_CAPACITY = 4  # places per slot there
SLOTLOCK = "slotlock"
SLOTLOCK_HOLDS = "slotlock, partial holds"
SLOTLOCK_AGAIN = "slotlock, locks again"


@dataclass(frozen=True, slots=True)
class InstructionOptions:
    """The knobs of `slotlock bench --instructions`."""

    requests: int = 3000
    warmup_requests: int = 600
    connections: int = 50
    slots: int = 1000
    server_core: int = 0
    load_core: int = 1


class InstructionCount(msgspec.Struct):
    """One server's count."""

    name: str
    requests: int
    instructions: int

    @property
    def per_request(self) -> float:
        """Instructions per request."""
        return self.instructions / self.requests


def available() -> bool:
    """Whether valgrind and callgrind_control are installed."""
    return all(shutil.which(tool) for tool in ("valgrind", "callgrind_control"))


def run_instructions(options: InstructionOptions) -> list[InstructionCount]:
    """Count the three servers in turn, on a redis-server of their own."""
    if not available():
        raise BenchError("--instructions needs valgrind (apt-get install valgrind)")
    directory = Path(tempfile.mkdtemp(prefix="slotlock-instructions-"))
    pin = can_pin()
    server_core = options.server_core if pin else None
    redis_port = free_port()
    redis = redis_server(directory, redis_port, options.load_core if pin else None)
    try:
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        anchor_env = clean_environment(REDIS_URL=redis_url)
        anchor_slots = [str(uuid.uuid4()) for _ in range(options.slots)]
        counts = []
        for name, factory in (("ceiling (bare, no Redis)", BARE), ("naive (1 EVALSHA)", NAIVE)):
            port = free_port()
            anchor = _Counted(name, uvicorn_argv(factory, port), port, directory, server_core)
            loads = [(name, lambda: anchor_slots, 0)]
            counts += anchor.count(anchor_env, "pk_anchor", loads, options)
        pair = run_async(create_pair(redis_url))
        port = free_port()
        slotlock = _Counted(SLOTLOCK, slotlock_argv(port), port, directory, server_core)
        slotlock.ready_path = "/readyz"

        made: dict[str, list[str]] = {}

        def slots() -> list[str]:
            if "main" not in made:
                main, _ = run_async(create_schedules(slotlock.url, pair.secret_key, options.slots))
                made["main"] = main.slot_ids
            return made["main"]

        def classes() -> list[str]:
            made = create_classes(slotlock.url, pair.secret_key, options.slots, HOLD_CAPACITY)
            return run_async(made).slot_ids

        slotlock_env = clean_environment(REDIS_URL=redis_url, **UNLIMITED)
        loads = [
            (SLOTLOCK, slots, 0),
            (SLOTLOCK_HOLDS, classes, HOLD_QUANTITY),
            (SLOTLOCK_AGAIN, slots, 0),
        ]
        counts += slotlock.count(slotlock_env, pair.public_key, loads, options)
    finally:
        redis.stop()
    shutil.rmtree(directory, ignore_errors=True)
    return counts


class _Counted:
    """One server under callgrind, counting only while told to."""

    def __init__(
        self, name: str, argv: list[str], port: int, directory: Path, core: int | None
    ) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        self.out = directory / f"callgrind-{port}.out"
        callgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        self.argv = pinned([*callgrind, f"--callgrind-out-file={self.out}", *argv], core)
        self.log = directory / f"callgrind-{port}.log"
        self.port = port
        self.ready_path: str | None = None  # a path answering 200 when ready; else: port open

    def is_ready(self) -> bool:
        """Whether the server accepts requests yet."""
        if self.ready_path is None:
            return port_open(self.port)
        return ready(self.url + self.ready_path)

    def count(
        self,
        env: dict[str, str],
        token: str,
        loads: list[tuple[str, Callable[[], list[str]], int]],
        options: InstructionOptions,
    ) -> list[InstructionCount]:
        """Start; per (name, slots, quantity): warm up, count `options.requests`; stop."""
        print(f"slotlock bench: counting {self.name} (valgrind: slow)", flush=True)
        child = Child(self.argv, self.log, env)
        child.start()
        counts = []
        try:
            child.wait_until(self.is_ready, self.name, timeout_s=VALGRIND_START_TIMEOUT_S)
            for name, slot_ids, quantity in loads:
                load = _Load(self.url, token, slot_ids(), options.connections, quantity)
                run_async(load.send(options.warmup_requests))
                _control(child, "--instr=on")
                sent = run_async(load.send(options.requests))
                _control(child, "--instr=off")
                _control(child, "--dump")
                counts.append(InstructionCount(name, sent, read_totals(self.out)))
            return counts
        finally:
            child.stop()


@dataclass(frozen=True, slots=True)
class _Load:
    """Lock/unlock pairs from `connections` clients, each on its own share of the slots."""

    url: str
    token: str
    slot_ids: list[str]
    connections: int
    quantity: int = 0  # places per partial hold; 0: whole-slot locks

    async def send(self, requests: int) -> int:
        """At least `requests` requests; how many were sent. A refusal stops the count."""
        transport = open_transport("raw", self.url, self.connections, REQUEST_TIMEOUT_S)
        api = ApiClient(transport, self.token, recorder=None)
        until = iso(time.time() + LOCK_AHEAD_S)
        sent = 0

        async def client(number: int) -> None:
            nonlocal sent
            mine, lock_key = self.slot_ids[number :: self.connections], f"count-{number}"
            turn = 0
            while sent < requests:
                slot_id = mine[turn % len(mine)]
                turn += 1
                sent += 2
                for reply in (
                    await api.lock(slot_id, lock_key, until, self.quantity),
                    await api.unlock(slot_id, lock_key),
                ):
                    if not reply.ok:
                        raise BenchError(f"{self.url} answered {reply.status} while counted")

        try:
            await asyncio.gather(*(client(number) for number in range(self.connections)))
        finally:
            await transport.close()
        return sent


def _control(child: Child, command: str) -> None:
    # callgrind_control waits until the running program has done what it was told.
    subprocess.run(
        ["callgrind_control", command, str(child.pid)],
        check=True,
        capture_output=True,
        timeout=REQUEST_TIMEOUT_S,
    )


def read_totals(out: Path) -> int:
    """The instructions in the dumps callgrind wrote next to `out` (`out.1`, `out.2`, ...);
    the dumps are removed, so the next count reads only its own."""
    total = 0
    for dump in sorted(out.parent.glob(f"{out.name}.*")):
        for line in dump.read_text().splitlines():
            if line.startswith("totals:"):
                total += int(line.split()[1])
        dump.unlink()
    if total == 0:
        raise BenchError(f"callgrind wrote no counts next to {out}")
    return total


def format_instructions(counts: list[InstructionCount], options: InstructionOptions) -> str:
    """The table `slotlock bench --instructions` prints."""
    by_name = {count.name: count for count in counts}
    slotlock = by_name[SLOTLOCK].per_request
    lines = [
        "slotlock bench --instructions: user-space instructions per request (callgrind), "
        f"{options.requests:,} lock/unlock requests after {options.warmup_requests:,} "
        f"unmeasured, {options.connections} connections, {options.slots} slots",
        "",
        f"{'server':<28}{'instructions/request':>22}",
        *(f"{count.name:<28}{count.per_request:>22,.0f}" for count in counts),
        "",
    ]
    for count in counts:
        if count.name not in (SLOTLOCK, SLOTLOCK_HOLDS, SLOTLOCK_AGAIN):
            lines.append(f"slotlock / {count.name}: {slotlock / count.per_request:.2f}")
    if SLOTLOCK_HOLDS in by_name and SLOTLOCK_AGAIN in by_name:
        holds, again = by_name[SLOTLOCK_HOLDS].per_request, by_name[SLOTLOCK_AGAIN].per_request
        lines.append(
            f"partial holds ({HOLD_QUANTITY} of {HOLD_CAPACITY} places) / whole-slot locks "
            f"counted after them: {holds / again:.3f} (target <= 1.10; the first count of a "
            "process runs some 10% high)"
        )
    lines.append(
        "Counted: the server's user-space instructions. Not counted: the kernel's work "
        "(system calls, loopback TCP), where naive's Redis round trip per request costs most."
    )
    return "\n".join(lines)


def write_json(counts: list[InstructionCount], path: Path) -> None:
    """The counts as JSON."""
    path.write_bytes(msgspec.json.encode(counts))
