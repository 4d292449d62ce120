"""A booking load against a running service, recorded request by request, for fault tests.

Users of a checkout frontend, each in a loop: lock a slot with a new lock_key,
then book it with that key and a new Idempotency-Key (or give up and unlock),
keep the booking a moment and cancel it (again after a 503, as Retry-After
asks; a 503'd booking is left for `settle`). Slots are fewer places than users, so
locks and places are contended all the time. Beside them, one holder locks a
fresh slot every few milliseconds for two minutes and never lets go, and a
monitor reads the contended slots. Every request is kept as an Attempt: what
was sent, when, and what came back; fault_checks.py judges the record.

A run is bounded in requests (MAX_CYCLES per user) and in time (every request
times out after LOAD_TIMEOUT_S; `Load.stop` waits at most STOP_TIMEOUT_S).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import msgspec

from service.store.api_keys import KeyPair

LOAD_TIMEOUT_S = 5.0  # an answer later than this is a hang
SETTLE_TIMEOUT_S = 15.0  # a retry may wait up to 10 s for a first attempt's pending claim
STOP_TIMEOUT_S = 10.0
MAX_CYCLES = 2000
CHURN_LOCK_S = 3.0  # how long a checkout lock holds if nobody books or unlocks
HELD_LOCK_S = 120.0
WRITES = frozenset({"lock", "hold", "book", "unlock", "cancel"})


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request and its answer; times are time.monotonic() seconds."""

    kind: str  # lock, hold (a lock never released), book, unlock, cancel, read
    phase: str  # load, or settle (a retry after the fault)
    slot_id: str
    sent_s: float
    received_s: float
    status: int  # 0: no answer within the timeout, or the connection broke
    code: str | None  # the error code of a failure envelope
    retry_after: str | None
    data: Any
    meta: Any
    lock_key: str | None = None
    idempotency_key: str | None = None
    booking_id: str | None = None
    body: Any = None
    lock_for_s: float = 0.0

    @property
    def latency_s(self) -> float:
        """How long the answer took."""
        return self.received_s - self.sent_s

    @property
    def token(self) -> int:
        """The fencing token of a granted lock."""
        return int(self.meta["lock_token"])

    @property
    def answered_by_redis(self) -> bool:
        """A write whose answer came from Redis (not a 503, not silence)."""
        return self.kind in WRITES and self.status not in (0, 503)


@dataclass(frozen=True, slots=True)
class Plan:
    """The shape of the load."""

    users: int = 24
    churn_slots: int = 6
    capacity: int = 3
    held_slots: int = 150
    held_every_s: float = 0.05


@dataclass(frozen=True, slots=True)
class Slots:
    """The slots a run works on, all of one published resource."""

    resource_id: str
    churn: list[str]
    held: list[str]
    capacity: int


def lock_until(seconds: float) -> str:
    """An ISO 8601 instant `seconds` from now."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


class Client:
    """The service over HTTP (aiohttp, one pool); every request made through `send` is logged."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, pair: KeyPair) -> None:
        self.session = session
        self.base_url = base_url
        self.pair = pair
        self.log: list[Attempt] = []
        self.in_flight: Counter[str] = Counter()  # requests sent and not yet answered, by kind

    async def send(
        self,
        kind: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        slot_id: str = "",
        key: str = "public",
        phase: str = "load",
        timeout_s: float = LOAD_TIMEOUT_S,
        **fields: Any,
    ) -> Attempt:
        """One request, logged; `fields` fill the Attempt (lock_key, idempotency_key, ...)."""
        headers = self._headers(key)
        if fields.get("idempotency_key"):
            headers["idempotency-key"] = fields["idempotency_key"]
        sent_s = time.monotonic()
        self.in_flight[kind] += 1
        try:
            status, retry_after, envelope = await self._request(
                method, path, body, headers, timeout_s
            )
        finally:
            self.in_flight[kind] -= 1
        error = envelope.get("error") or {}
        if kind == "book" and status == 200:
            fields["booking_id"] = envelope["data"]["id"]
        attempt = Attempt(
            kind, phase, slot_id, sent_s, time.monotonic(), status, error.get("code"),
            retry_after, envelope.get("data"), envelope.get("meta"), body=body, **fields,
        )  # fmt: skip
        self.log.append(attempt)
        return attempt

    async def fetch(self, path: str, **params: str) -> tuple[int, Any]:
        """(status, envelope) of a GET with the secret key, not logged: checks, not load."""
        headers = self._headers("secret")
        status, _, envelope = await self._request("GET", path, None, headers, SETTLE_TIMEOUT_S,
                                                  params)  # fmt: skip
        return status, envelope

    async def read(self, path: str, **params: str) -> Any:
        """The envelope of a GET that must succeed."""
        status, envelope = await self.fetch(path, **params)
        assert status == 200, (path, status, envelope)
        return envelope

    def _headers(self, key: str) -> dict[str, str]:
        token = self.pair.secret_key if key == "secret" else self.pair.public_key
        return {"authorization": f"Bearer {token}"}

    async def _request(
        self,
        method: str,
        path: str,
        body: Any,
        headers: dict[str, str],
        timeout_s: float,
        params: dict[str, str] | None = None,
    ) -> tuple[int, str | None, dict[str, Any]]:
        try:
            async with self.session.request(
                method,
                self.base_url + path,
                json=body,
                params=params,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                raw = await response.read()
                return response.status, response.headers.get("retry-after"), _envelope(raw)
        except (aiohttp.ClientError, TimeoutError) as error:
            return 0, None, {"data": repr(error)}

    async def lock(
        self, slot_id: str, lock_key: str, seconds: float, kind: str = "lock", phase: str = "load"
    ) -> Attempt:
        """POST /slots/:id/lock until `seconds` from now."""
        body = {"lock_key": lock_key, "lock_until": lock_until(seconds)}
        path = f"/slots/{slot_id}/lock"
        return await self.send(
            kind, "POST", path, body, slot_id=slot_id, phase=phase, lock_key=lock_key,
            lock_for_s=seconds,
        )  # fmt: skip

    async def unlock(self, slot_id: str, lock_key: str) -> Attempt:
        """POST /slots/:id/unlock."""
        body = {"lock_key": lock_key}
        path = f"/slots/{slot_id}/unlock"
        return await self.send("unlock", "POST", path, body, slot_id=slot_id, lock_key=lock_key)

    async def book(
        self, slot_id: str, lock_key: str, idempotency_key: str, phase: str = "load"
    ) -> Attempt:
        """POST /bookings with the lock's key and an Idempotency-Key."""
        body = {"slot_id": slot_id, "lock_key": lock_key}
        timeout_s = SETTLE_TIMEOUT_S if phase == "settle" else LOAD_TIMEOUT_S
        return await self.send(
            "book", "POST", "/bookings", body, slot_id=slot_id, phase=phase, timeout_s=timeout_s,
            lock_key=lock_key, idempotency_key=idempotency_key,
        )  # fmt: skip

    async def cancel(self, slot_id: str, booking_id: str, phase: str = "load") -> Attempt:
        """POST /bookings/:id/cancel (a repeat changes nothing)."""
        path = f"/bookings/{booking_id}/cancel"
        return await self.send(
            "cancel", "POST", path, slot_id=slot_id, phase=phase, booking_id=booking_id
        )


def _envelope(raw: bytes) -> dict[str, Any]:
    try:
        decoded = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


class Load:
    """Churning users, a holder and a monitor, running until `stop`."""

    def __init__(self, client: Client, slots: Slots, plan: Plan) -> None:
        self.client = client
        self.slots = slots
        self.plan = plan
        self.run_id = uuid.uuid4().hex[:8]
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start every user, the holder and the monitor."""
        jobs = [self._user(index) for index in range(self.plan.users)]
        jobs += [self._holder(), self._monitor()]
        self._tasks = [asyncio.create_task(job) for job in jobs]

    async def stop(self) -> None:
        """Ask everyone to stop and wait for them (users keep the bookings they hold)."""
        self._stopping.set()
        await asyncio.wait_for(asyncio.gather(*self._tasks), STOP_TIMEOUT_S)

    async def answered_after(self, since_s: float, timeout_s: float = 20.0) -> float:
        """When the first write sent after `since_s` was answered by Redis again."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            answered = [
                attempt.received_s
                for attempt in self.client.log
                if attempt.sent_s > since_s and attempt.answered_by_redis
            ]
            if answered:
                return min(answered)
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no write answered by Redis within {timeout_s} s")

    async def in_flight(self, kind: str, at_least: int, timeout_s: float = 5.0) -> None:
        """Return once `at_least` requests of `kind` are on their way (or after timeout_s)."""
        deadline = time.monotonic() + timeout_s
        for _ in range(100_000):
            if self.client.in_flight[kind] >= at_least or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.001)

    async def _pause(self, seconds: float) -> None:
        # A pause that ends early when the load stops.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _user(self, index: int) -> None:
        chooser = random.Random(index)
        for cycle in range(MAX_CYCLES):
            if self._stopping.is_set():
                return
            await self._checkout(chooser, chooser.choice(self.slots.churn), f"u{index}-{cycle}")

    async def _checkout(self, chooser: random.Random, slot_id: str, name: str) -> None:
        lock_key = f"{self.run_id}-{name}"
        locked = await self.client.lock(slot_id, lock_key, CHURN_LOCK_S)
        if locked.status != 200:
            if locked.status == 503:  # it may have applied: let go, then back off
                await self.client.unlock(slot_id, lock_key)
            await self._pause(0.1 if locked.status == 503 else chooser.uniform(0.005, 0.03))
            return
        if chooser.random() < 0.15:  # the user gives up at checkout
            await self.client.unlock(slot_id, lock_key)
            return
        booked = await self.client.book(slot_id, lock_key, f"{lock_key}-book")
        if booked.status != 200:
            await self.client.unlock(slot_id, lock_key)  # harmless if the booking applied
            await self._pause(0.1 if booked.status == 503 else 0.0)
            return
        await self._pause(chooser.uniform(0.02, 0.15))
        for _ in range(100):  # a cancel answered 503 is retried, as Retry-After asks
            if booked.booking_id is None or self._stopping.is_set():
                return
            if (await self.client.cancel(slot_id, booked.booking_id)).status != 503:
                return
            await self._pause(0.1)

    async def _holder(self) -> None:
        for index, slot_id in enumerate(self.slots.held):
            if self._stopping.is_set():
                return
            await self.client.lock(slot_id, f"{self.run_id}-held-{index}", HELD_LOCK_S, "hold")
            await self._pause(self.plan.held_every_s)

    async def _monitor(self) -> None:
        for _ in range(MAX_CYCLES):
            if self._stopping.is_set():
                return
            for slot_id in self.slots.churn:
                await self.client.send("read", "GET", f"/slots/{slot_id}", slot_id=slot_id)
            await self._pause(0.1)
