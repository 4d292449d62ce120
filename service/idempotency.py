"""Idempotency-Key on every POST: the first response is kept 24 h and replayed.

A request claims its key with SET NX before it runs; a repeat with the same
body gets the stored status and body, a repeat with another body 422 E101, and
a concurrent repeat waits for the first to finish. Only the answer of a request
that reached its operation (called its script; service/operation.py) and is
below 500 is kept: one refused before that (a cut-off body, a validation error,
authentication, rate limit) or that met a Redis outage keeps nothing, so the
client's proper retry with the same key runs.

If Redis broke after a change was applied but before its answer was stored,
the claim is left pending; once it is older than any request can run, a retry
takes it over and runs again. Booking creation is the one POST whose second run
would add a second booking, so its script keeps a receipt of the key beside the
slot, in the same atomic step as the booking (see lua/create_booking.lua).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging

import msgspec
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import keyspace, operation
from service.errors import ApiError, BadRequest, BodyTooLarge, StoreUnavailable, Unprocessable
from service.middleware import scope_header
from service.outage import OUTAGE_ERRORS
from service.responses import failure
from service.services import Services

logger = logging.getLogger("slotlock.idempotency")

KEEP_MS = 24 * 3600 * 1000
TAKEOVER_AFTER_MS = 15_000  # longer than any request may run
_POLL_S = 0.02
_WAIT_FOR_FIRST_S = 10.0
_REPLAYED_HEADERS = {b"content-type", b"retry-after"}


class Kept(msgspec.Struct):
    """What Redis keeps under one Idempotency-Key."""

    fingerprint: str
    started_ms: int
    status: int = 0  # 0 while the first request runs
    headers: list[tuple[str, str]] = []
    body: str = ""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Kept)


class Idempotency:
    """ASGI middleware for POST requests that carry an Idempotency-Key header."""

    def __init__(self, app: ASGIApp, services: Services, routes: list[Route]) -> None:
        self.app = app
        self.services = services
        self.routes = routes  # to name a replay's route in metrics and the access log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        key = scope_header(scope, b"idempotency-key")
        if key is None:
            await self.app(scope, receive, send)
            return
        try:
            if not 1 <= len(key) <= 255 or not key.isprintable():
                raise BadRequest("`Idempotency-Key` must be 1 to 255 printable characters")
            limit = self.services.settings.max_body_bytes
            body = await _read_all(receive, limit)
            if body is None:
                raise BodyTooLarge(f"the body is larger than {limit} bytes")
            await self._handle(scope, key, body, receive, send)
        except ApiError as error:
            await failure(error)(scope, receive, send)
        except OUTAGE_ERRORS as error:
            self.services.outage.failure(error)
            unavailable = StoreUnavailable(
                "Redis is unreachable; retry with the same Idempotency-Key",
                retry_after_s=self.services.settings.retry_after_s,
            )
            await failure(unavailable)(scope, receive, send)

    async def _handle(
        self, scope: Scope, key: str, body: bytes, receive: Receive, send: Send
    ) -> None:
        caller_hash = _sha256((scope_header(scope, b"authorization") or "").encode())[:32]
        key_hash = _sha256(key.encode())
        record_key = keyspace.idempotency(caller_hash, key_hash)
        fingerprint = _sha256(f"{scope['method']} {scope['path']}\n".encode() + body)
        kept = await self._claim(record_key, fingerprint)
        if kept is not None:
            self._name_route(scope)
            await _send_kept(kept, send)
            return
        scope.setdefault("state", {})["idempotency_hash"] = _sha256(
            (caller_hash + key_hash).encode()
        )
        mark, token = operation.watch()
        try:
            status, headers, chunks = await self._run(scope, _replaying(body, receive), send)
        except BaseException:
            # An unexpected failure is answered 500 further out: let go of the key,
            # so that a retry runs again instead of waiting for a takeover.
            with contextlib.suppress(*OUTAGE_ERRORS):
                await self.services.redis.delete(record_key)
            raise
        finally:
            operation.unwatch(token)
        try:
            answer = Kept(
                fingerprint, self.services.clock(), status, headers, b"".join(chunks).decode()
            )
            await self._keep(record_key, answer, reached=mark.reached)
        except OUTAGE_ERRORS as error:
            # The answer is out already; only its copy is lost. The claim stays
            # pending, and a retry takes it over after TAKEOVER_AFTER_MS.
            self.services.outage.failure(error)

    async def _keep(self, record_key: str, answer: Kept, *, reached: bool) -> None:
        """Keep the answer of a request that reached its operation, below 500; else let go."""
        if reached and answer.status < 500:
            await self.services.redis.set(record_key, _encoder.encode(answer), px=KEEP_MS)
        else:
            await self.services.redis.delete(record_key)

    def _name_route(self, scope: Scope) -> None:
        """Set the route a replay answers for, as the router would have (metrics, access log)."""
        for route in self.routes:
            if route.matches(scope)[0] is Match.FULL:
                scope["route"] = route
                return

    async def _claim(self, record_key: str, fingerprint: str) -> Kept | None:
        """Claim the key (None), or return the first request's kept answer."""
        redis, clock = self.services.redis, self.services.clock
        deadline = asyncio.get_running_loop().time() + _WAIT_FOR_FIRST_S
        while True:
            claim = _encoder.encode(Kept(fingerprint, clock()))
            if await redis.set(record_key, claim, px=KEEP_MS, nx=True):
                return None
            raw = await redis.get(record_key)
            if raw is None:
                continue  # the first request failed with a 5xx and let go: claim again
            kept = _decoder.decode(raw)
            if kept.fingerprint != fingerprint:
                raise Unprocessable(
                    "E101", "this Idempotency-Key was used with another request body"
                )
            if kept.status:
                return kept
            if clock() - kept.started_ms > TAKEOVER_AFTER_MS:
                # The first request died between claiming and answering.
                await redis.set(record_key, claim, px=KEEP_MS)
                return None
            if asyncio.get_running_loop().time() > deadline:
                raise StoreUnavailable(
                    "a request with this Idempotency-Key is still running; retry",
                    retry_after_s=1,
                )
            await asyncio.sleep(_POLL_S)

    async def _run(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[int, list[tuple[str, str]], list[bytes]]:
        """Run the request, passing its answer on while keeping a copy."""
        status = 500
        headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []

        async def keep(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers.extend(
                    (name.decode(), value.decode())
                    for name, value in message.get("headers", [])
                    if name in _REPLAYED_HEADERS
                )
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, keep)
        return status, headers, chunks


async def _send_kept(kept: Kept, send: Send) -> None:
    headers = [(name.encode(), value.encode()) for name, value in kept.headers]
    headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": kept.status, "headers": headers})
    await send({"type": "http.response.body", "body": kept.body.encode()})


async def _read_all(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None when it passes the limit (the route then answers E102)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive callable that hands the buffered body to the app, then the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # e.g. http.disconnect
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
