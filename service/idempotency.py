"""Idempotency-Key on every POST: the first answer is kept 24 h and replayed.

`Idempotency.wrap` wraps the endpoint of each POST route (app.py). A request
with the header claims its key (service/store/idempotency.py) before its
endpoint runs; a repeat with the same body gets the stored status and body, a
repeat with another body 422 E101, and a concurrent repeat waits for the first
to finish. Only the answer of a request that reached its operation (called its
script; service/operation.py) and is below 500 is kept: one refused before that
(a cut-off body, a validation error, authentication, rate limit) or that met a
Redis outage keeps nothing, so the client's proper retry with the same key runs.

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
from collections.abc import Awaitable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive

from service import operation
from service.clock import Clock
from service.errors import ApiError, BadRequest, StoreUnavailable, Unprocessable
from service.outage import OUTAGE_ERRORS, OutageLog
from service.responses import Answer, failure
from service.routes.common import read_body
from service.routing import Endpoint
from service.scope import scope_header
from service.store.idempotency import IdempotencyRecords, KeptAnswer

TAKEOVER_AFTER_MS = 15_000  # longer than any request may run
_POLL_S = 0.02
_WAIT_FOR_FIRST_S = 10.0
_REPLAYED_HEADERS = {b"content-type", b"retry-after"}


class Idempotency:
    """Runs a POST with an Idempotency-Key once, and answers its repeats from Redis."""

    def __init__(
        self, records: IdempotencyRecords, clock: Clock, outage: OutageLog, max_body_bytes: int
    ) -> None:
        self._records = records
        self._clock = clock
        self._outage = outage
        self._max_body_bytes = max_body_bytes

    def wrap(self, endpoint: Endpoint) -> Endpoint:
        """`endpoint`, run once per Idempotency-Key; a request without one goes straight to it."""

        # Plain, returning the endpoint's coroutine: no frame of its own in the await chain.
        def idempotent(request: Request) -> Awaitable[Answer]:
            key = scope_header(request.scope, b"idempotency-key")
            if key is None:
                return endpoint(request)
            return self._once(request, key, endpoint)

        return idempotent

    async def _once(self, request: Request, key: str, endpoint: Endpoint) -> Answer:
        if not 1 <= len(key) <= 255 or not key.isprintable():
            raise BadRequest("`Idempotency-Key` must be 1 to 255 printable characters")
        scope = request.scope
        body = await read_body(request, self._max_body_bytes)
        caller_hash = _sha256((scope_header(scope, b"authorization") or "").encode())[:32]
        key_hash = _sha256(key.encode())
        record_key = self._records.key(caller_hash, key_hash)
        fingerprint = _sha256(f"{scope['method']} {scope['path']}\n".encode() + body)
        kept = await self._claim(record_key, fingerprint)
        if kept is not None:
            return _replay(kept)
        request.state.idempotency_hash = _sha256((caller_hash + key_hash).encode())
        mark, token = operation.watch()
        # The failure is handled after the `try`, not in its `except`: this module is compiled
        # (service/native.py), and mypyc loses the exception being handled when an `except`
        # block awaits before `raise` (the service then died on the next log line).
        failed: BaseException | None = None
        try:
            response = await endpoint(Request(scope, _replaying(body, request.receive)))
        except ApiError as error:
            response = failure(error)
        except BaseException as error:
            failed = error
        finally:
            operation.unwatch(token)
        if failed is not None:
            # An outage or a bug is answered further out: let go of the key, so that
            # a retry runs again instead of waiting for a takeover.
            with contextlib.suppress(*OUTAGE_ERRORS):
                await self._records.release(record_key)
            raise failed
        try:
            await self._keep(record_key, fingerprint, response, reached=mark.reached)
        except OUTAGE_ERRORS as error:
            # Only the answer's copy is lost. The claim stays pending, and a retry
            # takes it over after TAKEOVER_AFTER_MS.
            self._outage.failure(error)
        return response

    async def _keep(
        self, record_key: str, fingerprint: str, response: Answer, *, reached: bool
    ) -> None:
        """Keep the answer of a request that reached its operation, below 500; else let go."""
        if not reached or response.status_code >= 500:
            await self._records.release(record_key)
            return
        headers = [
            (name.decode(), value.decode())
            for name, value in response.raw_headers
            if name in _REPLAYED_HEADERS
        ]
        body = bytes(response.body).decode()
        answer = KeptAnswer(fingerprint, self._clock(), response.status_code, headers, body)
        await self._records.write(record_key, answer)

    async def _claim(self, record_key: str, fingerprint: str) -> KeptAnswer | None:
        """Claim the key (None), or return the first request's kept answer."""
        deadline = asyncio.get_running_loop().time() + _WAIT_FOR_FIRST_S
        while True:
            claim = KeptAnswer(fingerprint, self._clock())
            if await self._records.claim(record_key, claim):
                return None
            kept = await self._records.read(record_key)
            if kept is None:
                continue  # the first request failed with a 5xx and let go: claim again
            if kept.fingerprint != fingerprint:
                raise Unprocessable(
                    "E101", "this Idempotency-Key was used with another request body"
                )
            if kept.status:
                return kept
            if self._clock() - kept.started_ms > TAKEOVER_AFTER_MS:
                # The first request died between claiming and answering.
                await self._records.write(record_key, claim)
                return None
            if asyncio.get_running_loop().time() > deadline:
                raise StoreUnavailable(
                    "a request with this Idempotency-Key is still running; retry",
                    retry_after_s=1,
                )
            await asyncio.sleep(_POLL_S)


def _replay(kept: KeptAnswer) -> Response:
    headers = dict(kept.headers) | {"idempotent-replayed": "true"}
    return Response(kept.body.encode(), status_code=kept.status, headers=headers)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive callable that hands the buffered body to the endpoint, then the real one."""
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
