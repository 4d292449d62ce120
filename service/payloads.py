"""Request and response Structs: the public JSON contract of API.md.

Request bodies forbid unknown fields (a typo is a 400, never silently ignored).
Fields that are checked beyond their JSON type (timestamps, capacity, metadata)
arrive as raw JSON values and are validated by service.validation, so that each
mistake gets the error code API.md gives it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType, field

Name = Annotated[str, Meta(min_length=1, max_length=255)]
LockKey = Annotated[
    str, Meta(min_length=1, max_length=255, description="1 to 255 printable characters")
]
Instant = Annotated[str, Meta(description="ISO 8601 timestamp; any offset, none means UTC")]
Capacity = Annotated[Any, Meta(description="a positive integer (else 400 E047)")]
Metadata = Annotated[
    dict[str, Any],
    Meta(description="flat object; keys up to 100 characters, values up to 5000 as JSON (E042)"),
]
# Below 0 is 422 E058 (service.validation), as API.md gives it, not a type error.
Seconds = Annotated[
    int, Meta(le=10 * 365 * 24 * 3600, description="0 to 10 years; below 0 is 422 E058")
]


class Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body."""


class ResourceCreate(Request):
    name: Name
    timezone: str = "UTC"
    booking_disabled_before: Seconds = 0
    public_scheduling_enabled: bool = False
    metadata: Metadata = {}


class ResourceUpdate(Request):
    name: Name | UnsetType = UNSET
    timezone: str | UnsetType = UNSET
    booking_disabled_before: Seconds | UnsetType = UNSET
    public_scheduling_enabled: bool | UnsetType = UNSET
    metadata: Metadata | UnsetType = UNSET


class SlotSpec(Request):
    """One slot in a bulk create."""

    start_date: Instant
    end_date: Instant
    capacity: Capacity
    lockable: bool = True
    metadata: Metadata = {}


class SlotCreate(SlotSpec, kw_only=True):
    resource_id: str


class SlotBulkCreate(Request):
    resource_id: str
    slots: Annotated[list[SlotSpec], Meta(min_length=1, max_length=500)]


class SlotUpdate(Request):
    start_date: Instant | UnsetType = UNSET
    end_date: Instant | UnsetType = UNSET
    capacity: Capacity | UnsetType = UNSET
    lockable: bool | UnsetType = UNSET
    metadata: Metadata | UnsetType = UNSET


Quantity = Annotated[int, Meta(ge=1, description="places to hold (a partial hold)")]


class LockRequest(Request):
    lock_key: LockKey
    lock_until: Instant
    quantity: Quantity | UnsetType = UNSET  # absent: a whole-slot lock


class UnlockRequest(Request):
    lock_key: LockKey


class BookingCreate(Request):
    slot_id: str
    lock_key: LockKey | None = None
    metadata: Metadata = {}


class BookingUpdate(Request):
    """Body of PATCH /bookings/:id (optional): without `metadata`, nothing changes."""

    metadata: Metadata | UnsetType = UNSET


class BookingStatusChange(Request):
    """Body of enable (optional): the lock_key of a lock the caller holds on the slot."""

    lock_key: LockKey | None = None


class BookingReschedule(Request):
    target_slot_id: str
    lock_key: LockKey | None = None


class ResourceOut(msgspec.Struct, kw_only=True):
    object: Literal["resource"] = field(default="resource", name="_object")
    id: str
    name: str
    status: Literal["draft", "published"]
    timezone: str
    short_id: str
    booking_disabled_before: int
    public_scheduling_enabled: bool
    num_slots: int
    num_available_slots: int
    num_bookings: int
    num_active_bookings: int
    num_cancelled_bookings: int
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


class SlotOut(msgspec.Struct, kw_only=True):
    object: Literal["slot"] = field(default="slot", name="_object")
    id: str
    resource_id: str
    start_date: str
    end_date: str
    capacity: int
    status: Literal["active", "disabled"]
    lockable: bool
    locked_until: str | None
    available: bool
    num_bookings: int
    num_active_bookings: int
    num_cancelled_bookings: int
    # Defaults only so that a view may set them after construction: a msgspec Struct
    # built with 16 or more keyword arguments takes some 4x longer (0.7 us against 0.2).
    num_held_places: int = 0
    num_free_places: int = 0
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


class BookingOut(msgspec.Struct, kw_only=True):
    object: Literal["booking"] = field(default="booking", name="_object")
    id: str
    slot_id: str
    resource_id: str
    status: Literal["active", "cancelled"]
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


class Deleted(msgspec.Struct):
    """The `data` of every DELETE: an empty object, as Overbooked answers."""


DELETED = Deleted()


class ErrorBody(msgspec.Struct):
    code: str
    message: str
    status: int


class ErrorEnvelope(msgspec.Struct):
    error: ErrorBody
    success: Literal[False] = False


class ListMeta(msgspec.Struct):
    limit: int
    page: int
    total: int
    # GET /slots?resource_id=: the resource's event stream position when the list was read.
    event_id: str | UnsetType = UNSET


class LockMeta(msgspec.Struct):
    lock_token: int
