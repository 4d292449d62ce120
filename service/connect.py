"""Building the Redis client from REDIS_URL.

Forms: redis://, rediss:// (TLS), unix:// for one server, and memory:// for an
in-process fakeredis (one worker, data lost at exit; for trying the service).
Every form gets the same timeouts and no automatic retries: a retried script
call after a broken connection could apply a change twice, so the client is
told 503 instead and retries with its Idempotency-Key.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.settings import Settings
from service.store.client import RedisClient

MEMORY_URL = "memory://"


def redis_from_settings(settings: Settings) -> RedisClient:
    """A client for settings.redis_url (which must be set)."""
    url = settings.redis_url
    if url is None:
        raise ValueError("REDIS_URL is not set")
    if url == MEMORY_URL:
        return _memory_redis()
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


def _memory_redis() -> RedisClient:
    import fakeredis  # imported here: only the in-memory form needs it

    client: RedisClient = fakeredis.FakeAsyncRedis(decode_responses=True)
    return client
