"""What the virtual users saw of locks and bookings, kept for the invariant checks.

Times are this process's `time.monotonic()` seconds. Each record keeps only
what the client knows for certain: a lock exists from the moment its answer
arrived until the moment its release was sent (or lock_until passed); a
booking is active from its answer until its cancellation was sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(slots=True)
class Hold:
    """One lock (or partial hold of `quantity` places) the service granted, as its holder saw it.

    A partial hold certainly held all its places until its holder sent its first
    change (a booking with its key, or the unlock): `released_s`.
    """

    slot_id: str
    holder: str  # the lock_key; stays in this process, reports show only a prefix
    token: int
    sent_s: float  # the lock request left
    granted_s: float  # its 200 arrived: the lock certainly existed from here on
    until_s: float  # lock_until on the monotonic clock
    released_s: float | None = None  # the unlock or booking request left
    lost_code: str | None = None  # the release was refused as if someone else held the slot
    quantity: int = 0  # places of a partial hold; 0 for a whole-slot lock

    def certain_end_s(self, margin_s: float) -> float:
        """Until when the lock certainly existed: its release, or lock_until less a margin."""
        released = math.inf if self.released_s is None else self.released_s
        return min(released, self.until_s - margin_s)


@dataclass(slots=True)
class BookingAck:
    """One booking the service acknowledged (200)."""

    booking_id: str
    slot_id: str
    acked_s: float
    cancel_sent_s: float | None = None
    cancel_acked: bool = False

    @property
    def expected_status(self) -> str | None:
        """The status it must have now: cancelled, active, or either (cancel unanswered)."""
        if self.cancel_acked:
            return "cancelled"
        return "active" if self.cancel_sent_s is None else None


@dataclass(slots=True)
class Observations:
    """Every hold and every acknowledged booking of a run."""

    holds: list[Hold] = field(default_factory=list)
    bookings: list[BookingAck] = field(default_factory=list)
