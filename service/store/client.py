"""The Redis client type the stores accept, and reading slots in bulk."""

from __future__ import annotations

from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from service import keyspace
from service.records import SlotRecord, from_hash
from service.views import SlotView, held_places

RedisClient: TypeAlias = "Redis | RedisCluster"


async def members(redis: RedisClient, key: str) -> list[str]:
    """Every member of a sorted set, lowest score first."""
    found: list[str] = await redis.zrange(key, 0, -1)  # type: ignore[assignment]
    return found


async def members_by_score(
    redis: RedisClient, key: str, low: str | int, high: str | int
) -> list[str]:
    """Members of a sorted set with low <= score <= high (prefix "(" to exclude a bound)."""
    found: list[str] = await redis.zrangebyscore(key, low, high)  # type: ignore[assignment]
    return found


async def read_slot_views(redis: RedisClient, slot_ids: list[str], now_ms: int) -> list[SlotView]:
    """Views of many slots in one pipelined round trip; vanished slots are left out.

    Holds count as running at `now_ms`.

    A list is a snapshot, not a transaction: each slot is read whole, but two
    slots may be read a moment apart, which no invariant depends on.
    """
    if not slot_ids:
        return []
    pipe = redis.pipeline(transaction=False)
    for slot_id in slot_ids:
        pipe.hgetall(keyspace.slot(slot_id))
        pipe.pexpiretime(keyspace.lock(slot_id))
        pipe.hmget(keyspace.resource(slot_id), ["status", "booking_disabled_before", "timezone"])
        pipe.zrangebyscore(keyspace.held(slot_id), f"({now_ms}", "+inf")
    replies: list[Any] = await pipe.execute()
    views = []
    for at in range(0, len(replies), 4):
        slot_hash, locked_until_ms, resource_fields, holds = replies[at : at + 4]
        status, disabled_before_s, timezone = resource_fields
        if slot_hash:
            views.append(
                SlotView(
                    from_hash(slot_hash, SlotRecord),
                    max(0, int(locked_until_ms)),
                    status == "published",
                    int(disabled_before_s or 0),
                    timezone or "UTC",
                    held_places(holds),
                )
            )
    return views
