"""One fault under load, start to finish: set up, load, fault, snapshot, settle, snapshot.

    run = asyncio.run(run_fault(service_url, pair, resource_id, Plan(), fault))

`fault(load)` injects the fault while the load runs and returns the instants it
marked (time.monotonic() seconds: "fault", "back", "recovered", ...); the load
stops when it returns. Then the state is read ("before" settling), every
booking and cancellation answered 503 is retried with its Idempotency-Key until
it is answered otherwise, and the state is read again ("after"). Last, each
contended slot is emptied and locked once more, for its fencing token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import msgspec

from service.store.api_keys import KeyPair
from tests.fault_load import Attempt, Client, Load, Plan, Slots
from tests.live import slotlock

Fault = Callable[[Load], Awaitable[dict[str, float]]]
FENCE_LOCK_S = 5.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the service shows: slots, their bookings, acknowledged bookings, held slots."""

    slots: dict[str, Any]  # contended slot id -> the slot
    bookings: dict[str, list[Any]]  # contended slot id -> every booking listed for it
    found: dict[str, Any]  # acknowledged booking id -> the booking, or None if not found
    held: dict[str, Any]  # held slot id -> the slot


@dataclass
class FaultRun:
    """Everything a fault run recorded, for the checks in fault_checks.py."""

    slots: Slots
    attempts: list[Attempt]  # load, settle and fence phases
    marks: dict[str, float]
    before: Snapshot  # after the load, before settling
    after: Snapshot  # after settling
    fence_tokens: dict[str, int]  # contended slot id -> the token of a lock taken last
    redis_timeout_s: float
    service_log: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    def phase(self, *phases: str) -> list[Attempt]:
        """The attempts of these phases."""
        return [attempt for attempt in self.attempts if attempt.phase in phases]


def create_keys(**variables: str) -> KeyPair:
    """A key pair from `slotlock keys create` with these settings (REDIS_URL, ...)."""
    done = slotlock("keys", "create", "--environment", "fault", **variables)
    assert done.returncode == 0, done.stderr
    return msgspec.json.decode(done.stdout, type=KeyPair)


async def run_fault(
    base_url: str,
    pair: KeyPair,
    resource_id: str | None,
    plan: Plan,
    fault: Fault,
    redis_timeout_s: float,
) -> FaultRun:
    """Load, fault, settle; `resource_id` None makes a new resource."""
    connector = aiohttp.TCPConnector(limit=plan.users + 16)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = Client(session, base_url, pair)
        slots = await prepare(client, resource_id or await new_resource(client), plan)
        client.log.clear()
        load = Load(client, slots, plan)
        load.start()
        try:
            marks = await fault(load)
        finally:
            await load.stop()
        before = await snapshot(client, slots, acknowledged(client.log))
        await settle(client, list(client.log))
        after = await snapshot(client, slots, acknowledged(client.log))
        tokens = {slot_id: await fence(client, slot_id, after) for slot_id in slots.churn}
        return FaultRun(slots, list(client.log), marks, before, after, tokens, redis_timeout_s)


def acknowledged(attempts: list[Attempt]) -> set[str]:
    """Ids of the bookings whose creation was answered 200."""
    return {a.booking_id for a in attempts if a.kind == "book" and a.booking_id is not None}


async def new_resource(client: Client) -> str:
    """A new published resource's id."""
    made = await client.send("setup", "POST", "/resources", {"name": "Fault room"}, key="secret")
    assert made.status == 200, made.data
    path = f"/resources/{made.data['id']}/publish"
    published = await client.send("setup", "POST", path, key="secret")
    assert published.status == 200, published.data
    return str(made.data["id"])


async def prepare(client: Client, resource_id: str, plan: Plan) -> Slots:
    """The contended slots and the held ones, in one bulk create on `resource_id`."""
    start = datetime.now(UTC) + timedelta(days=1)
    specs = [
        {
            "start_date": (start + timedelta(hours=index)).isoformat(),
            "end_date": (start + timedelta(hours=index, minutes=30)).isoformat(),
            "capacity": plan.capacity,
        }
        for index in range(plan.churn_slots + plan.held_slots)
    ]
    body = {"resource_id": resource_id, "slots": specs}
    created = await client.send("setup", "POST", "/slots", body, key="secret")
    assert created.status == 200, created
    ids = [slot["id"] for slot in created.data]
    return Slots(resource_id, ids[: plan.churn_slots], ids[plan.churn_slots :], plan.capacity)


async def snapshot(client: Client, slots: Slots, booking_ids: set[str]) -> Snapshot:
    """Read the state the checks compare with the record."""
    churn = {slot_id: await _data(client, f"/slots/{slot_id}") for slot_id in slots.churn}
    listed = {slot_id: await _all_bookings(client, slot_id) for slot_id in slots.churn}
    found = {booking_id: await _booking(client, booking_id) for booking_id in booking_ids}
    held = {slot_id: await _data(client, f"/slots/{slot_id}") for slot_id in slots.held}
    return Snapshot(churn, listed, found, held)


async def _data(client: Client, path: str) -> Any:
    return (await client.read(path))["data"]


async def _all_bookings(client: Client, slot_id: str) -> list[Any]:
    every: list[Any] = []
    for page in range(1, 1000):
        payload = await client.read("/bookings", slot_id=slot_id, limit="50", page=str(page))
        every += payload["data"]
        if len(every) >= payload["meta"]["total"] or not payload["data"]:
            return every
    raise AssertionError(f"more than 1000 pages of bookings on slot {slot_id}")


async def _booking(client: Client, booking_id: str) -> Any:
    status, envelope = await client.fetch(f"/bookings/{booking_id}")
    assert status in (200, 404), (status, envelope)
    return envelope["data"] if status == 200 else None


async def settle(client: Client, attempts: list[Attempt]) -> None:
    """Retry every booking and cancellation answered 503 until it is answered otherwise.

    A booking is retried with its Idempotency-Key and body: the receipt its first
    run left (if it ran) makes the retry return that booking instead of a second.
    """
    ambiguous = [a for a in attempts if a.status == 503 and a.kind in ("book", "cancel")]
    await asyncio.gather(*(_settle_one(client, attempt) for attempt in ambiguous))


async def _settle_one(client: Client, first: Attempt) -> None:
    for _ in range(6):
        if first.kind == "book":
            assert first.lock_key is not None
            assert first.idempotency_key is not None
            key = first.idempotency_key
            again = await client.book(first.slot_id, first.lock_key, key, "settle")
        else:
            assert first.booking_id is not None
            again = await client.cancel(first.slot_id, first.booking_id, "settle")
        if again.status != 503:
            return
        await asyncio.sleep(0.5)


async def fence(client: Client, slot_id: str, state: Snapshot) -> int:
    """Cancel the slot's active bookings, then lock it: the new holder's fencing token."""
    for booking in state.bookings[slot_id]:
        if booking["status"] == "active":
            cancelled = await client.cancel(slot_id, booking["id"], phase="fence")
            assert cancelled.status == 200, cancelled.data
    for _ in range(10):
        locked = await client.lock(slot_id, f"fence-{slot_id}", FENCE_LOCK_S, phase="fence")
        if locked.status == 200:
            return locked.token
        assert locked.code == "E045", locked  # a checkout lock, expiring
        await asyncio.sleep(min(float(locked.retry_after or 1), 3.0))
    raise AssertionError(f"slot {slot_id} stayed locked")
