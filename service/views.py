"""Records as clients see them: derived fields (`available`, dates) and payload building."""

from __future__ import annotations

from typing import Any

import msgspec

from service.clock import format_instant, format_local_instant
from service.payloads import BookingOut, ResourceOut, SlotOut
from service.records import BookingRecord, ResourceRecord, SlotRecord

_metadata_decoder = msgspec.json.Decoder(dict[str, Any])
# The hash's values are all strings: strict=False reads "1764..." as an int, "1" as True.
_slot_json_decoder = msgspec.json.Decoder(SlotRecord, strict=False)


class SlotView(msgspec.Struct, frozen=True):
    """A slot with what its availability and dates depend on: its lock, holds and resource.

    (A Struct, not a frozen dataclass: one is built per lock and unlock, and a frozen
    dataclass sets each field through object.__setattr__.)
    """

    record: SlotRecord
    locked_until_ms: int
    resource_published: bool
    booking_disabled_before_s: int
    timezone: str  # the resource's, read with it: a slot's dates are shown in it
    held_places: int = 0  # places held by partial holds running when the view was read

    @classmethod
    def from_script(cls, view: list[Any]) -> SlotView:
        """Read the reply of lua/lib/slot_view.lua."""
        slot_json, locked_until_ms, resource_status, disabled_before_s, timezone, held = view
        return cls(
            _slot_json_decoder.decode(slot_json),
            int(locked_until_ms),
            resource_status == "published",
            int(disabled_before_s),
            timezone,
            int(held),
        )

    def locked(self, now_ms: int) -> bool:
        """Whether a lock holds the slot at `now_ms`."""
        return self.locked_until_ms > now_ms

    def booking_open(self, now_ms: int) -> bool:
        """Whether the resource's booking window is still open for this slot."""
        return now_ms < self.record.start_ms - self.booking_disabled_before_s * 1000

    def free_places(self, now_ms: int) -> int:
        """Places neither booked nor held; 0 while a whole-slot lock is on (lua/lib/places.lua)."""
        return self._free_places(self.locked(now_ms))

    def available(self, now_ms: int) -> bool:
        """API.md's `available`: active, published, unlocked, open and with a free place."""
        return self._available(now_ms, self.free_places(now_ms))

    def _free_places(self, locked: bool) -> int:
        if locked:
            return 0
        slot = self.record
        return max(0, slot.capacity - slot.num_active_bookings - self.held_places)

    def _available(self, now_ms: int, free_places: int) -> bool:
        return (
            free_places > 0
            and self.record.status == "active"
            and self.resource_published
            and self.booking_open(now_ms)
        )

    def to_payload(self, now_ms: int) -> SlotOut:
        """The public JSON shape."""
        slot = self.record
        locked = self.locked(now_ms)
        free_places = self._free_places(locked)
        shown = SlotOut(
            id=slot.id,
            resource_id=slot.resource_id,
            start_date=format_local_instant(slot.start_ms, self.timezone),
            end_date=format_local_instant(slot.end_ms, self.timezone),
            capacity=slot.capacity,
            status="disabled" if slot.status == "disabled" else "active",
            lockable=slot.lockable,
            locked_until=format_instant(self.locked_until_ms) if locked else None,
            available=self._available(now_ms, free_places),
            num_bookings=slot.num_bookings,
            num_active_bookings=slot.num_active_bookings,
            num_cancelled_bookings=slot.num_cancelled_bookings,
            metadata=_metadata_decoder.decode(slot.metadata),
            created_at=format_instant(slot.created_ms),
            updated_at=format_instant(slot.updated_ms),
        )
        # Set apart from the 15 keywords above: see SlotOut (16 keywords cost 4x as much).
        shown.num_held_places = self.held_places
        shown.num_free_places = free_places
        return shown


def held_places(running_holds: list[str]) -> int:
    """Places held by a slot's running holds ("<holder>:<places>:<token>", lua/lib/places.lua)."""
    return sum(int(hold.split(":")[1]) for hold in running_holds)


def booking_payload(booking: BookingRecord) -> BookingOut:
    """The public JSON shape of a booking."""
    return BookingOut(
        id=booking.id,
        slot_id=booking.slot_id,
        resource_id=booking.resource_id,
        status="cancelled" if booking.status == "cancelled" else "active",
        metadata=_metadata_decoder.decode(booking.metadata),
        created_at=format_instant(booking.created_ms),
        updated_at=format_instant(booking.updated_ms),
    )


def resource_payload(resource: ResourceRecord, num_available_slots: int) -> ResourceOut:
    """The public JSON shape of a resource."""
    return ResourceOut(
        id=resource.id,
        name=resource.name,
        status="published" if resource.status == "published" else "draft",
        timezone=resource.timezone,
        short_id=resource.short_id,
        booking_disabled_before=resource.booking_disabled_before,
        public_scheduling_enabled=resource.public_scheduling_enabled,
        num_slots=resource.num_slots,
        num_available_slots=num_available_slots,
        num_bookings=resource.num_bookings,
        num_active_bookings=resource.num_active_bookings,
        num_cancelled_bookings=resource.num_cancelled_bookings,
        metadata=_metadata_decoder.decode(resource.metadata),
        created_at=format_instant(resource.created_ms),
        updated_at=format_instant(resource.updated_ms),
    )
