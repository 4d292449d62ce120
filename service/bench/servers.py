"""The three servers the bench measures: started, loaded (a phase, or a round of one), stopped."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from service import keyspace
from service.bench.calls import CallsPerRequest, calls_per_request
from service.bench.phases import LoadSpec, PhaseResult, Watched, measure
from service.bench.processes import clean_environment, free_port, slotlock_serve, uvicorn_app
from service.bench.redis_probe import SlotMemory, slot_memory
from service.clock import system_clock_ms
from service.connect import redis_from_settings
from service.loadtest.client import ApiClient
from service.loadtest.fixture import Schedule, create_schedule, iso
from service.loadtest.runner import run_async
from service.loadtest.transport import open_transport
from service.routes.slots import lock_holder
from service.settings import Settings
from service.store.api_keys import KeyPair, KeyStore

# The service's per-key rate limits, raised so that the bench measures locks, not 429s.
UNLIMITED = {
    "SLOTLOCK_RATE_LIMIT_PUBLIC": "1000000000/second",
    "SLOTLOCK_RATE_LIMIT_SECRET": "1000000000/second",
}
CALIBRATION_SLOTS = 100
MEMORY_PROBE_KEY = "bench-memory-probe"
HOLD_PROBE_KEY = "bench-memory-probe-hold"  # another key: each holds set then has one slot
SETUP_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Stage:
    """Where a phase runs: cores, the bench's directory, its Redis, and the load's shape."""

    directory: Path
    server_core: int | None
    load_core: int | None
    redis_port: int
    redis_pid: int
    redis: redis.Redis
    connections: int
    duration_s: float
    warmup_s: float
    client: str
    log_level: str

    @property
    def redis_url(self) -> str:
        """REDIS_URL of the bench's redis-server."""
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def load(self, url: str, token: str, slot_ids: list[str], name: str, workload: str) -> LoadSpec:
        """The generator's instructions for a phase of `workload` against `url`."""
        path = self.directory / f"{name}-{workload}-slots.json"
        path.write_text(json.dumps(slot_ids))
        return LoadSpec(
            url=url, token=token, slot_ids_path=path, connections=self.connections,
            duration_s=self.duration_s, warmup_s=self.warmup_s, client=self.client,
            core=self.load_core, log_path=self.directory / f"{name}-{workload}-generator.log",
            workload=workload,
        )  # fmt: skip

    def watched(self, server_pid: int) -> Watched:
        """What a phase samples besides the load: the server, both cores, and Redis."""
        return Watched(server_pid, self.server_core, self.load_core, self.redis_pid, self.redis)


@dataclass(frozen=True, slots=True)
class SlotlockFigures:
    """What slotlock is measured by besides its load: Redis calls per request, memory per slot."""

    calls: dict[str, CallsPerRequest]
    memory: SlotMemory


@dataclass(frozen=True, slots=True)
class SlotlockSlots:
    """The slots slotlock's phases load, created once through its API."""

    main: Schedule  # locked and unlocked, and read
    calibration: Schedule  # Redis calls per request
    bookable: Schedule | None  # booked; its slots have places enough for the run

    def for_workload(self, workload: str) -> list[str]:
        """The slot ids a workload's generator goes round."""
        if workload == "book":
            assert self.bookable is not None, "slots to book were not made"
            return self.bookable.slot_ids
        return self.main.slot_ids


@dataclass(frozen=True, slots=True)
class Served:
    """A running server: where it answers, and its process."""

    url: str
    pid: int


@contextlib.contextmanager
def anchor_server(stage: Stage, name: str, factory: str, workload: str) -> Iterator[Served]:
    """One anchor app (service.bench.anchors) served by a pinned uvicorn; stopped on the way out."""
    port = free_port()
    env = clean_environment(REDIS_URL=stage.redis_url)
    log = stage.directory / f"{name}-{workload}.log"
    server = uvicorn_app(factory, port, stage.server_core, log, env)
    try:
        yield Served(f"http://127.0.0.1:{port}", server.pid)
    finally:
        server.stop()


@contextlib.contextmanager
def slotlock_server(stage: Stage) -> Iterator[Served]:
    """`slotlock serve` on the bench's Redis, pinned and ready; stopped on the way out."""
    port = free_port()
    env = clean_environment(
        REDIS_URL=stage.redis_url, SLOTLOCK_LOG_LEVEL=stage.log_level, **UNLIMITED
    )
    server = slotlock_serve(port, stage.server_core, stage.directory / "slotlock.log", env)
    try:
        yield Served(f"http://127.0.0.1:{port}", server.pid)
    finally:
        server.stop()


def load_phase(
    stage: Stage, name: str, server: Served, token: str, workload: str, slot_ids: list[str]
) -> PhaseResult:
    """Load a running server (anchor_server, slotlock_server) with one workload, for the
    stage's warm-up and duration."""
    spec = stage.load(server.url, token, slot_ids, name, workload)
    return measure(name, spec, stage.watched(server.pid))


def slotlock_figures(stage: Stage, url: str, token: str, slots: SlotlockSlots) -> SlotlockFigures:
    """Count slotlock's Redis calls per request, then measure a slot's memory."""
    calls = calls_per_request(url, token, slots.calibration.slot_ids, stage.redis)
    return SlotlockFigures(calls, memory_per_slot(url, token, slots.main, stage.redis))


async def create_pair(redis_url: str) -> KeyPair:
    """A key pair of environment `bench`, written straight into the bench's Redis."""
    client = redis_from_settings(Settings(redis_url=redis_url))
    try:
        return await KeyStore(client, system_clock_ms).create_pair("bench")
    finally:
        await client.aclose()


async def create_schedules(url: str, secret_key: str, slot_count: int) -> tuple[Schedule, Schedule]:
    """The loaded resource's slots, and a small resource's for counting calls."""
    transport = open_transport("raw", url, 1, SETUP_TIMEOUT_S)
    api = ApiClient(transport, secret_key, recorder=None)
    try:
        now_s = time.time()
        main = await create_schedule(api, "bench", slot_count, 1, now_s)
        calibration = await create_schedule(api, "bench calls", CALIBRATION_SLOTS, 1, now_s)
        return main, calibration
    finally:
        await transport.close()


async def create_slotlock_slots(
    url: str, secret_key: str, slot_count: int, places: int | None
) -> SlotlockSlots:
    """The main and calibration resources, and (given `places`) one of slots to book."""
    main, calibration = await create_schedules(url, secret_key, slot_count)
    bookable = None
    if places is not None:
        bookable = await create_resource(url, secret_key, "bench bookings", slot_count, places)
    return SlotlockSlots(main, calibration, bookable)


async def create_resource(
    url: str, secret_key: str, name: str, slot_count: int, capacity: int
) -> Schedule:
    """A published resource of `slot_count` slots of `capacity` places each."""
    transport = open_transport("raw", url, 1, SETUP_TIMEOUT_S)
    api = ApiClient(transport, secret_key, recorder=None)
    try:
        return await create_schedule(api, name, slot_count, capacity, time.time())
    finally:
        await transport.close()


def memory_per_slot(url: str, token: str, schedule: Schedule, client: redis.Redis) -> SlotMemory:
    """Lock one free slot of the loaded resource, hold a place of another, and add up what
    each owns in Redis."""
    locked_id, held_id = [
        slot_id for slot_id in schedule.slot_ids if not client.exists(keyspace.lock(slot_id))
    ][:2]
    run_async(_lock(url, token, locked_id, MEMORY_PROBE_KEY, 0))
    run_async(_lock(url, token, held_id, HOLD_PROBE_KEY, 1))
    holders = lock_holder(MEMORY_PROBE_KEY), lock_holder(HOLD_PROBE_KEY)
    return slot_memory(client, locked_id, len(schedule.slot_ids), *holders, held_id)


async def _lock(url: str, token: str, slot_id: str, lock_key: str, quantity: int) -> None:
    transport = open_transport("raw", url, 1, SETUP_TIMEOUT_S)
    try:
        api = ApiClient(transport, token, recorder=None)
        reply = await api.lock(slot_id, lock_key, iso(time.time() + 300), quantity)
        if not reply.ok:
            raise RuntimeError(f"could not lock a slot to measure it: {reply.status}")
    finally:
        await transport.close()
