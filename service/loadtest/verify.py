"""Invariants checked against the service after the run, from outside, with the secret key."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

import msgspec

from service.loadtest.client import ApiClient, Reply
from service.loadtest.fixture import Schedule
from service.loadtest.invariants import (
    InvariantResult,
    bookings_within_capacity,
    exclusive_holds,
    growing_tokens,
    kept_holds,
    places_within_capacity,
    result,
)
from service.loadtest.observations import BookingAck, Observations

VERIFY = "verify"
CONCURRENCY = 16
ATTEMPTS = 3


class _Booking(msgspec.Struct):
    slot_id: str
    status: str


class _Slot(msgspec.Struct):
    id: str
    capacity: int
    num_active_bookings: int
    num_held_places: int = 0


class _BookingReply(msgspec.Struct):
    data: _Booking


class _SlotsReply(msgspec.Struct):
    data: list[_Slot]


_booking = msgspec.json.Decoder(_BookingReply)
_slots = msgspec.json.Decoder(_SlotsReply)


async def check_all(
    api: ApiClient, schedule: Schedule, observations: Observations
) -> list[InvariantResult]:
    """Every invariant: the local ones from the observations, then the service's state."""
    return [
        exclusive_holds(observations.holds),
        growing_tokens(observations.holds),
        kept_holds(observations.holds),
        bookings_within_capacity(observations.bookings, schedule.capacity),
        places_within_capacity(observations.holds, observations.bookings, schedule.capacity),
        await bookings_exist(api, observations.bookings),
        await slots_within_capacity(api, schedule, observations.bookings),
    ]


async def bookings_exist(api: ApiClient, bookings: Sequence[BookingAck]) -> InvariantResult:
    """Every acknowledged booking can be read back, on its slot, in the status it must have."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(ack: BookingAck) -> str | None:
        async with gate:
            return _booking_problem(ack, await _get(api, f"/bookings/{ack.booking_id}"))

    found = await asyncio.gather(*(one(ack) for ack in bookings))
    problems = [problem for problem in found if problem is not None]
    return result("every acknowledged booking exists", len(bookings), problems)


def _booking_problem(ack: BookingAck, reply: Reply) -> str | None:
    if reply.status == 404:
        return f"booking {ack.booking_id} was acknowledged but does not exist"
    if not reply.ok:
        return f"booking {ack.booking_id} could not be read back ({reply.status} {reply.code})"
    booking = _booking.decode(reply.body).data
    if booking.slot_id != ack.slot_id:
        return f"booking {ack.booking_id} is on slot {booking.slot_id}, not {ack.slot_id}"
    expected = ack.expected_status
    if expected is not None and booking.status != expected:
        return f"booking {ack.booking_id} is {booking.status}, expected {expected}"
    return None


async def slots_within_capacity(
    api: ApiClient, schedule: Schedule, bookings: Sequence[BookingAck]
) -> InvariantResult:
    """No slot has more active bookings (plus held places) than capacity, nor fewer bookings
    than the run knows are active."""
    known_active = Counter(ack.slot_id for ack in bookings if ack.cancel_sent_s is None)
    problems: list[str] = []
    seen: set[str] = set()
    for day in range(schedule.days):
        start, end = schedule.day(day)
        query = f"resource_id={schedule.resource_id}&start_date={start}&end_date={end}&limit=50"
        reply = await _get(api, f"/slots?{query}")
        if not reply.ok:
            problems.append(f"slots of day {day} could not be listed ({reply.status})")
            continue
        for slot in _slots.decode(reply.body).data:
            seen.add(slot.id)
            problems += _slot_problems(slot, known_active[slot.id])
    problems += [f"slot {slot_id} is missing" for slot_id in set(schedule.slot_ids) - seen]
    return result("no slot has more active bookings than capacity", len(seen), problems)


def _slot_problems(slot: _Slot, known_active: int) -> list[str]:
    problems = []
    if slot.num_active_bookings + slot.num_held_places > slot.capacity:
        problems.append(
            f"slot {slot.id}: {slot.num_active_bookings} active bookings and "
            f"{slot.num_held_places} held places, capacity {slot.capacity}"
        )
    if slot.num_active_bookings < known_active:
        problems.append(
            f"slot {slot.id}: {slot.num_active_bookings} active bookings counted, "
            f"but {known_active} acknowledged and never cancelled"
        )
    return problems


async def _get(api: ApiClient, path: str) -> Reply:
    """A read that is retried when no clear answer comes (no answer, 429, 5xx)."""
    reply = await api.call(VERIFY, "GET", path)
    for attempt in range(1, ATTEMPTS):
        if reply.ok or reply.status == 404 or 400 <= reply.status < 429:
            break
        await asyncio.sleep(0.2 * attempt)
        reply = await api.call(VERIFY, "GET", path)
    return reply
