"""Every Redis key name, built here and nowhere else.

Keys of one resource share the hash tag `{<home tag>}` (see ids.py), so every
script that changes a slot, its lock, its bookings and its resource's counters
touches one Cluster slot. The few keys that span resources (the environment's
resource index, API keys, idempotency records) carry tags of their own and are
never written in the same script as a resource's keys.

    sl:{T}:resource              hash    the resource whose id starts with T
    sl:{T}:slots                 zset    its slot ids, scored by start (ms)
    sl:{T}:slot-ends             zset    its slot ids, scored by end (ms), for overlap checks
    sl:{T}:bookings              zset    its booking ids, scored by creation (ms)
    sl:{T}:slot:<slot id>        hash    a slot
    sl:{T}:lock:<slot id>        string  "<lock key hash>:<token>", expires at lock_until (PXAT)
    sl:{T}:slot-bookings:<id>    zset    a slot's booking ids, scored by creation (ms)
    sl:{T}:booking:<booking id>  hash    a booking
    sl:{env:<name>}:resources    zset    an environment's resource ids, by creation (ms)
    sl:{keys}:key:<sha256>       hash    an API key, known only by its hash
    sl:{keys}:all                zset    every API key hash, by creation (ms)
"""

from __future__ import annotations

from service.ids import home_tag

PREFIX = "sl"


def _tagged(object_id: str) -> str:
    return f"{PREFIX}:{{{home_tag(object_id)}}}"


def resource(object_id: str) -> str:
    """The resource hash that owns `object_id` (a resource, slot or booking id)."""
    return f"{_tagged(object_id)}:resource"


def resource_slots(object_id: str) -> str:
    """Slot ids of the resource that owns `object_id`, scored by start_ms."""
    return f"{_tagged(object_id)}:slots"


def resource_slot_ends(object_id: str) -> str:
    """Slot ids of the resource that owns `object_id`, scored by end_ms."""
    return f"{_tagged(object_id)}:slot-ends"


def resource_bookings(object_id: str) -> str:
    """Booking ids of the resource that owns `object_id`, scored by created_ms."""
    return f"{_tagged(object_id)}:bookings"


def slot(slot_id: str) -> str:
    """The slot hash."""
    return f"{_tagged(slot_id)}:slot:{slot_id}"


def lock(slot_id: str) -> str:
    """The slot's lock string; Redis expires it at lock_until."""
    return f"{_tagged(slot_id)}:lock:{slot_id}"


def slot_bookings(slot_id: str) -> str:
    """Booking ids of one slot, scored by created_ms."""
    return f"{_tagged(slot_id)}:slot-bookings:{slot_id}"


def booking(booking_id: str) -> str:
    """The booking hash."""
    return f"{_tagged(booking_id)}:booking:{booking_id}"


def environment_resources(environment: str) -> str:
    """Resource ids of one environment, scored by created_ms."""
    return f"{PREFIX}:{{env:{environment}}}:resources"


def api_key(key_hash: str) -> str:
    """An API key's record, addressed by the key's SHA-256."""
    return f"{PREFIX}:{{keys}}:key:{key_hash}"


def api_keys_index() -> str:
    """All API key hashes, scored by created_ms."""
    return f"{PREFIX}:{{keys}}:all"
