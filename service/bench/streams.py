"""`slotlock bench --streams N`: open event streams under a lock load.

One redis-server and one `slotlock serve` (one worker). First a lock/unlock load with no
stream open (the baseline), then N streams opened across the resources (the server's RSS
before and after gives the memory per open stream), then the same load again while every
stream is read. Delivery latency of an event is the time a stream received it minus its
id's ms (Redis's clock on the same machine, taken when the script appended it), so it
includes this process's own delays in reading N streams: an upper bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from service.bench.probes import rss_bytes
from service.bench.processes import clean_environment, free_port, redis_server, slotlock_serve
from service.bench.servers import UNLIMITED, create_pair
from service.loadtest.fixture import iso

RESOURCES = 10
SLOTS_PER_RESOURCE = 20
LOCK_WORKERS = 20
SETTLE_S = 1.0
OPEN_BATCH = 250


@dataclass(frozen=True, slots=True)
class StreamBenchOptions:
    """How many streams, for how long, with how many lock workers."""

    streams: int
    duration_s: float


@dataclass
class StreamFigures:
    """What the run measured."""

    streams: int
    locks_per_s_without: float
    locks_per_s_idle: float
    locks_per_s_busy: float
    rss_before_bytes: int
    rss_after_bytes: int
    latencies_ms: list[float]
    events_received: int
    streams_cut: int

    def report(self) -> str:
        """The figures as lines of text."""
        ordered = sorted(self.latencies_ms) or [0.0]
        p50 = statistics.median(ordered)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        per_stream_kib = (
            (self.rss_after_bytes - self.rss_before_bytes) / max(1, self.streams) / 1024
        )
        base = self.locks_per_s_without or 1.0
        return "\n".join(
            [
                f"open streams                        {self.streams}",
                f"lock+unlock/s, no streams           {self.locks_per_s_without:.0f}",
                f"lock+unlock/s, N idle streams open  {self.locks_per_s_idle:.0f}"
                f"  ({self.locks_per_s_idle / base:.2f}x)",
                f"lock+unlock/s, N streams watching   {self.locks_per_s_busy:.0f}"
                f"  ({self.locks_per_s_busy / base:.2f}x)",
                f"server RSS per open stream          {per_stream_kib:.1f} KiB",
                f"events received (watching)          {self.events_received}",
                f"delivery latency p50 / p99          {p50:.1f} ms / {p99:.1f} ms",
                f"streams cut off (too slow)          {self.streams_cut}",
            ]
        )


def run_streams(options: StreamBenchOptions) -> StreamFigures:
    """Start the servers, run both phases, stop everything."""
    directory = Path(tempfile.mkdtemp(prefix="slotlock-bench-streams-"))
    port, redis_port = free_port(), free_port()
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, directory, True)
        redis = redis_server(directory, redis_port, None)
        stack.callback(redis.stop)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        env = clean_environment(REDIS_URL=redis_url, SLOTLOCK_LOG_LEVEL="WARNING", **UNLIMITED)
        server = slotlock_serve(port, None, directory / "slotlock.log", env)
        stack.callback(server.stop)
        pair = asyncio.run(create_pair(redis_url))
        return asyncio.run(
            _measure(
                f"http://127.0.0.1:{port}", pair.secret_key, pair.public_key, server.pid, options
            )
        )
    raise AssertionError("unreachable")


async def _measure(
    base: str, secret: str, public: str, pid: int, options: StreamBenchOptions
) -> StreamFigures:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(base, connector=connector) as session:
        resources = await _schedule(session, secret, RESOURCES + 1)
        idle_resource, *loaded = list(resources)
        slot_ids = [slot_id for rid in loaded for slot_id in resources[rid]]
        without = await _lock_load(session, public, slot_ids, options.duration_s)
        # Idle streams (a resource nobody changes): what merely holding them open costs.
        rss_before = rss_bytes(pid)
        idle_latencies: list[float] = []
        idle = await _open(session, public, [idle_resource] * options.streams, idle_latencies)
        await asyncio.sleep(SETTLE_S + options.streams / 1000)
        rss_after = rss_bytes(pid)
        with_idle = await _lock_load(session, public, slot_ids, options.duration_s)
        await _close(idle)
        # Busy streams: the same number spread over the resources under load.
        latencies: list[float] = []
        busy = await _open(session, public, _spread(loaded, options.streams), latencies)
        await asyncio.sleep(SETTLE_S + options.streams / 1000)
        latencies.clear()
        with_busy = await _lock_load(session, public, slot_ids, options.duration_s)
        await asyncio.sleep(SETTLE_S)
        cut = await _close(busy)
    return StreamFigures(
        options.streams, without, with_idle, with_busy, rss_before, rss_after, latencies,
        len(latencies), cut,
    )  # fmt: skip


async def _open(
    session: aiohttp.ClientSession, public: str, resource_ids: list[str], latencies: list[float]
) -> list[asyncio.Task[bool]]:
    """Open the streams OPEN_BATCH at a time (a burst of thousands overflows the backlog)."""
    readers = []
    for first in range(0, len(resource_ids), OPEN_BATCH):
        for resource_id in resource_ids[first : first + OPEN_BATCH]:
            readers.append(
                asyncio.create_task(_read_stream(session, public, resource_id, latencies))
            )
        await asyncio.sleep(0.2)
    return readers


async def _close(readers: list[asyncio.Task[bool]]) -> int:
    """Stop reading; how many of the streams the server had ended (cut off) before."""
    for reader in readers:
        reader.cancel()
    results = await asyncio.gather(*readers, return_exceptions=True)
    return sum(1 for result in results if result is True)


def _spread(resource_ids: list[str], count: int) -> list[str]:
    return [resource_ids[n % len(resource_ids)] for n in range(count)]


async def _schedule(
    session: aiohttp.ClientSession, secret: str, count: int
) -> dict[str, list[str]]:
    headers = {"authorization": f"Bearer {secret}"}
    resources: dict[str, list[str]] = {}
    start_s = int(time.time()) + 86_400
    for _ in range(count):
        async with session.post("/resources", json={"name": "bench"}, headers=headers) as answer:
            resource_id = (await answer.json())["data"]["id"]
        await session.post(f"/resources/{resource_id}/publish", headers=headers)
        slots = [
            {"start_date": iso(start_s + n * 3600), "end_date": iso(start_s + n * 3600 + 1800),
             "capacity": 1}
            for n in range(SLOTS_PER_RESOURCE)
        ]  # fmt: skip
        body = {"resource_id": resource_id, "slots": slots}
        async with session.post("/slots", json=body, headers=headers) as answer:
            resources[resource_id] = [slot["id"] for slot in (await answer.json())["data"]]
    return resources


async def _lock_load(
    session: aiohttp.ClientSession, public: str, slot_ids: list[str], duration_s: float
) -> float:
    """Lock/unlock pairs per second over `duration_s` with LOCK_WORKERS workers."""
    headers = {"authorization": f"Bearer {public}"}
    deadline = time.monotonic() + duration_s
    done = 0

    async def worker(n: int) -> None:
        nonlocal done
        mine = slot_ids[n::LOCK_WORKERS]
        key = f"bench-{n}"
        while time.monotonic() < deadline:
            slot_id = random.choice(mine)
            lock = {"lock_key": key, "lock_until": iso(time.time() + 60)}
            async with session.post(f"/slots/{slot_id}/lock", json=lock, headers=headers) as a:
                await a.read()
            unlock = {"lock_key": key}
            async with session.post(f"/slots/{slot_id}/unlock", json=unlock, headers=headers) as a:
                await a.read()
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(n) for n in range(LOCK_WORKERS)))
    return done / (time.monotonic() - started)


async def _read_stream(
    session: aiohttp.ClientSession, public: str, resource_id: str, latencies: list[float]
) -> bool:
    """Read one stream until cancelled; True if the server ended it (cut off)."""
    with contextlib.suppress(asyncio.CancelledError):
        async with session.get(f"/resources/{resource_id}/events?key={public}") as answer:
            async for line in answer.content:
                if line.startswith(b"id: "):
                    sent_ms = int(line[4:].split(b"-")[0])
                    latencies.append(time.time() * 1000 - sent_ms)
            return True
    return False


def run_command(options: StreamBenchOptions) -> int:
    """Run it and print the figures."""
    print(f"slotlock bench --streams {options.streams}: {options.duration_s:.0f} s per phase")
    print(run_streams(options).report())
    return 0
