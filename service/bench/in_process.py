"""`slotlock bench --in-process N`: what the service itself costs a lock or unlock, in one
process, with the network and Redis taken out.

Requests/s on this shared machine move by tens of percent from one minute to the next,
by more than most changes to the service. This measure moves less: the worker's own HTTP
protocol (`http_protocol.py`) is fed requests over stand-in sockets by 50 connections
in waves (one lock, or one unlock, on each), and the Redis transport answers every
script call at once with a reply of the shape its script gives. Everything between
the bytes of a request and the bytes of its answer runs as in `slotlock serve`: the
dispatcher, the key check and rate limit, the body, the store and its batcher, the
answer, the metrics and the access log (written, through the worker's own sink, to
/dev/null). The figure is CPU time per request (`time.process_time`), best of five
samples of N requests: no socket system call, no Redis, no load generator in it.

What it is for: comparing two builds or two commits (run it in each checkout, in turn,
several times), where the lock bench could not tell them apart. It is not immune to the
machine: CPU time per request grows too when other tenants crowd the host, so a figure
is compared with figures taken minutes apart, never with another day's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from uvicorn.config import Config
from uvicorn.server import ServerState

from service import logs
from service.app import create_app
from service.asgi import tune_gc
from service.clock import system_clock_ms
from service.fake_redis import fake_redis
from service.http_protocol import HttpProtocol
from service.ids import new_child_id, new_resource_id
from service.records import SlotRecord, to_hash
from service.scripts import script_sha, script_source
from service.settings import RateLimit, Settings
from service.store.api_keys import KeyStore
from service.store.transport import Command, ScriptCall, Transport

SAMPLES = 5
MAX_TURNS_PER_WAVE = 1000  # loop turns a wave may take (it takes a handful)
UNLIMITED = RateLimit(1_000_000_000, 1)  # measure requests, not 429s
_LOCK_SHA = script_sha(script_source("lock_slot"))


@dataclass(frozen=True, slots=True)
class InProcessFigures:
    """CPU per request of each sample; the best is the figure (the least disturbed)."""

    connections: int
    requests_per_sample: int
    samples_us: list[float]

    @property
    def best_us(self) -> float:
        """The least CPU per request any sample took."""
        return min(self.samples_us)


class _AnsweredAtOnce(Transport):
    """Every lock_slot and unlock_slot call answered OK, now, with one slot's view."""

    def __init__(self, view: list[Any]) -> None:
        self._locked = ["OK", 7, view]
        self._unlocked = ["OK", view]

    def write_scripts(self, calls: Sequence[ScriptCall]) -> asyncio.Future[list[Any]]:
        """The batch's replies, already there."""
        done: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        done.set_result(
            [self._locked if call.script.sha == _LOCK_SHA else self._unlocked for call in calls]
        )
        return done

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Nothing but the two scripts is sent while the figure is taken."""
        raise AssertionError(f"unexpected commands: {[command[0] for command in commands]}")

    async def load_script(self, source: str) -> None:
        """Nothing to load."""

    async def aclose(self) -> None:
        """Nothing to close."""


class _Socket:
    """Where a connection's answers go: kept, so that every one can be checked."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, chunks: list[bytes]) -> None:
        self.written.extend(chunks)

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        """Flow control has nothing to pause here."""

    def resume_reading(self) -> None:
        """Flow control has nothing to resume here."""

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


def _slot_view() -> tuple[str, list[Any]]:
    """A published slot's id, and its view as lua/lib/slot_view.lua returns it (unlocked,
    UTC)."""
    now_ms, resource_id = system_clock_ms(), new_resource_id()
    slot = SlotRecord(
        id=new_child_id(resource_id), environment="bench", resource_id=resource_id,
        start_ms=now_ms + 86_400_000, end_ms=now_ms + 88_200_000, capacity=1,
        status="active", lockable=True, metadata="{}", created_ms=now_ms, updated_ms=now_ms,
    )  # fmt: skip
    return slot.id, [json.dumps(to_hash(slot)), 0, "published", "0", "UTC", 0]


def _request(path: str, token: str, body: dict[str, Any]) -> bytes:
    payload = msgspec.json.encode(body)
    head = (
        f"POST {path} HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {token}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def _measure(connections: int, requests: int) -> InProcessFigures:
    slot_id, view = _slot_view()
    redis = fake_redis()  # the API key only; every script call is answered at once
    pair = await KeyStore(redis, system_clock_ms).create_pair("bench")
    settings = Settings(rate_limit_public=UNLIMITED, rate_limit_secret=UNLIMITED, key_cache_s=5)
    app = create_app(settings, redis, transport=_AnsweredAtOnce(view))
    # As `slotlock serve` configures uvicorn (service/cli.py), but no lifespan: nothing to start.
    config = Config(
        app, lifespan="off", log_config=None, access_log=False, proxy_headers=False,
        server_header=False,
    )  # fmt: skip
    config.load()
    state = ServerState()
    sockets = [_Socket() for _ in range(connections)]
    protocols = []
    for socket in sockets:
        protocol = HttpProtocol(config=config, server_state=state, app_state={})
        protocol.connection_made(socket)  # type: ignore[arg-type]  # a stand-in transport
        protocols.append(protocol)
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600))
    lock_key = "bench-in-process-lock-key"
    lock = _request(
        f"/slots/{slot_id}/lock", pair.public_key, {"lock_key": lock_key, "lock_until": until}
    )
    unlock = _request(f"/slots/{slot_id}/unlock", pair.public_key, {"lock_key": lock_key})

    async def wave(request: bytes) -> None:
        """One request on every connection; back once every one has its answer."""
        before = [len(socket.written) for socket in sockets]
        for protocol in protocols:
            protocol.data_received(request)
        for _ in range(MAX_TURNS_PER_WAVE):
            await asyncio.sleep(0)
            if all(len(s.written) > sent for s, sent in zip(sockets, before, strict=True)):
                return
        raise RuntimeError("a request went unanswered")

    pairs = max(1, requests // (2 * connections))
    per_sample = 2 * pairs * connections
    for _ in range(max(20, pairs // 4)):  # warm-up: caches, the key's lookup, the batcher
        await wave(lock)
        await wave(unlock)
    tune_gc()  # as a worker does once it has started (service/asgi.py)
    samples = []
    for _ in range(SAMPLES):
        for socket in sockets:
            socket.written.clear()
        started_s = time.process_time()
        for _ in range(pairs):
            await wave(lock)
            await wave(unlock)
        samples.append(1e6 * (time.process_time() - started_s) / per_sample)
        answered = sum(chunk.startswith(b"HTTP/1.1 200 ") for s in sockets for chunk in s.written)
        if answered != per_sample:
            raise RuntimeError(f"{answered} of {per_sample} requests answered 200")
    return InProcessFigures(connections, per_sample, samples)


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    """The worker's log sink writes to file descriptor 2; let it write to /dev/null."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def measure_in_process(requests: int, connections: int = 50) -> InProcessFigures:
    """The figures, on uvloop as a worker runs (service.logs as a worker configures it)."""
    import uvloop

    with _stderr_to_devnull():
        logs.configure("INFO")
        try:
            return uvloop.run(_measure(connections, requests))
        finally:
            for handler in logging.getLogger().handlers:
                handler.flush()  # the lines still buffered go to /dev/null too


def format_in_process(figures: InProcessFigures) -> str:
    """The printed figure and its samples."""
    samples = " ".join(f"{sample:.1f}" for sample in figures.samples_us)
    return (
        f"lock/unlock in one process: {figures.best_us:.1f} us of CPU per request "
        f"(best of {len(figures.samples_us)} samples of {figures.requests_per_sample:,} "
        f"requests, {figures.connections} connections; samples: {samples})\n"
        "the service's own work per request: its HTTP protocol over stand-in sockets, "
        "every script call answered at once, no network, Redis or load generator"
    )
