"""What lives in Redis hashes: msgspec Structs and their hash encoding.

These are the stored schema, which changes under other rules than the public
JSON (payloads.py): a new field always gets a default so that hashes written by
an older version still read. Booleans are stored as "1"/"0", metadata as JSON
text, instants as integer milliseconds since the epoch (UTC).
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

R = TypeVar("R", bound=msgspec.Struct)


class ResourceRecord(msgspec.Struct, kw_only=True):
    """A bookable resource and the counters its scripts keep."""

    id: str
    environment: str
    name: str
    short_id: str
    status: str = "draft"
    timezone: str = "UTC"
    booking_disabled_before: int = 0
    public_scheduling_enabled: bool = False
    metadata: str = "{}"
    created_ms: int
    updated_ms: int
    num_slots: int = 0
    num_bookings: int = 0
    num_active_bookings: int = 0
    num_cancelled_bookings: int = 0
    revision: int = (
        0  # changes counted by update_resource; the environment's index keeps the latest
    )


class SlotRecord(msgspec.Struct, kw_only=True):
    """A time slot; its lock lives in a key of its own so that Redis can expire it."""

    id: str
    environment: str
    resource_id: str
    start_ms: int
    end_ms: int
    capacity: int
    status: str = "active"
    lockable: bool = True
    metadata: str = "{}"
    created_ms: int
    updated_ms: int
    num_bookings: int = 0
    num_active_bookings: int = 0
    num_cancelled_bookings: int = 0
    lock_seq: int = 0


class BookingRecord(msgspec.Struct, kw_only=True):
    """A booking of one place in a slot; stored in its slot's home tag.

    When a booking moves to a slot of another resource, the record it leaves
    behind keeps only a forwarding address (`moved_to_slot`), so the booking
    can still be found from its id: see the README's reschedule saga.
    """

    id: str
    environment: str
    slot_id: str
    resource_id: str
    status: str = "active"
    metadata: str = "{}"
    created_ms: int
    updated_ms: int
    moved_to_slot: str = ""
    pending_intent: str = ""  # set while a move to this record's slot is under way
    pending_from_slot: str = ""  # where the booking lives until that move releases it


def to_hash(record: msgspec.Struct) -> dict[str, str]:
    """Every field as a string, ready for HSET (all fields, never a partial write)."""
    return {name: _to_text(value) for name, value in msgspec.structs.asdict(record).items()}


def to_flat(record: msgspec.Struct) -> list[str]:
    """The hash as a flat field/value list, the form Lua scripts take in ARGV."""
    flat: list[str] = []
    for name, value in to_hash(record).items():
        flat += [name, value]
    return flat


def from_hash(fields: dict[Any, Any], record_type: type[R]) -> R:
    """Read a hash (as a client with decode_responses=True returns it) into its record."""
    return msgspec.convert(fields, record_type, strict=False)


def from_flat(flat: list[str], record_type: type[R]) -> R:
    """Read HGETALL's flat reply, as returned from a Lua script, into its record."""
    return msgspec.convert(dict(zip(flat[::2], flat[1::2], strict=True)), record_type, strict=False)


def _to_text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)
