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
runs. Then every server is counted, in the same process, over N GET /slots/:id
and over N POST /bookings (workloads.py); each of these counts comes after
the lock counts, so slotlock's and the anchors' are alike in that.

What it counts: the server process's user-space instructions (the interpreter,
C extensions, libc). What it leaves out: the kernel's work, system calls and
the loopback network, which is where the naive anchor's Redis round trip per
request costs most; so these ratios are not requests/s ratios. The
redis-server runs under callgrind too, counted over the same requests: its
column is the Redis side of a request, mostly the scripts' work, which in the
timed bench shares a core with the load generator.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import msgspec
import redis

from service.bench.anchor_stores import seed_slots
from service.bench.callgrind import Counted, CountedLoad, CountedRedis, InstructionCount, available
from service.bench.processes import (
    BenchError,
    can_pin,
    clean_environment,
    free_port,
    slotlock_argv,
    uvicorn_argv,
)
from service.bench.runner import ANCHOR_TOKEN, BARE, NAIVE
from service.bench.servers import UNLIMITED, create_pair, create_resource
from service.bench.workloads import LABELS, WORKLOADS, places_for
from service.loadtest.runner import run_async

HOLD_QUANTITY = 2  # places per partial hold in the holds count
HOLD_CAPACITY = 4  # places per slot there
SLOTLOCK = "slotlock"
SLOTLOCK_HOLDS = "slotlock, partial holds"
SLOTLOCK_AGAIN = "slotlock, locks again"
ANCHORS = (("ceiling", "ceiling (bare, no Redis)", BARE), ("naive", "naive (1 EVALSHA)", NAIVE))


@dataclass(frozen=True, slots=True)
class InstructionOptions:
    """The knobs of `slotlock bench --instructions`."""

    requests: int = 3000
    warmup_requests: int = 600
    connections: int = 50
    slots: int = 1000
    server_core: int = 0
    load_core: int = 1
    workloads: tuple[str, ...] = WORKLOADS

    @property
    def places(self) -> int:
        """Places per slot to book: every counted and warm-up booking, and one more round."""
        bookings = self.requests + self.warmup_requests + 2 * self.connections
        return places_for(bookings, self.slots)


def run_instructions(options: InstructionOptions) -> list[InstructionCount]:
    """Count the three servers in turn, on a redis-server of their own."""
    if not available():
        raise BenchError("--instructions needs valgrind (apt-get install valgrind)")
    directory = Path(tempfile.mkdtemp(prefix="slotlock-instructions-"))
    redis_port = free_port()
    server = CountedRedis.start(directory, redis_port, options.load_core if can_pin() else None)
    try:
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        counts = _count_anchors(options, directory, server, redis_url, redis_port)
        counts += _count_slotlock(options, directory, server, redis_url)
    finally:
        server.child.stop()
    shutil.rmtree(directory, ignore_errors=True)
    return counts


def _server_core(options: InstructionOptions) -> int | None:
    return options.server_core if can_pin() else None


def _count_anchors(
    options: InstructionOptions,
    directory: Path,
    counted_redis: CountedRedis,
    redis_url: str,
    redis_port: int,
) -> list[InstructionCount]:
    anchor_slots = [str(uuid.uuid4()) for _ in range(options.slots)]
    with redis.Redis(port=redis_port, decode_responses=True) as client:
        seed_slots(client, anchor_slots, options.places)
    counts = []
    for server, lock_name, factory in ANCHORS:
        port = free_port()
        argv = uvicorn_argv(factory, port)
        anchor = Counted(server, argv, port, directory, _server_core(options))
        names = {"lock": lock_name, "read": f"{server}, read", "book": f"{server}, book"}
        loads = [CountedLoad(names[workload], workload, lambda: anchor_slots)
                 for workload in options.workloads]  # fmt: skip
        env = clean_environment(REDIS_URL=redis_url)
        counts += anchor.count(env, ANCHOR_TOKEN, loads, *_sizes(options), counted_redis)
    return counts


def _count_slotlock(
    options: InstructionOptions, directory: Path, counted_redis: CountedRedis, redis_url: str
) -> list[InstructionCount]:
    pair = run_async(create_pair(redis_url))
    port = free_port()
    slotlock = Counted(SLOTLOCK, slotlock_argv(port), port, directory, _server_core(options))
    slotlock.ready_path = "/readyz"
    made: dict[str, list[str]] = {}

    def slots(name: str, capacity: int) -> list[str]:
        # Made once the server answers, through its API; the first call makes them.
        if name not in made:
            created = create_resource(slotlock.url, pair.secret_key, name, options.slots, capacity)
            made[name] = run_async(created).slot_ids
        return made[name]

    loads = []
    if "lock" in options.workloads:
        loads += [
            CountedLoad(SLOTLOCK, "lock", lambda: slots("bench", 1)),
            CountedLoad(SLOTLOCK_HOLDS, "hold", lambda: slots("bench classes", HOLD_CAPACITY),
                        HOLD_QUANTITY),
            CountedLoad(SLOTLOCK_AGAIN, "lock", lambda: slots("bench", 1)),
        ]  # fmt: skip
    if "read" in options.workloads:
        loads.append(CountedLoad("slotlock, read", "read", lambda: slots("bench", 1)))
    if "book" in options.workloads:
        bookable = lambda: slots("bench bookings", options.places)  # noqa: E731
        loads.append(CountedLoad("slotlock, book", "book", bookable))
    # Under callgrind the worker runs some 50x slower, by the wall clock too: the default
    # 1 s Redis timeout then trips on a busy machine (503 E103), so it gets 30 s.
    env = clean_environment(REDIS_URL=redis_url, SLOTLOCK_REDIS_TIMEOUT_S="30", **UNLIMITED)
    return slotlock.count(env, pair.public_key, loads, *_sizes(options), counted_redis)


def _sizes(options: InstructionOptions) -> tuple[int, int, int]:
    return options.requests, options.warmup_requests, options.connections


def format_instructions(counts: list[InstructionCount], options: InstructionOptions) -> str:
    """The table `slotlock bench --instructions` prints."""
    by_name = {count.name: count for count in counts}
    lines = [
        "slotlock bench --instructions: user-space instructions per request (callgrind), "
        f"{options.requests:,} requests per count after {options.warmup_requests:,} "
        f"unmeasured, {options.connections} connections, {options.slots} slots",
        "",
        f"{'server':<28}{'instructions/request':>22}{'Redis/request':>15}",
        *(
            f"{count.name:<28}{count.per_request:>22,.0f}{count.redis_per_request:>15,.0f}"
            for count in counts
        ),
        "",
        *_ratios(counts),
    ]
    if SLOTLOCK_HOLDS in by_name and SLOTLOCK_AGAIN in by_name:
        holds, again = by_name[SLOTLOCK_HOLDS].per_request, by_name[SLOTLOCK_AGAIN].per_request
        lines.append(
            f"partial holds ({HOLD_QUANTITY} of {HOLD_CAPACITY} places) / whole-slot locks "
            f"counted after them: {holds / again:.3f} (target <= 1.10; the first count of a "
            "process runs some 10% high)"
        )
    lines.append(
        "Counted: the server's user-space instructions, and redis-server's over the same "
        "requests. Not counted: the kernel's work (system calls, loopback TCP), where "
        "naive's Redis round trip per request costs most."
    )
    return "\n".join(lines)


def _ratios(counts: list[InstructionCount]) -> list[str]:
    """slotlock's count over each anchor's, per workload (lock: its first count, as ever)."""
    first: dict[tuple[str, str], InstructionCount] = {}
    for count in counts:
        first.setdefault((count.server, count.workload), count)
    lines = []
    for workload in WORKLOADS:
        slotlock = first.get((SLOTLOCK, workload))
        anchors = [first.get((server, workload)) for server, _, _ in ANCHORS]
        pairs = [(anchor, slotlock.per_request / anchor.per_request)
                 for anchor in anchors if anchor is not None and slotlock is not None]  # fmt: skip
        if workload == "lock":  # the lines earlier runs printed
            lines += [f"slotlock / {anchor.name}: {ratio:.2f}" for anchor, ratio in pairs]
        elif pairs:
            each = ", ".join(f"slotlock / {anchor.server} {ratio:.2f}" for anchor, ratio in pairs)
            lines.append(f"{LABELS[workload]}: {each}")
    return lines


def write_json(counts: list[InstructionCount], path: Path) -> None:
    """The counts as JSON."""
    path.write_bytes(msgspec.json.encode(counts))
