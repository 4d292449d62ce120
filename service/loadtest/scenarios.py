"""The virtual users: what one frontend session does, over and over, until the deadline.

- checkout: browse a day of slots, lock an available one with a fresh random
  lock_key, think, then book it with the key (`book_ratio`) or unlock it; a
  booked user later cancels with probability `cancel_ratio`, so that few slots
  stay contended for the whole run instead of selling out in seconds.
- hot-lock: lock and unlock the user's own slots in turn, nothing else: the
  hot path alone.
- group: a class of many places; a user holds 1 to 4 of them (a partial hold,
  API.md), thinks, then books some or all of them with its key and lets the
  rest go (`book_ratio`), or lets all of them go; some bookings are cancelled
  later (`cancel_ratio`).

A user checks the deadline only between iterations, so every lock it took is
let go before it stops.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass, field

from service.loadtest.client import ApiClient, created_id, lock_token
from service.loadtest.fixture import Schedule, iso
from service.loadtest.observations import BookingAck, Hold, Observations
from service.loadtest.stats import TRANSPORT_ERROR

ERROR_PAUSE_S = 0.05  # after no answer at all, so a dead service is not hammered in a spin


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How a checkout user decides."""

    think_ms: float = 200.0
    book_ratio: float = 0.7
    cancel_ratio: float = 0.5
    lock_hold_s: int = 180


@dataclass(slots=True)
class Run:
    """What all virtual users of one run share."""

    api: ApiClient
    schedule: Schedule
    behaviour: Behaviour
    deadline_s: float  # on the monotonic clock
    observations: Observations | None  # None: nothing kept (the bench's generator)
    wall_offset_s: float = field(default_factory=lambda: time.time() - time.monotonic())
    _until_second: int = -1
    _until: tuple[str, float] = ("", 0.0)

    def running(self) -> bool:
        """Whether users should start another iteration."""
        return time.monotonic() < self.deadline_s

    def lock_until(self) -> tuple[str, float]:
        """lock_until `lock_hold_s` ahead: as sent (ISO) and on the monotonic clock."""
        second = int(time.time())
        if second != self._until_second:  # formatted once a second, not per request
            until_wall_s = second + self.behaviour.lock_hold_s
            self._until_second = second
            self._until = (iso(until_wall_s), until_wall_s - self.wall_offset_s)
        return self._until


def new_lock_key(rng: random.Random) -> str:
    """A random 128-bit lock_key, reproducible from the run's seed."""
    return f"{rng.getrandbits(128):032x}"


async def take_lock(run: Run, slot_id: str, lock_key: str, quantity: int = 0) -> Hold | None:
    """Lock the slot (or hold `quantity` places); the hold (kept in the observations), or None."""
    until, until_s = run.lock_until()
    sent_s = time.monotonic()
    reply = await run.api.lock(slot_id, lock_key, until, quantity)
    if not reply.ok:
        if reply.status == TRANSPORT_ERROR:
            await asyncio.sleep(ERROR_PAUSE_S)
        return None
    if run.observations is None:
        return Hold(slot_id, lock_key, 0, sent_s, sent_s, until_s, quantity=quantity)
    granted_s = time.monotonic()
    hold = Hold(slot_id, lock_key, lock_token(reply), sent_s, granted_s, until_s, quantity=quantity)
    run.observations.holds.append(hold)
    return hold


def _releasing(hold: Hold) -> None:
    """The holder's first change leaves now: the hold is no longer certain from here on."""
    if hold.released_s is None:
        hold.released_s = time.monotonic()


async def unlock(run: Run, hold: Hold) -> None:
    """Let go of a hold; a 403 means someone else held the slot meanwhile."""
    _releasing(hold)
    reply = await run.api.unlock(hold.slot_id, hold.holder)
    if reply.status == 403:
        hold.lost_code = reply.code or "403"


async def book(run: Run, hold: Hold) -> BookingAck | None:
    """Book the held slot (or one held place) with its lock_key; the acknowledgement, if any."""
    _releasing(hold)
    reply = await run.api.book(hold.slot_id, hold.holder)
    # "locked by another key", or for a partial hold "no free place", though this key held one
    if reply.code == "E050" or (hold.quantity and reply.code == "E049"):
        hold.lost_code = reply.code
    if reply.status != 200:
        return None
    ack = BookingAck(created_id(reply), hold.slot_id, time.monotonic())
    if run.observations is not None:
        run.observations.bookings.append(ack)
    return ack


async def cancel(run: Run, ack: BookingAck) -> None:
    """Give a booked place back."""
    ack.cancel_sent_s = time.monotonic()
    reply = await run.api.cancel(ack.booking_id)
    ack.cancel_acked = reply.ok


async def think(run: Run, rng: random.Random) -> None:
    """Pause like a user reading the page: think_ms, give or take half."""
    if run.behaviour.think_ms > 0:
        await asyncio.sleep(rng.uniform(0.5, 1.5) * run.behaviour.think_ms / 1000)


async def checkout_user(run: Run, rng: random.Random) -> None:
    """Browse, lock, think, book or unlock; until the deadline."""
    while run.running():
        await checkout_once(run, rng)


async def checkout_once(run: Run, rng: random.Random) -> None:
    """One visit of the booking page."""
    start, end = run.schedule.day(rng.randrange(run.schedule.days))
    slot_ids = await run.api.available_slots(run.schedule.resource_id, start, end)
    if not slot_ids:
        await think(run, rng)
        return
    hold = await take_lock(run, rng.choice(slot_ids), new_lock_key(rng))
    if hold is None:
        return  # taken meanwhile: browse again
    await think(run, rng)
    if rng.random() >= run.behaviour.book_ratio:
        await unlock(run, hold)
        return
    ack = await book(run, hold)
    if ack is not None and rng.random() < run.behaviour.cancel_ratio:
        await think(run, rng)
        await cancel(run, ack)


async def group_user(run: Run, rng: random.Random) -> None:
    """Browse, hold a few places, think, book some and let the rest go; until the deadline."""
    while run.running():
        await group_once(run, rng)


async def group_once(run: Run, rng: random.Random) -> None:
    """One visit of a class's booking page, for a party of 1 to 4."""
    start, end = run.schedule.day(rng.randrange(run.schedule.days))
    slot_ids = await run.api.available_slots(run.schedule.resource_id, start, end)
    if not slot_ids:
        await think(run, rng)
        return
    hold = await take_lock(run, rng.choice(slot_ids), new_lock_key(rng), rng.randint(1, 4))
    if hold is None:
        return  # too few places left meanwhile: browse again
    await think(run, rng)
    booking = rng.random() < run.behaviour.book_ratio
    acks = []
    for _ in range(rng.randint(1, hold.quantity) if booking else 0):
        ack = await book(run, hold)
        if ack is not None:
            acks.append(ack)
    if len(acks) < hold.quantity:
        await unlock(run, hold)
    if acks and rng.random() < run.behaviour.cancel_ratio:
        await think(run, rng)
        for ack in acks[: rng.randint(1, len(acks))]:
            await cancel(run, ack)


async def hot_lock_user(run: Run, rng: random.Random, slot_ids: list[str]) -> None:
    """Lock and unlock this user's own slots in turn, until the deadline."""
    lock_key = new_lock_key(rng)
    for slot_id in itertools.cycle(slot_ids):
        if not run.running():
            return
        hold = await take_lock(run, slot_id, lock_key)
        if hold is not None:
            await unlock(run, hold)
