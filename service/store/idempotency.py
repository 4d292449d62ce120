"""The answers kept under Idempotency-Keys: one JSON string per key, kept 24 h.

A record is claimed with SET NX before its request runs (status 0), then holds
the first answer; service/idempotency.py decides what to keep and when.
"""

from __future__ import annotations

import msgspec

from service import keyspace
from service.store.client import RedisClient

KEEP_MS = 24 * 3600 * 1000


class KeptAnswer(msgspec.Struct):
    """What Redis keeps under one Idempotency-Key."""

    fingerprint: str  # of the request's method, path and body
    started_ms: int
    status: int = 0  # 0 while the first request runs
    headers: list[tuple[str, str]] = []
    body: str = ""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(KeptAnswer)


class IdempotencyRecords:
    """SET NX, GET, SET and DEL of the records, by `keyspace.idempotency` key."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis

    @staticmethod
    def key(caller_hash: str, key_hash: str) -> str:
        """The record's Redis key, for a caller (its Authorization) and Idempotency-Key."""
        return keyspace.idempotency(caller_hash, key_hash)

    async def claim(self, record_key: str, claim: KeptAnswer) -> bool:
        """Write `claim` unless a record is there already; whether it was written."""
        return bool(await self._redis.set(record_key, _encoder.encode(claim), px=KEEP_MS, nx=True))

    async def read(self, record_key: str) -> KeptAnswer | None:
        """The record, or None when there is none."""
        raw = await self._redis.get(record_key)
        return None if raw is None else _decoder.decode(raw)

    async def write(self, record_key: str, answer: KeptAnswer) -> None:
        """Write the record whatever was there (a takeover, or the first answer)."""
        await self._redis.set(record_key, _encoder.encode(answer), px=KEEP_MS)

    async def release(self, record_key: str) -> None:
        """Let go of the key: the next request with it runs."""
        await self._redis.delete(record_key)
