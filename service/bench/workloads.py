"""The bench's workloads: what each connection sends, over its own share of the slots in turn.

- lock: lock a slot, unlock it, on to the next (the load test's hot-lock user);
- read: GET /slots/:id;
- book: POST /bookings with the slot's id, one place each time. Nothing is
  cancelled, so every request of the workload is a booking; the slots it books
  are made with places enough for the whole run (`places_for`): as bookings go
  round the slots, each fills at the same pace, and at BOOKINGS_PER_S_BOUND
  (several times any rate seen on this machine) none would be full by the end.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Awaitable, Callable

from service.loadtest.client import ApiClient, Reply
from service.loadtest.scenarios import ERROR_PAUSE_S, Run
from service.loadtest.stats import TRANSPORT_ERROR

WORKLOADS = ("lock", "read", "book")
LABELS = {
    "lock": "lock/unlock (POST /slots/:id/lock, /unlock)",
    "read": "read (GET /slots/:id)",
    "book": "book (POST /bookings)",
}
READ = "GET /slots/:id"
BOOK = "POST /bookings"
BOOKINGS_PER_S_BOUND = 50_000
MAX_CAPACITY = 1_000_000  # the API's (400 E047 above it)

Request = Callable[[ApiClient, str], Awaitable[Reply]]


def chosen(workload: str) -> tuple[str, ...]:
    """The workloads `--workload` names: one, or "all" of them in order."""
    return WORKLOADS if workload == "all" else (workload,)


async def read(api: ApiClient, slot_id: str) -> Reply:
    """GET the slot."""
    return await api.call(READ, "GET", f"/slots/{slot_id}")


async def book(api: ApiClient, slot_id: str) -> Reply:
    """Book one place of the slot, without a lock."""
    return await api.call(BOOK, "POST", "/bookings", b'{"slot_id":"%s"}' % slot_id.encode())


SINGLE_REQUESTS: dict[str, Request] = {"read": read, "book": book}


def places_for(requests: int, slot_count: int) -> int:
    """The capacity that lets `requests` bookings go round `slot_count` slots (with one
    round to spare for connections that run ahead of the others)."""
    return min(MAX_CAPACITY, math.ceil(requests / max(1, slot_count)) + 1)


def places_for_run(seconds: float, slot_count: int) -> int:
    """The capacity that no run of `seconds` can fill at BOOKINGS_PER_S_BOUND."""
    return places_for(math.ceil(BOOKINGS_PER_S_BOUND * seconds), slot_count)


async def single_request_user(run: Run, request: Request, slot_ids: list[str]) -> None:
    """Send `request` for each of this user's slots in turn, until the deadline."""
    for slot_id in itertools.cycle(slot_ids):
        if not run.running():
            return
        reply = await request(run.api, slot_id)
        if reply.status == TRANSPORT_ERROR:
            await asyncio.sleep(ERROR_PAUSE_S)
