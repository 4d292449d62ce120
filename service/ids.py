"""Object ids: UUID v4 strings whose first group is the object's home tag.

Every resource owns one Redis hash tag, the first 8 hex digits of its id. Its
slots and bookings are given ids that start with the same 8 digits, so any id
alone names the shard that holds the object and all it is consistent with: a
slot, its lock, its resource's counters and its bookings meet in one Lua script
on Redis Cluster, and `GET /bookings/:id` needs no lookup table.
"""

from __future__ import annotations

import re
import secrets

_UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TAG_LENGTH = 8


def canonical_id(text: str) -> str | None:
    """The id in canonical (lower-case) form, or None when it is not one of ours."""
    lowered = text.lower()
    return lowered if _UUID_PATTERN.match(lowered) else None


def home_tag(object_id: str) -> str:
    """The hash tag shared by a resource and everything it owns."""
    return object_id[:TAG_LENGTH]


def same_shard(first_id: str, second_id: str) -> bool:
    """Whether two objects share a home tag, so that one script can touch both."""
    return home_tag(first_id) == home_tag(second_id)


def new_resource_id() -> str:
    """A fresh random UUID v4; its first group becomes a new home tag."""
    return _uuid4_with_prefix(secrets.token_hex(4))


def new_child_id(parent_id: str) -> str:
    """A fresh UUID v4 that lives in the same home tag as `parent_id`."""
    return _uuid4_with_prefix(home_tag(parent_id))


def _uuid4_with_prefix(prefix: str) -> str:
    rest = secrets.token_hex(12)  # 96 random bits, 90 of them survive the version bits
    variant = "89ab"[int(rest[7], 16) % 4]
    return f"{prefix}-{rest[0:4]}-4{rest[4:7]}-{variant}{rest[8:11]}-{rest[12:24]}"
