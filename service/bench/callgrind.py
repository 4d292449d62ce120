"""One server under valgrind's callgrind, counting instructions only while a load is sent.

The server starts with counting off (`--instr-atstart=no`); for each load, an
unmeasured warm-up is sent, then `callgrind_control --instr=on`, the counted
requests, `--instr=off` and `--dump`; the dump's totals are that load's count.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from service.bench.processes import BenchError, Child, pinned, port_open, ready, redis_server
from service.bench.workloads import SINGLE_REQUESTS
from service.loadtest.client import ApiClient, Reply
from service.loadtest.fixture import iso
from service.loadtest.runner import run_async
from service.loadtest.transport import open_transport

VALGRIND_START_TIMEOUT_S = 300.0  # Python under valgrind starts some 50x slower
REQUEST_TIMEOUT_S = 60.0
LOCK_AHEAD_S = 600


class InstructionCount(msgspec.Struct):
    """One count: a server's instructions over the requests of one load."""

    name: str
    requests: int
    instructions: int
    server: str = ""  # "ceiling", "naive" or "slotlock"
    workload: str = "lock"  # workloads.py; "hold": lock/unlock of partial holds
    redis_instructions: int = 0  # the redis-server's, over the same requests

    @property
    def per_request(self) -> float:
        """Instructions per request."""
        return self.instructions / self.requests

    @property
    def redis_per_request(self) -> float:
        """The redis-server's instructions per request."""
        return self.redis_instructions / self.requests


@dataclass(frozen=True, slots=True)
class CountedLoad:
    """What one count sends: `workload`'s requests over the slots `slot_ids()` gives (called
    once the server answers, so that slots can be made through it)."""

    name: str
    workload: str
    slot_ids: Callable[[], list[str]]
    quantity: int = 0  # places per partial hold; 0: whole-slot locks


def available() -> bool:
    """Whether valgrind and callgrind_control are installed."""
    return all(shutil.which(tool) for tool in ("valgrind", "callgrind_control"))


def callgrind_argv(out: Path) -> list[str]:
    """valgrind's callgrind, counting only once told to, its dumps next to `out`."""
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]


@dataclass(frozen=True, slots=True)
class CountedRedis:
    """The redis-server the servers use, under callgrind as well: counted over the same
    requests as each server, it gives the Redis side of a request (the scripts' work)."""

    child: Child
    out: Path

    @classmethod
    def start(cls, directory: Path, port: int, core: int | None) -> CountedRedis:
        """Started, and accepting connections."""
        out = directory / "callgrind-redis.out"
        wrapper = tuple(callgrind_argv(out))
        return cls(redis_server(directory, port, core, wrapper, VALGRIND_START_TIMEOUT_S), out)


class Counted:
    """One server under callgrind, counting only while told to."""

    def __init__(
        self, server: str, argv: list[str], port: int, directory: Path, core: int | None
    ) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{port}"
        self.out = directory / f"callgrind-{port}.out"
        self.argv = pinned([*callgrind_argv(self.out), *argv], core)
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
        loads: list[CountedLoad],
        requests: int,
        warmup_requests: int,
        connections: int,
        redis: CountedRedis,
    ) -> list[InstructionCount]:
        """Start; per load: warm up, count `requests` requests (here and in `redis`); stop."""
        print(f"slotlock bench: counting {self.server} (valgrind: slow)", flush=True)
        child = Child(self.argv, self.log, env)
        child.start()
        counts = []
        try:
            child.wait_until(self.is_ready, self.server, timeout_s=VALGRIND_START_TIMEOUT_S)
            for counted in loads:
                load = Load(self.url, token, counted.slot_ids(), connections, counted.workload,
                            counted.quantity)  # fmt: skip
                run_async(load.send(warmup_requests))
                for counting in (redis.child, child):
                    _control(counting, "--instr=on")
                sent = run_async(load.send(requests))
                for counting in (child, redis.child):
                    _control(counting, "--instr=off")
                    _control(counting, "--dump")
                total, redis_total = read_totals(self.out), read_totals(redis.out)
                counts.append(
                    InstructionCount(
                        counted.name, sent, total, self.server, counted.workload, redis_total
                    )
                )
            return counts
        finally:
            child.stop()


@dataclass(frozen=True, slots=True)
class Load:
    """A workload's requests from `connections` clients, each on its own share of the slots."""

    url: str
    token: str
    slot_ids: list[str]
    connections: int
    workload: str = "lock"  # lock: lock/unlock pairs
    quantity: int = 0  # places per partial hold; 0: whole-slot locks

    async def send(self, requests: int) -> int:
        """At least `requests` requests; how many were sent. A refusal stops the count."""
        transport = open_transport("raw", self.url, self.connections, REQUEST_TIMEOUT_S)
        api = ApiClient(transport, self.token, recorder=None)
        until = iso(time.time() + LOCK_AHEAD_S)
        per_step = 2 if self.workload in ("lock", "hold") else 1
        sent = 0

        async def client(number: int) -> None:
            nonlocal sent
            mine, lock_key = self.slot_ids[number :: self.connections], f"count-{number}"
            turn = 0
            while sent < requests:
                slot_id = mine[turn % len(mine)]
                turn += 1
                sent += per_step
                for reply in await self._step(api, slot_id, lock_key, until):
                    if not reply.ok:
                        raise BenchError(f"{self.url} answered {reply.status} while counted")

        try:
            await asyncio.gather(*(client(number) for number in range(self.connections)))
        finally:
            await transport.close()
        return sent

    async def _step(self, api: ApiClient, slot_id: str, lock_key: str, until: str) -> list[Reply]:
        if self.workload in ("lock", "hold"):
            locked = await api.lock(slot_id, lock_key, until, self.quantity)
            return [locked, await api.unlock(slot_id, lock_key)]
        return [await SINGLE_REQUESTS[self.workload](api, slot_id)]


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
