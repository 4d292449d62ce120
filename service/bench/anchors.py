"""The benchmark's anchors: slotlock's benchmarked requests, answered two simple ways.

- bare_app: Starlette + msgspec and nothing else (no Redis, no auth, no
  middleware): what the framework alone costs, the ceiling;
- naive_app: the same plus one plain redis-py EVALSHA per request, the
  straightforward implementation slotlock is measured against.

Each workload of the bench has its routes here: POST /slots/{id}/lock and
/unlock (decode the body, parse `lock_until`, answer a small slot envelope),
GET /slots/{id} (a whole slot) and POST /bookings (a new booking). Their stores
are in anchor_stores.py. uvicorn serves the apps as factories
(`service.bench.anchors:bare_app`); naive_app reads its Redis from REDIS_URL.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.bench.anchor_stores import AnchorSlot, AnchorStore, NoStore, Refused, ScriptStore


class LockBody(msgspec.Struct, forbid_unknown_fields=True):
    lock_key: str
    lock_until: str


class UnlockBody(msgspec.Struct, forbid_unknown_fields=True):
    lock_key: str


class BookingBody(msgspec.Struct, forbid_unknown_fields=True):
    slot_id: str
    lock_key: str | None = None
    metadata: dict[str, Any] = {}


class SlotOut(msgspec.Struct):
    """The slot a lock or unlock answers: its id and lock only."""

    id: str
    locked_until: str | None
    _object: str = "slot"


class SlotDetail(msgspec.Struct, kw_only=True):
    """The slot GET /slots/{id} answers, with every field of API.md's slot."""

    object: Literal["slot"] = msgspec.field(default="slot", name="_object")
    id: str
    resource_id: str
    start_date: str
    end_date: str
    capacity: int
    status: str
    lockable: bool
    locked_until: str | None = None
    available: bool
    num_bookings: int
    num_active_bookings: int
    num_cancelled_bookings: int
    num_held_places: int = 0
    num_free_places: int
    metadata: msgspec.Raw
    created_at: str
    updated_at: str


class BookingOut(msgspec.Struct, kw_only=True):
    """The booking POST /bookings answers."""

    object: Literal["booking"] = msgspec.field(default="booking", name="_object")
    id: str
    slot_id: str
    resource_id: str
    status: str = "active"
    metadata: msgspec.Raw
    created_at: str
    updated_at: str


class Envelope(msgspec.Struct):
    data: Any
    meta: Any
    success: bool = True


_lock_body = msgspec.json.Decoder(LockBody)
_unlock_body = msgspec.json.Decoder(UnlockBody)
_booking_body = msgspec.json.Decoder(BookingBody)
_encoder = msgspec.json.Encoder()
_LOCKED = _encoder.encode(
    {"error": {"code": "E045", "message": "locked", "status": 422}, "success": False}
)


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def _refused(refused: Refused) -> Response:
    error = {"code": refused.code, "message": str(refused), "status": refused.status}
    return _json(_encoder.encode({"error": error, "success": False}), refused.status)


def _now() -> str:
    """Now as API.md writes an instant: UTC, milliseconds, `Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def slot_detail(slot: AnchorSlot) -> SlotDetail:
    """The answer for a stored slot: its free places and availability worked out."""
    free_places = max(0, slot.capacity - slot.num_active_bookings)
    return SlotDetail(
        id=slot.id, resource_id=slot.resource_id, start_date=slot.start_date,
        end_date=slot.end_date, capacity=slot.capacity, status=slot.status,
        lockable=slot.lockable, available=slot.status == "active" and free_places > 0,
        num_bookings=slot.num_bookings, num_active_bookings=slot.num_active_bookings,
        num_cancelled_bookings=slot.num_cancelled_bookings, num_free_places=free_places,
        metadata=msgspec.Raw(slot.metadata.encode()), created_at=slot.created_at,
        updated_at=slot.updated_at,
    )  # fmt: skip


def lock_routes(store: AnchorStore) -> list[Route]:
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


def read_and_book_routes(store: AnchorStore) -> list[Route]:
    """GET /slots/{slot_id} and POST /bookings over `store`."""

    async def read(request: Request) -> Response:
        try:
            slot = await store.read(request.path_params["slot_id"])
        except Refused as refused:
            return _refused(refused)
        return _json(_encoder.encode(Envelope(slot_detail(slot), {})))

    async def book(request: Request) -> Response:
        payload = _booking_body.decode(await request.body())
        booking_id, metadata, now = str(uuid.uuid4()), _encoder.encode(payload.metadata), _now()
        try:
            resource_id = await store.book(booking_id, payload.slot_id, metadata.decode(), now)
        except Refused as refused:
            return _refused(refused)
        booking = BookingOut(
            id=booking_id, slot_id=payload.slot_id, resource_id=resource_id,
            metadata=msgspec.Raw(metadata), created_at=now, updated_at=now,
        )  # fmt: skip
        return _json(_encoder.encode(Envelope(booking, {})))

    return [
        Route("/slots/{slot_id}", read, methods=["GET"]),
        Route("/bookings", book, methods=["POST"]),
    ]


def routes(store: AnchorStore) -> list[Route]:
    """Every route the bench loads, over `store`."""
    return [*lock_routes(store), *read_and_book_routes(store)]


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
