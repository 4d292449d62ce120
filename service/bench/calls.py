"""Redis calls per request, counted on MONITOR over sequential requests of each kind.

Segments, each over the same calibration slots with one lock_key per slot:
`lock` (lock every slot), `unlock` (release them), `hold` (a partial hold of one
place on every slot), `release` (unlock those), `relock` (lock again, not
reported), `book` (book every slot with its key), `read` (GET every slot). The
API key is used once before the first segment, so its cached lookup is warm.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable

import msgspec
import redis

from service.bench.processes import BenchError
from service.bench.redis_probe import MonitorCapture, segment_calls
from service.bench.workloads import read
from service.loadtest.client import ApiClient, Reply
from service.loadtest.fixture import iso
from service.loadtest.runner import run_async
from service.loadtest.transport import open_transport

REPORTED = ("lock", "unlock", "hold", "release", "book", "read")
TIMEOUT_S = 10.0

Call = Callable[[str, str], Awaitable[Reply]]


class CallsPerRequest(msgspec.Struct, kw_only=True):
    """Commands slotlock sent Redis per request of one kind, in total and by command."""

    requests: int
    calls: float
    by_command: dict[str, float]


def calls_per_request(
    url: str, token: str, slot_ids: list[str], client: redis.Redis
) -> dict[str, CallsPerRequest]:
    """Lock, unlock, relock and book every calibration slot, with MONITOR listening."""
    capture = MonitorCapture(client)
    capture.start()
    try:
        run_async(_segments(url, token, slot_ids, capture.mark))
    finally:
        capture.finish()
    segments = segment_calls(capture.commands)
    return {name: _per_request(segments.get(name, Counter()), len(slot_ids)) for name in REPORTED}


def _per_request(counts: Counter[str], requests: int) -> CallsPerRequest:
    return CallsPerRequest(
        requests=requests,
        calls=round(sum(counts.values()) / requests, 2),
        by_command={name: round(count / requests, 2) for name, count in sorted(counts.items())},
    )


async def _segments(url: str, token: str, slot_ids: list[str], mark: Callable[[str], None]) -> None:
    transport = open_transport("raw", url, 1, TIMEOUT_S)
    api = ApiClient(transport, token, recorder=None)
    keys = [f"calibration-{n}" for n in range(len(slot_ids))]
    until = iso(time.time() + 300)
    try:
        _expect_ok("warm-up", await api.call("warm-up", "GET", f"/slots/{slot_ids[0]}"))
        segments: list[tuple[str, Call]] = [
            ("lock", lambda slot_id, key: api.lock(slot_id, key, until)),
            ("unlock", api.unlock),
            ("hold", lambda slot_id, key: api.lock(slot_id, key, until, quantity=1)),
            ("release", api.unlock),
            ("relock", lambda slot_id, key: api.lock(slot_id, key, until)),
            ("book", api.book),
            ("read", lambda slot_id, key: read(api, slot_id)),
        ]
        for segment, call in segments:
            mark(segment)
            for slot_id, key in zip(slot_ids, keys, strict=True):
                _expect_ok(segment, await call(slot_id, key))
    finally:
        await transport.close()


def _expect_ok(segment: str, reply: Reply) -> None:
    if not reply.ok:
        raise BenchError(f"calibration {segment} refused: {reply.status} {reply.code}")
