"""slotlock: a Redis-backed slot-hold service."""
