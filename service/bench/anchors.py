"""The benchmark's anchors: slotlock's lock and unlock requests, answered two simple ways.

- bare_app: Starlette + msgspec and nothing else (no Redis, no auth, no
  middleware): what the framework alone costs, the ceiling;
- naive_app: the same plus one plain redis-py EVALSHA per request, the
  straightforward implementation slotlock is measured against.

Both decode the same body, parse `lock_until`, and answer a small slot
envelope. uvicorn serves them as factories (`service.bench.anchors:bare_app`);
naive_app reads its Redis from REDIS_URL.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol

import msgspec
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

LOCK_LUA = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1
"""
UNLOCK_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LockBody(msgspec.Struct, forbid_unknown_fields=True):
    lock_key: str
    lock_until: str


class UnlockBody(msgspec.Struct, forbid_unknown_fields=True):
    lock_key: str


class SlotOut(msgspec.Struct):
    id: str
    locked_until: str | None
    _object: str = "slot"


class Envelope(msgspec.Struct):
    data: Any
    meta: Any
    success: bool = True


_lock_body = msgspec.json.Decoder(LockBody)
_unlock_body = msgspec.json.Decoder(UnlockBody)
_encoder = msgspec.json.Encoder()
_LOCKED = _encoder.encode(
    {"error": {"code": "E045", "message": "locked", "status": 422}, "success": False}
)


class LockStore(Protocol):
    """Where an anchor keeps its locks."""

    async def lock(self, slot_id: str, lock_key: str, until_ms: int) -> bool:
        """Take or move the lock; False when another key holds it."""
        ...

    async def unlock(self, slot_id: str, lock_key: str) -> None:
        """Release the lock if `lock_key` holds it."""
        ...


class NoStore:
    """Keeps nothing: every lock is granted (the ceiling)."""

    async def lock(self, slot_id: str, lock_key: str, until_ms: int) -> bool:
        """Grant it."""
        return True

    async def unlock(self, slot_id: str, lock_key: str) -> None:
        """Nothing to release."""


class ScriptStore:
    """One EVALSHA per call, through redis-py's script objects (the naive anchor)."""

    def __init__(self, redis: Redis) -> None:
        self._lock = redis.register_script(LOCK_LUA)
        self._unlock = redis.register_script(UNLOCK_LUA)

    async def lock(self, slot_id: str, lock_key: str, until_ms: int) -> bool:
        """SET the lock unless another key holds it."""
        return bool(await self._lock([f"bench:lock:{slot_id}"], [lock_key, until_ms]))

    async def unlock(self, slot_id: str, lock_key: str) -> None:
        """Compare and delete."""
        await self._unlock([f"bench:lock:{slot_id}"], [lock_key])


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def routes(store: LockStore) -> list[Route]:
    """POST /slots/{slot_id}/lock and /unlock over `store`."""

    async def lock(request: Request) -> Response:
        payload = _lock_body.decode(await request.body())
        until_ms = int(datetime.fromisoformat(payload.lock_until).timestamp() * 1000)
        slot_id = request.path_params["slot_id"]
        if not await store.lock(slot_id, payload.lock_key, until_ms):
            return _json(_LOCKED, 422)
        slot = SlotOut(slot_id, payload.lock_until)
        return _json(_encoder.encode(Envelope(slot, {"lock_token": 1})))

    async def unlock(request: Request) -> Response:
        payload = _unlock_body.decode(await request.body())
        slot_id = request.path_params["slot_id"]
        await store.unlock(slot_id, payload.lock_key)
        return _json(_encoder.encode(Envelope(SlotOut(slot_id, None), {})))

    return [
        Route("/slots/{slot_id}/lock", lock, methods=["POST"]),
        Route("/slots/{slot_id}/unlock", unlock, methods=["POST"]),
    ]


def bare_app() -> Starlette:
    """The ceiling: the requests decoded and answered, nothing stored."""
    return Starlette(routes=routes(NoStore()))


def naive_app() -> Starlette:
    """The naive anchor: one EVALSHA per request on the Redis at REDIS_URL."""
    redis = Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await redis.aclose()

    return Starlette(routes=routes(ScriptStore(redis)), lifespan=lifespan)
