"""Every Redis key name, built here and nowhere else.

Keys of one resource share the hash tag `{<home tag>}` (see ids.py), so every
script that changes a slot, its lock, its bookings and its resource's counters
touches one Cluster slot. The few keys that span resources (the environment's
resource index, API keys, idempotency records) carry tags of their own and are
never written in the same script as a resource's keys.

    sl:{T}:resource              hash    the resource whose id starts with T
    sl:{T}:slots                 zset    its slot ids by start (ms): open and shut bands
    sl:{T}:bookings              zset    its booking ids by creation (ms): active, cancelled bands
    sl:{T}:slot:<slot id>        hash    a slot
    sl:{T}:lock:<slot id>        string  "<lock key hash>:<token>", expires at lock_until (PXAT)
    sl:{T}:holds:<lock key hash> zset    slots one lock_key locks or holds places on, by until (ms)
    sl:{T}:held:<slot id>        zset    a slot's partial holds "<lock key hash>:<places>:<token>",
                                         scored by until (ms)
    sl:{T}:slot-bookings:<id>    zset    a slot's booking ids by creation (ms): the same bands
    sl:{T}:booking:<booking id>  hash    a booking, or the forwarding address of one that moved
    sl:{T}:receipt:<hash>        string  the booking an Idempotency-Key made (24 h)
    sl:{T}:events                stream  every change to the resource's slots (lua/lib/events.lua)
    sl:{T}:lock-ends             zset    slot ids with a lock or holds, by next end (ms): the
                                         expiry sweep's work, and what lists check for `available`
    sl:{idem:<h>}:<scope>:<key>  string  an Idempotency-Key's first response (24 h)
    sl:{reschedules}:intents     zset    cross-resource reschedules under way, by deadline (ms)
    sl:{rl:<h>}:<key>:<p>:<n>    string  requests of one API key in rate window n of p seconds
    sl:{env:<name>}:resources    zset    an environment's resource ids by creation (ms): draft and
                                         published bands
    sl:{env:<name>}:resources:name:<h>   zset    the same, of one name (h: its SHA-256)
    sl:{env:<name>}:resource-index       hash    resource id -> what the two above show of it
    sl:{env:<name>}:resource-changes     zset    resources being changed, by when (ms)
    sl:{migrations}:<name>       string  the version a start-up migration has reached
    sl:{keys}:key:<sha256>       hash    an API key, known only by its hash
    sl:{keys}:all                zset    every API key hash, by creation (ms)
"""

from __future__ import annotations

from typing import NamedTuple

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


def resource_bookings(object_id: str) -> str:
    """Booking ids of the resource that owns `object_id`, scored by created_ms."""
    return f"{_tagged(object_id)}:bookings"


def slot_prefix(object_id: str) -> str:
    """What a slot id follows in its hash's name, in the tag of `object_id`'s resource.

    List scripts get it in KEYS (it hashes to the resource's Cluster slot) and read the
    page's slots as prefix + id: which slots, only the index inside the script knows.
    """
    return f"{_tagged(object_id)}:slot:"


def held_prefix(object_id: str) -> str:
    """What a slot id follows in its partial holds' name (see slot_prefix)."""
    return f"{_tagged(object_id)}:held:"


def lock_prefix(object_id: str) -> str:
    """What a slot id follows in its lock's name (see slot_prefix)."""
    return f"{_tagged(object_id)}:lock:"


def slot_bookings_prefix(object_id: str) -> str:
    """What a slot id follows in its booking index's name (see slot_prefix)."""
    return f"{_tagged(object_id)}:slot-bookings:"


def booking_prefix(object_id: str) -> str:
    """What a booking id follows in its hash's name, in `object_id`'s tag (see slot_prefix)."""
    return f"{_tagged(object_id)}:booking:"


def slot(slot_id: str) -> str:
    """The slot hash."""
    return f"{_tagged(slot_id)}:slot:{slot_id}"


def lock(slot_id: str) -> str:
    """The slot's lock string; Redis expires it at lock_until."""
    return f"{_tagged(slot_id)}:lock:{slot_id}"


def holds(object_id: str, holder: str) -> str:
    """Slots of `object_id`'s resource held by one lock_key (its hash), scored by until_ms."""
    return f"{_tagged(object_id)}:holds:{holder or 'nobody'}"


def held(slot_id: str) -> str:
    """A slot's partial holds, "<lock key hash>:<places>:<token>" scored by until_ms."""
    return f"{_tagged(slot_id)}:held:{slot_id}"


def events(object_id: str) -> str:
    """The change stream of the resource that owns `object_id` (GET /resources/:id/events)."""
    return f"{_tagged(object_id)}:events"


def lock_ends(object_id: str) -> str:
    """Locked slot ids of `object_id`'s resource by lock end (ms), for their slot.unlocked."""
    return f"{_tagged(object_id)}:lock-ends"


class SlotKeys(NamedTuple):
    """The keys a read, lock or unlock of one slot touches: the functions above, each."""

    slot: str
    lock: str
    resource: str
    holds: str
    held: str
    lock_ends: str
    events: str


def slot_keys(slot_id: str, holder: str = "") -> SlotKeys:
    """All of one slot's keys at once (`holds` of `holder`), its tag worked out once.

    Lock and unlock name seven keys per request: one by one, that was 21 Python calls
    and about 1.1 us; together 0.3 us. tests/test_keyspace.py holds each to its function.
    """
    tagged = _tagged(slot_id)
    return SlotKeys(
        slot=f"{tagged}:slot:{slot_id}",
        lock=f"{tagged}:lock:{slot_id}",
        resource=f"{tagged}:resource",
        holds=f"{tagged}:holds:{holder or 'nobody'}",
        held=f"{tagged}:held:{slot_id}",
        lock_ends=f"{tagged}:lock-ends",
        events=f"{tagged}:events",
    )


def slot_bookings(slot_id: str) -> str:
    """Booking ids of one slot, scored by created_ms."""
    return f"{_tagged(slot_id)}:slot-bookings:{slot_id}"


def booking(booking_id: str, owner_id: str | None = None) -> str:
    """The booking hash, in the home tag of `owner_id` (its slot or resource) or of its own id."""
    return f"{_tagged(owner_id or booking_id)}:booking:{booking_id}"


def receipt(slot_id: str, idempotency_hash: str) -> str:
    """Which booking an Idempotency-Key made on this slot; beside it, so one script sees both."""
    return f"{_tagged(slot_id)}:receipt:{idempotency_hash}"


def idempotency(scope_hash: str, key_hash: str) -> str:
    """The first response to an Idempotency-Key of one API key; spread over shards by hash."""
    return f"{PREFIX}:{{idem:{key_hash[:4]}}}:{scope_hash}:{key_hash}"


def rate_counter(key_hash: str, period_s: int, window_index: int) -> str:
    """Requests one API key made in one rate-limit window, summed over all pods."""
    return f"{PREFIX}:{{rl:{key_hash[:4]}}}:{key_hash}:{period_s}:{window_index}"


def reschedule_intents() -> str:
    """Cross-resource reschedules under way; the healer finishes or undoes stale ones."""
    return f"{PREFIX}:{{reschedules}}:intents"


def environment_resources(environment: str) -> str:
    """Resource ids of one environment, scored by created_ms."""
    return f"{PREFIX}:{{env:{environment}}}:resources"


def environment_resource_names(environment: str) -> str:
    """What a name's hash follows in the name of its resource index (see slot_prefix)."""
    return f"{PREFIX}:{{env:{environment}}}:resources:name:"


def environment_resource_index(environment: str) -> str:
    """Resource id -> the revision, status and name hash that its index entries show."""
    return f"{PREFIX}:{{env:{environment}}}:resource-index"


def environment_resource_changes(environment: str) -> str:
    """Resources whose record and index entries are being changed, by the change's start."""
    return f"{PREFIX}:{{env:{environment}}}:resource-changes"


def migration(name: str) -> str:
    """The version a start-up migration has reached, once it finished."""
    return f"{PREFIX}:{{migrations}}:{name}"


def api_key(key_hash: str) -> str:
    """An API key's record, addressed by the key's SHA-256."""
    return f"{PREFIX}:{{keys}}:key:{key_hash}"


def api_keys_index() -> str:
    """All API key hashes, scored by created_ms."""
    return f"{PREFIX}:{{keys}}:all"
