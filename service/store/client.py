"""The Redis client type the stores accept, and reading a sorted set whole."""

from __future__ import annotations

from typing import TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

RedisClient: TypeAlias = "Redis | RedisCluster"


async def members(redis: RedisClient, key: str) -> list[str]:
    """Every member of a sorted set, lowest score first."""
    found: list[str] = await redis.zrange(key, 0, -1)  # type: ignore[assignment]
    return found
