"""Script status codes and the API errors they become: the one table, translated once.

The typed script calls (service/store/calls/) raise these for the statuses that refuse
a request; statuses a store acts on (STALE, REPLAY, GONE, ...) become reply types there.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

from service.clock import format_instant
from service.errors import (
    ApiError,
    BookingNotFound,
    LockNotOwned,
    ResourceNotFound,
    SlotNotFound,
    StoreUnavailable,
    Unprocessable,
)
from service.scripts import RedisReply
from service.store.calls.common import Stale, UnexpectedReply, as_int, as_str

# A script answers STALE when what the store read before calling it changed meanwhile
# (a slot added, a booking moved): the store reads again and calls it again.
STALE_RETRIES = 8

T = TypeVar("T")

Refusal = Callable[[list[RedisReply], int], ApiError]


def _locked(reply: list[RedisReply], now_ms: int) -> ApiError:
    until_ms = as_int(reply[1])
    return Unprocessable(
        "E045",
        f"the slot is locked under another lock_key until {format_instant(until_ms)}",
        retry_after_s=math.ceil((until_ms - now_ms) / 1000),
    )


def _held(reply: list[RedisReply], now_ms: int) -> ApiError:
    until_ms = as_int(reply[1])
    return Unprocessable(
        "E045",
        "another lock_key holds places of the slot; the first of those holds ends at "
        + format_instant(until_ms),
        retry_after_s=math.ceil((until_ms - now_ms) / 1000),
    )


def _places_short(reply: list[RedisReply], now_ms: int) -> ApiError:
    free, own = as_int(reply[1]), as_int(reply[2])
    return Unprocessable(
        "E049",
        f"only {free} places of the slot are free besides the {own} this lock_key holds",
    )


def _capacity_too_low(reply: list[RedisReply], now_ms: int) -> ApiError:
    held = as_int(reply[2]) if len(reply) > 2 else 0
    return Unprocessable(
        "E046",
        f"`capacity` is below the slot's {as_int(reply[1])} active bookings"
        + (f" plus {held} held places" if held else ""),
    )


REFUSALS: dict[str, Refusal] = {
    "SLOT_NOT_FOUND": lambda reply, now_ms: SlotNotFound("slot not found"),
    "RESOURCE_NOT_FOUND": lambda reply, now_ms: ResourceNotFound("resource not found"),
    "BOOKING_NOT_FOUND": lambda reply, now_ms: BookingNotFound("booking not found"),
    "NOT_LOCKABLE": lambda reply, now_ms: Unprocessable("E044", "the slot is not lockable"),
    "SLOT_DISABLED": lambda reply, now_ms: Unprocessable("E051", "the slot is disabled"),
    "SLOT_FULL": lambda reply, now_ms: Unprocessable("E049", "the slot has no free place"),
    "PLACES_SHORT": _places_short,
    "LOCKED": _locked,
    "HELD": _held,
    "NOT_OWNER": lambda reply, now_ms: LockNotOwned(
        "the slot is locked under another lock_key; the lock stays"
    ),
    "LOCKED_BY_OTHER": lambda reply, now_ms: Unprocessable(
        "E050", "the slot is locked; only the request with its lock_key may book it"
    ),
    "RESOURCE_DRAFT": lambda reply, now_ms: Unprocessable(
        "E061", "the slot's resource is not published"
    ),
    "BOOKING_CLOSED": lambda reply, now_ms: Unprocessable(
        "E058", "booking for this slot has closed (the resource's booking_disabled_before)"
    ),
    "BAD_RANGE": lambda reply, now_ms: Unprocessable(
        "E023", "`start_date` must be before `end_date`"
    ),
    "OVERLAP": lambda reply, now_ms: Unprocessable(
        "E024", f"the slot would overlap slot {as_str(reply[1])} of the same resource"
    ),
    "CAPACITY_TOO_LOW": _capacity_too_low,
    "HAS_ACTIVE_BOOKINGS": lambda reply, now_ms: Unprocessable(
        "E060", f"the slot still has {as_int(reply[1])} active bookings"
    ),
    "HOLD_CAP": lambda reply, now_ms: Unprocessable(
        "E104", f"this lock_key already holds {as_int(reply[1])} slots, the most one key may hold"
    ),
}


def refused(reply: list[RedisReply], now_ms: int) -> ApiError:
    """The error a refusing reply becomes; `now_ms` is the instant the script judged at
    (E045's Retry-After counts from it; only lock_slot answers LOCKED or HELD)."""
    refusal = REFUSALS.get(as_str(reply[0]))
    if refusal is None:
        raise UnexpectedReply(f"a script answered {reply!r}: no status its header lists")
    return refusal(reply, now_ms)


async def until_fresh(
    what: str, attempt: Callable[[], Awaitable[T | Stale]], pause_s: float = 0.0
) -> T:
    """Run `attempt` (read, then call a script) until it answers; Stale means its script
    found that what it read changed, so it reads again, after `pause_s`.

    Past STALE_RETRIES tries, 503 E103 naming `what`: running out is contention, not a
    bad request, and the client is told to retry like any other time Redis cannot take
    the request now.
    """
    for tries in range(1, STALE_RETRIES + 1):
        found = await attempt()
        if not isinstance(found, Stale):
            return found
        if pause_s and tries < STALE_RETRIES:
            await asyncio.sleep(pause_s)
    raise StoreUnavailable(f"{what} kept changing during the request; retry", retry_after_s=1)
