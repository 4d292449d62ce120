"""Invariants checked from the client's observations alone, with no false alarms.

Each check uses only what the client knows for certain (see observations.py),
so a reported violation is a real one; the price is that a violation shorter
than a network round trip can slip through.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TypeVar

import msgspec

from service.loadtest.observations import BookingAck, Hold

CLOCK_MARGIN_S = 1.0  # lock_until is the service's clock: allow for skew and ms rounding
SHOWN_VIOLATIONS = 10

T = TypeVar("T", Hold, BookingAck)


class InvariantResult(msgspec.Struct, kw_only=True):
    """The outcome of one check: how many things it looked at and what broke."""

    name: str
    ok: bool
    checked: int
    violations: list[str]
    violation_count: int = 0


def result(name: str, checked: int, violations: Sequence[str]) -> InvariantResult:
    """A result listing at most SHOWN_VIOLATIONS of the violations found."""
    return InvariantResult(
        name=name,
        ok=not violations,
        checked=checked,
        violations=list(violations[:SHOWN_VIOLATIONS]),
        violation_count=len(violations),
    )


def verdict(results: Iterable[InvariantResult]) -> int:
    """The exit status: 0 when every invariant held, 1 otherwise."""
    return 0 if all(found.ok for found in results) else 1


def by_slot(records: Iterable[T]) -> dict[str, list[T]]:
    """Records grouped by slot id."""
    groups: dict[str, list[T]] = defaultdict(list)
    for record in records:
        groups[record.slot_id].append(record)
    return groups


def exclusive_holds(holds: Sequence[Hold], margin_s: float = CLOCK_MARGIN_S) -> InvariantResult:
    """No two lock_keys ever certainly held the same slot whole at once (partial holds may)."""
    whole = [hold for hold in holds if not hold.quantity]
    violations: list[str] = []
    for slot_id, group in by_slot(whole).items():
        violations += _overlaps(slot_id, sorted(group, key=lambda hold: hold.granted_s), margin_s)
    return result("no two users held one slot's lock at once", len(whole), violations)


def _overlaps(slot_id: str, ordered: list[Hold], margin_s: float) -> list[str]:
    found: list[str] = []
    latest: Hold | None = None  # the hold, among those seen, that certainly lasted longest
    for hold in ordered:
        if latest is not None and latest.holder != hold.holder:
            end_s = latest.certain_end_s(margin_s)
            if hold.granted_s < end_s:
                found.append(
                    f"slot {slot_id}: token {hold.token} was granted while token {latest.token} "
                    f"of another lock_key still held it (for {end_s - hold.granted_s:.3f} s more)"
                )
        if latest is None or hold.certain_end_s(margin_s) > latest.certain_end_s(margin_s):
            latest = hold
    return found


def growing_tokens(holds: Sequence[Hold]) -> InvariantResult:
    """A lock granted after another one was certainly granted carries a larger token."""
    violations: list[str] = []
    for slot_id, group in by_slot(holds).items():
        violations += _token_regressions(slot_id, group)
    return result("fencing tokens grow with every new lock", len(holds), violations)


def _token_regressions(slot_id: str, group: list[Hold]) -> list[str]:
    earlier = sorted(group, key=lambda hold: hold.granted_s)
    found: list[str] = []
    highest: Hold | None = None  # the largest token certainly granted before this request
    seen = 0
    for hold in sorted(group, key=lambda hold: hold.sent_s):
        while seen < len(earlier) and earlier[seen].granted_s < hold.sent_s:
            if highest is None or earlier[seen].token > highest.token:
                highest = earlier[seen]
            seen += 1
        if highest is not None and _regresses(hold, highest):
            found.append(f"slot {slot_id}: token {hold.token} after an earlier {highest.token}")
    return found


def _regresses(hold: Hold, highest: Hold) -> bool:
    # The same key may get the same token again: when its unlock got no answer, the lock
    # may have stayed, and locking again only moved it (API.md: extending keeps the token).
    if hold.token == highest.token and hold.holder == highest.holder:
        return False
    return hold.token <= highest.token


def kept_holds(holds: Sequence[Hold], margin_s: float = CLOCK_MARGIN_S) -> InvariantResult:
    """A holder that lets go before lock_until is never told someone else holds the slot."""
    violations = [
        f"slot {hold.slot_id}: token {hold.token} lost its lock ({hold.lost_code}) "
        f"{hold.until_s - hold.released_s:.1f} s before lock_until"
        for hold in holds
        if hold.lost_code is not None
        and hold.released_s is not None
        and hold.released_s < hold.until_s - margin_s
    ]
    return result("a holder keeps its lock until it lets go", len(holds), violations)


def bookings_within_capacity(bookings: Sequence[BookingAck], capacity: int) -> InvariantResult:
    """At no moment were more of a slot's acknowledged bookings certainly active than capacity."""
    violations: list[str] = []
    for slot_id, group in by_slot(bookings).items():
        peak = _peak_active(group)
        if peak > capacity:
            violations.append(
                f"slot {slot_id}: {peak} bookings active at once, capacity {capacity}"
            )
    return result("acknowledged bookings never exceed capacity", len(bookings), violations)


def _peak_active(group: list[BookingAck]) -> int:
    # At equal times an end (-1) sorts before a start (+1): touching intervals do not overlap.
    events = [(booking.acked_s, 1) for booking in group] + [
        (booking.cancel_sent_s, -1) for booking in group if booking.cancel_sent_s is not None
    ]
    active = peak = 0
    for _, change in sorted(events):
        active += change
        peak = max(peak, active)
    return peak


def places_within_capacity(
    holds: Sequence[Hold],
    bookings: Sequence[BookingAck],
    capacity: int,
    margin_s: float = CLOCK_MARGIN_S,
) -> InvariantResult:
    """At no moment were a slot's certain bookings plus certainly held places above capacity.

    A partial hold counts all its places from its 200 until its holder's first change
    was sent (or lock_until, less the margin); a booking from its 201 until its cancel
    was sent. A booking made from a hold starts after the hold stopped counting, so no
    place is counted twice.
    """
    partial = [hold for hold in holds if hold.quantity]
    spans: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for hold in partial:
        spans[hold.slot_id].append((hold.granted_s, hold.certain_end_s(margin_s), hold.quantity))
    for booking in bookings:
        end_s = math.inf if booking.cancel_sent_s is None else booking.cancel_sent_s
        spans[booking.slot_id].append((booking.acked_s, end_s, 1))
    violations = [
        f"slot {slot_id}: {peak} places booked or held at once, capacity {capacity}"
        for slot_id, group in spans.items()
        if (peak := _peak_places(group)) > capacity
    ]
    checked = len(partial) + len(bookings)
    return result("bookings plus held places never exceed capacity", checked, violations)


def _peak_places(spans: list[tuple[float, float, int]]) -> int:
    # At equal times an end sorts before a start: touching intervals do not overlap.
    events = [(start, places) for start, end, places in spans if end > start]
    events += [(end, -places) for start, end, places in spans if end > start]
    taken = peak = 0
    for _, change in sorted(events):
        taken += change
        peak = max(peak, taken)
    return peak
