"""Partial holds racing over real HTTP: 60 holders of random quantities on a 10-place slot.

`slotlock serve` on a redis-server of its own (the fixture of test_booking_races).
Every holder holds 1 to 4 places, books some of them with its key, sometimes
cancels them, and releases the rest or lets it be; a watcher reads the slot all
the while. Bookings plus held places must never exceed the capacity: as the
service shows it, and as the clients know it for certain (a hold from its 200
until its holder sends its next change, a booking from its 201 until its cancel
is sent).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.test_booking_races import Client, Service, against
from tests.test_booking_races import service as service  # the module's own service

CAPACITY = 10
HOLDERS = 60
ATTEMPTS = 8  # holds each user asks for, granted or not


@dataclass
class Ledger:
    """Places the clients know for certain to be taken, as (start, end, places) intervals."""

    spans: list[tuple[float, float, int]] = field(default_factory=list)
    outcomes: Counter[tuple[str, int, str | None]] = field(default_factory=Counter)
    bookings_acknowledged: int = 0
    bookings_cancelled: int = 0
    watched: list[dict[str, Any]] = field(default_factory=list)

    def taken(self, start: float, end: float, places: int) -> int:
        """`places` were certainly taken from `start` to `end` (monotonic seconds); its index."""
        self.spans.append((start, end, places))
        return len(self.spans) - 1

    def ends(self, index: int, end: float) -> None:
        """The span at `index` stops counting at `end`."""
        start, _, places = self.spans[index]
        self.spans[index] = (start, end, places)

    def most_taken_at_once(self) -> int:
        """The largest sum of certainly taken places at any instant."""
        moments = sorted({start for start, _, _ in self.spans})
        return max(
            (sum(n for start, end, n in self.spans if start <= at < end) for at in moments),
            default=0,
        )


async def holder(client: Client, slot_id: str, seed: int, ledger: Ledger) -> None:
    """One user: hold, book some held places, maybe cancel them, release or walk away."""
    rng = random.Random(seed)
    lock_key = f"holder-{seed}"
    for _ in range(ATTEMPTS):
        quantity = rng.randint(1, 4)
        until = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        body = {"lock_key": lock_key, "lock_until": until, "quantity": quantity}
        reply = await client.call("POST", f"/slots/{slot_id}/lock", body, key="public")
        ledger.outcomes[("hold", *reply.outcome)] += 1
        if reply.status != 200:
            await asyncio.sleep(rng.uniform(0.005, 0.03))
            continue
        granted = time.monotonic()
        await asyncio.sleep(rng.uniform(0, 0.02))
        to_book = rng.randint(0, quantity)
        ledger.taken(granted, time.monotonic(), quantity)
        made = await book_held(client, slot_id, lock_key, to_book, ledger)
        for booking_id, span in made if rng.random() < 0.7 else []:
            ledger.ends(span, time.monotonic())
            ledger.bookings_cancelled += 1
            cancelled = await client.call("POST", f"/bookings/{booking_id}/cancel", key="public")
            ledger.outcomes[("cancel", *cancelled.outcome)] += 1
        if to_book < quantity and rng.random() < 0.9:
            unlocked = await client.call(
                "POST", f"/slots/{slot_id}/unlock", {"lock_key": lock_key}, key="public"
            )
            ledger.outcomes[("unlock", *unlocked.outcome)] += 1
        elif to_book < quantity:
            return  # walks away: the rest stays held until lock_until, past the test's end


async def book_held(
    client: Client, slot_id: str, lock_key: str, count: int, ledger: Ledger
) -> list[tuple[str, int]]:
    """Book `count` of the key's held places: (booking id, its ledger span) of each made."""
    made = []
    for _ in range(count):
        reply = await client.book(slot_id, lock_key)
        ledger.outcomes[("book", *reply.outcome)] += 1
        if reply.status in (200, 201):
            ledger.bookings_acknowledged += 1
            span = ledger.taken(time.monotonic(), float("inf"), 1)
            made.append((reply.body["data"]["id"], span))
    return made


async def watch(client: Client, slot_id: str, ledger: Ledger, done: asyncio.Event) -> None:
    """Read the slot over and over while the holders run."""
    while not done.is_set():
        ledger.watched.append(await client.ok("GET", f"/slots/{slot_id}"))
        await asyncio.sleep(0.002)


def test_sixty_holders_never_take_more_places_than_the_slot_has(service: Service) -> None:
    """Bookings plus held places stay within capacity throughout, by every measure."""
    ledger = Ledger()

    async def scenario(client: Client) -> Any:
        slot_id = await client.published_slot(capacity=CAPACITY)
        done = asyncio.Event()
        watcher = asyncio.create_task(watch(client, slot_id, ledger, done))
        await asyncio.gather(*(holder(client, slot_id, seed, ledger) for seed in range(HOLDERS)))
        done.set()
        await watcher
        return await client.ok("GET", f"/slots/{slot_id}")

    final = against(service, scenario)
    allowed = {
        ("hold", 200, None),
        ("hold", 422, "E049"),
        ("book", 201, None),
        ("book", 200, None),
        ("unlock", 200, None),
        ("cancel", 200, None),
    }
    assert set(ledger.outcomes) <= allowed, ledger.outcomes
    assert ledger.outcomes[("hold", 200, None)] >= CAPACITY // 4
    assert ledger.outcomes[("hold", 422, "E049")] > 0, "no holder was ever refused: no race"
    assert ledger.most_taken_at_once() <= CAPACITY
    assert len(ledger.watched) > 20
    for slot in [*ledger.watched, final]:
        taken = slot["num_active_bookings"] + slot["num_held_places"]
        assert taken <= slot["capacity"] == CAPACITY, slot
        assert slot["num_free_places"] == CAPACITY - taken
        assert slot["available"] == (taken < CAPACITY)
    active = ledger.bookings_acknowledged - ledger.bookings_cancelled
    assert final["num_active_bookings"] == active
    assert final["num_bookings"] == ledger.bookings_acknowledged
