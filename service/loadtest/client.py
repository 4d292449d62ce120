"""The slot API as virtual users call it: one method per endpoint, each answer recorded."""

from __future__ import annotations

import time
from dataclasses import dataclass

import msgspec

from service.loadtest.stats import TRANSPORT_ERROR, Recorder, error_code
from service.loadtest.transport import Transport, TransportError

LIST = "GET /slots"
LOCK = "POST /slots/:id/lock"
UNLOCK = "POST /slots/:id/unlock"
BOOK = "POST /bookings"
CANCEL = "POST /bookings/:id/cancel"


class _Id(msgspec.Struct):
    id: str


class _LockMeta(msgspec.Struct):
    lock_token: int


class _Locked(msgspec.Struct):
    meta: _LockMeta


class _Listed(msgspec.Struct):
    data: list[_Id]


class _Created(msgspec.Struct):
    data: _Id


_locked = msgspec.json.Decoder(_Locked)
_listed = msgspec.json.Decoder(_Listed)
_created = msgspec.json.Decoder(_Created)
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: status (0 when none came), body, and error code of a failure envelope."""

    status: int
    body: bytes
    code: str | None

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300


class ApiClient:
    """Calls the service with one API key; answers go to `recorder` (None: not counted)."""

    def __init__(self, transport: Transport, token: str, recorder: Recorder | None) -> None:
        self.transport = transport
        self.token = token
        self.recorder = recorder  # replaced in place when a bench ends its warm-up

    async def call(self, endpoint: str, method: str, path: str, body: object = None) -> Reply:
        """Send one request and record its answer under `endpoint`."""
        payload = None if body is None else body if isinstance(body, bytes) else _encode(body)
        started = time.perf_counter()
        try:
            status, answer = await self.transport.request(method, path, payload, self.token)
        except TransportError:
            status, answer = TRANSPORT_ERROR, b""
        latency_s = time.perf_counter() - started
        if self.recorder is None:
            code = None if 200 <= status < 300 else error_code(answer)
        else:
            code = self.recorder.record(endpoint, status, latency_s, answer)
        return Reply(status, answer, code)

    async def available_slots(self, resource_id: str, start: str, end: str) -> list[str]:
        """Ids of available slots of the resource between `start` and `end` (one page)."""
        query = f"resource_id={resource_id}&available=true&start_date={start}&end_date={end}"
        reply = await self.call(LIST, "GET", f"/slots?{query}&limit=50")
        return [slot.id for slot in _listed.decode(reply.body).data] if reply.ok else []

    async def lock(self, slot_id: str, lock_key: str, until: str, quantity: int = 0) -> Reply:
        """Lock (or move the lock of) a slot until `until` (ISO 8601); hold `quantity` places."""
        body: dict[str, object] = {"lock_key": lock_key, "lock_until": until}
        if quantity:
            body["quantity"] = quantity
        return await self.call(LOCK, "POST", f"/slots/{slot_id}/lock", body)

    async def unlock(self, slot_id: str, lock_key: str) -> Reply:
        """Release the lock this lock_key holds."""
        return await self.call(UNLOCK, "POST", f"/slots/{slot_id}/unlock", {"lock_key": lock_key})

    async def book(self, slot_id: str, lock_key: str) -> Reply:
        """Book the slot with the lock_key that holds it."""
        return await self.call(
            BOOK, "POST", "/bookings", {"slot_id": slot_id, "lock_key": lock_key}
        )

    async def cancel(self, booking_id: str) -> Reply:
        """Cancel a booking."""
        return await self.call(CANCEL, "POST", f"/bookings/{booking_id}/cancel", b"")


def lock_token(reply: Reply) -> int:
    """The fencing token of a successful lock answer."""
    return _locked.decode(reply.body).meta.lock_token


def created_id(reply: Reply) -> str:
    """The `data.id` of a successful create answer."""
    return _created.decode(reply.body).data.id
