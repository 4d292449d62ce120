"""`slotlock bench --scale`: lists at 1,000 and 100,000 slots, and locks beside a lister.

One redis-server and one `slotlock serve --workers 1` (pinned as in the main bench),
one environment with a resource of each size, loaded in-process through the service's
own stores and scripts (batches of 1,000 slots per script call): every 7th slot booked
full, every 13th disabled, 50 locked. Then:

1. each filter's page of 20, requested one after the other at each size: the median
   and p99 latency and the ratio of the medians (target <= 1.5x);
2. lock and unlock load (the main bench's generator) on the large resource's free
   slots with nobody listing, then again while one client lists without pause
   (target: lock p99 while listing <= 20 ms);
3. Redis memory per slot of the large resource, idle and locked (target <= 1 KiB).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import redis

from service import keyspace
from service.bench.phases import LoadSpec, PhaseResult, Watched, measure
from service.bench.processes import clean_environment, free_port, redis_server, slotlock_serve
from service.bench.redis_probe import SlotMemory, slot_memory
from service.bench.servers import UNLIMITED, create_pair
from service.clock import system_clock_ms
from service.connect import redis_from_settings
from service.loadtest.runner import run_async
from service.loadtest.transport import Transport, open_transport
from service.routes.slots import lock_holder
from service.services import Services
from service.settings import Settings
from service.store.client import RedisClient
from service.store.resources import ResourceDraft
from service.store.slots import SlotDraft

HOUR_MS = 3_600_000
LOAD_BATCH = 1_000  # slots per create_slots call
LOCKED_PER_RESOURCE = 50
PROBE_KEY = "scale-memory-probe"
TARGET_RATIO = 1.5
TARGET_LOCK_P99_MS = 20.0
TARGET_SLOT_BYTES = 1024


@dataclass(frozen=True, slots=True)
class ScaleOptions:
    """Knobs of the scale mode."""

    small: int = 1_000
    large: int = 100_000
    samples: int = 200
    duration_s: float = 10.0
    warmup_s: float = 2.0
    connections: int = 50
    server_core: int | None = 0
    load_core: int | None = 1


class ListFigure(msgspec.Struct):
    """One filter's page latency at both sizes."""

    name: str
    small_ms: float
    large_ms: float
    small_p99_ms: float
    large_p99_ms: float
    ratio: float


class ScaleReport(msgspec.Struct):
    """What the scale mode measured."""

    sizes: tuple[int, int]
    load_s: float
    lists: list[ListFigure]
    quiet: PhaseResult
    listing: PhaseResult
    lists_during_load: int
    memory: SlotMemory


@dataclass(frozen=True, slots=True)
class Loaded:
    """What the loader made: resource ids by size, and the large one's free slot ids."""

    small_id: str
    large_id: str
    free_large_slot_ids: list[str]
    middle_ms: dict[str, int]  # per resource, the start of its middle slot


def run_scale(options: ScaleOptions, directory: Path) -> ScaleReport:
    """Start Redis and the service, load both resources, measure."""
    redis_port = free_port()
    with contextlib.ExitStack() as stack:
        server = redis_server(directory, redis_port, options.load_core)
        stack.callback(server.stop)
        client = redis.Redis(port=redis_port, decode_responses=True, socket_timeout=30)
        stack.callback(client.close)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        pair = run_async(create_pair(redis_url))
        started_s = time.monotonic()
        loaded = run_async(load(redis_url, (options.small, options.large)))
        load_s = time.monotonic() - started_s
        _say(f"loaded {options.small + options.large:,} slots in {load_s:.1f} s")
        port = free_port()
        env = clean_environment(REDIS_URL=redis_url, SLOTLOCK_LOG_LEVEL="WARNING", **UNLIMITED)
        service = slotlock_serve(port, options.server_core, directory / "slotlock.log", env)
        stack.callback(service.stop)
        url = f"http://127.0.0.1:{port}"
        lists = run_async(measure_lists(url, pair.public_key, loaded, options.samples))
        spec = _lock_load(options, directory, url, pair.public_key, loaded)
        watched = Watched(service.pid, options.server_core, options.load_core, server.pid, client)
        _say("locks, nobody listing")
        quiet = measure("locks, nobody listing", spec, watched)
        _say("locks, one client listing without pause")
        with _lister(url, pair.public_key, loaded.large_id) as count:
            listing = measure("locks, one client listing", spec, watched)
        memory = run_async(_memory(redis_url, loaded, client))
        return ScaleReport(
            sizes=(options.small, options.large),
            load_s=load_s,
            lists=lists,
            quiet=quiet,
            listing=listing,
            lists_during_load=count[0],
            memory=memory,
        )


async def load(redis_url: str, sizes: tuple[int, int]) -> Loaded:
    """One resource per size, written through the service's stores (its own scripts)."""
    found = Services.build(Settings(redis_url=redis_url), _client(redis_url), system_clock_ms)
    await found.scripts.preload(found.redis)
    now_ms = system_clock_ms()
    ids, middles, free = [], {}, []
    for size in sizes:
        draft = ResourceDraft(f"{size} slots", "UTC", 0, False, "{}")
        resource = await found.resources.create("bench", draft)
        await found.resources.update("bench", resource.id, {"status": "published"})
        slot_ids: list[str] = []
        for first in range(0, size, LOAD_BATCH):
            drafts = [
                SlotDraft(
                    now_ms + (hour + 1) * HOUR_MS,
                    now_ms + (hour + 1) * HOUR_MS + HOUR_MS // 2,
                    1,
                    True,
                    "{}",
                )
                for hour in range(first, min(size, first + LOAD_BATCH))
            ]
            views = await found.slots.create("bench", resource.id, drafts)
            slot_ids += [view.record.id for view in views]
        booked = slot_ids[::7]
        disabled = [slot_id for at, slot_id in enumerate(slot_ids) if at % 13 == 5]
        # The same number of locks at both sizes, spread over the resource: a list with
        # `available` also reads each live lock, so this compares sizes, not lock counts.
        lockable = [s for at, s in enumerate(slot_ids) if at % 7 != 0 and at % 13 != 5]
        locked = lockable[:: len(lockable) // LOCKED_PER_RESOURCE][:LOCKED_PER_RESOURCE]
        for chunk in _chunks(booked, 500):
            await asyncio.gather(*(found.bookings.create("bench", s, "", "{}") for s in chunk))
        for chunk in _chunks(disabled, 500):
            await asyncio.gather(*(found.slots.set_status("bench", s, "disabled") for s in chunk))
        until_ms = now_ms + 3_000_000
        await asyncio.gather(
            *(found.slots.lock("bench", s, lock_holder(f"k{s}"), until_ms) for s in locked)
        )
        ids.append(resource.id)
        middles[resource.id] = now_ms + (size // 2 + 1) * HOUR_MS
        if size == sizes[1]:
            taken = set(booked) | set(disabled) | set(locked)
            free = [slot_id for slot_id in slot_ids[: 20 * LOAD_BATCH] if slot_id not in taken]
    await found.batcher.aclose()
    await found.redis.aclose()
    return Loaded(ids[0], ids[1], free[:1000], middles)


def filters(loaded: Loaded, resource_id: str) -> list[tuple[str, str]]:
    """(name, path) of each list measured, for one resource."""
    middle = _iso(loaded.middle_ms[resource_id])
    later = _iso(loaded.middle_ms[resource_id] + 200 * HOUR_MS)
    base = f"/slots?resource_id={resource_id}&limit=20"
    return [
        ("slots", base),
        ("slots available=true", f"{base}&available=true"),
        ("slots available=false", f"{base}&available=false"),
        ("slots start_date", f"{base}&start_date={middle}"),
        ("slots end_date", f"{base}&end_date={middle}"),
        ("slots window, available", f"{base}&start_date={middle}&end_date={later}&available=true"),
        ("slots available, page 20", f"{base}&available=true&page=20"),
        ("bookings status=active", f"/bookings?resource_id={resource_id}&status=active&limit=20"),
        ("bookings, page 5", f"/bookings?resource_id={resource_id}&limit=20&page=5"),
    ]


async def measure_lists(url: str, token: str, loaded: Loaded, samples: int) -> list[ListFigure]:
    """Each filter's page of 20 at both sizes, requested one after the other."""
    transport = open_transport("raw", url, 1, 30.0)
    try:
        figures = []
        small, large = filters(loaded, loaded.small_id), filters(loaded, loaded.large_id)
        for (name, small_path), (_, large_path) in zip(small, large, strict=True):
            small_ms = await _latencies(transport, token, small_path, samples)
            large_ms = await _latencies(transport, token, large_path, samples)
            figures.append(
                ListFigure(
                    name=name,
                    small_ms=statistics.median(small_ms),
                    large_ms=statistics.median(large_ms),
                    small_p99_ms=_p99(small_ms),
                    large_p99_ms=_p99(large_ms),
                    ratio=statistics.median(large_ms) / statistics.median(small_ms),
                )
            )
        return figures
    finally:
        await transport.close()


async def _latencies(transport: Transport, token: str, path: str, samples: int) -> list[float]:
    for _ in range(max(10, samples // 10)):  # warm-up
        await _get(transport, token, path)
    taken = []
    for _ in range(samples):
        started = time.perf_counter()
        await _get(transport, token, path)
        taken.append((time.perf_counter() - started) * 1000)
    return taken


async def _get(transport: Transport, token: str, path: str) -> None:
    status, body = await transport.request("GET", path, None, token)
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")


@contextlib.contextmanager
def _lister(url: str, token: str, resource_id: str) -> Iterator[list[int]]:
    """One client listing the large resource's available slots without pause, in a thread."""
    stop, count = threading.Event(), [0]
    paths = [path for _, path in filters_for_lister(resource_id)]

    async def keep_listing() -> None:
        transport = open_transport("raw", url, 1, 30.0)
        try:
            while not stop.is_set():
                await _get(transport, token, paths[count[0] % len(paths)])
                count[0] += 1
        finally:
            await transport.close()

    thread = threading.Thread(target=lambda: asyncio.run(keep_listing()), daemon=True)
    thread.start()
    try:
        yield count
    finally:
        stop.set()
        thread.join(30)


def filters_for_lister(resource_id: str) -> list[tuple[str, str]]:
    """What the lister asks for, in turn."""
    base = f"/slots?resource_id={resource_id}&limit=20"
    return [("available", f"{base}&available=true"), ("all", base), ("page 5", f"{base}&page=5")]


def _lock_load(
    options: ScaleOptions, directory: Path, url: str, token: str, loaded: Loaded
) -> LoadSpec:
    path = directory / "scale-slots.json"
    path.write_bytes(msgspec.json.encode(loaded.free_large_slot_ids))
    return LoadSpec(
        url=url, token=token, slot_ids_path=path, connections=options.connections,
        duration_s=options.duration_s, warmup_s=options.warmup_s, client="raw",
        core=options.load_core, log_path=directory / "scale-generator.log",
    )  # fmt: skip


async def _memory(redis_url: str, loaded: Loaded, client: redis.Redis) -> SlotMemory:
    """A free slot of the large resource, locked now, and what it owns."""
    found = Services.build(Settings(redis_url=redis_url), _client(redis_url), system_clock_ms)
    slot_id = loaded.free_large_slot_ids[-1]
    holder = lock_holder(PROBE_KEY)
    await found.slots.lock("bench", slot_id, holder, system_clock_ms() + 300_000)
    await found.batcher.aclose()
    await found.redis.aclose()
    size = int(client.zcard(keyspace.resource_slots(loaded.large_id)))
    return slot_memory(client, slot_id, size, holder)


def _client(redis_url: str) -> RedisClient:
    return redis_from_settings(Settings(redis_url=redis_url, redis_timeout_s=30.0))


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for first in range(0, len(items), size):
        yield items[first : first + size]


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _iso(instant_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(instant_ms / 1000))


def _say(text: str) -> None:
    print(f"slotlock bench --scale: {text}", file=sys.stderr, flush=True)
