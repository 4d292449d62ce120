"""API keys in Redis, known only by their SHA-256: create, look up, list, revoke."""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

import msgspec

from service import keyspace
from service.clock import Clock
from service.records import from_hash, to_hash
from service.store.client import RedisClient, members

Scope = Literal["public", "secret"]
KEY_PREFIX: dict[Scope, str] = {"public": "pk_", "secret": "sk_"}


class KeyRecord(msgspec.Struct, kw_only=True):
    """A stored API key: its hash, never the key itself."""

    key_hash: str
    environment: str
    scope: str
    pair_id: str
    created_ms: int
    revoked: bool = False
    expires_ms: int = 0  # 0: never; set when a rotation retires the key


class KeyPair(msgspec.Struct):
    """What `slotlock keys create` prints; the only time the keys are seen."""

    environment: str
    public_key: str
    secret_key: str


def hash_key(key: str) -> str:
    """The SHA-256 hex under which a key is stored and cached."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_pair(environment: str) -> KeyPair:
    """A fresh random pair; nothing stored yet."""
    return KeyPair(environment, "pk_" + secrets.token_hex(32), "sk_" + secrets.token_hex(32))


def scope_of(key: str) -> Scope | None:
    """`public` for pk_..., `secret` for sk_..., None for anything else."""
    for scope, prefix in KEY_PREFIX.items():
        if key.startswith(prefix) and len(key) == len(prefix) + 64:
            return scope
    return None


class KeyStore:
    """The only code that reads or writes API keys."""

    def __init__(self, redis: RedisClient, clock: Clock) -> None:
        self._redis = redis
        self._clock = clock

    async def create_pair(self, environment: str) -> KeyPair:
        """Issue a new public/secret pair for `environment`."""
        pair = new_pair(environment)
        await self.import_pair(pair)
        return pair

    async def import_pair(self, pair: KeyPair) -> None:
        """Store a pair made elsewhere (e.g. a mounted Secret); storing it again is harmless."""
        pair_id = hash_key(pair.public_key + pair.secret_key)[:16]
        now_ms = self._clock()
        pipe = self._redis.pipeline(transaction=False)
        for key, scope in ((pair.public_key, "public"), (pair.secret_key, "secret")):
            record = KeyRecord(
                key_hash=hash_key(key),
                environment=pair.environment,
                scope=scope,
                pair_id=pair_id,
                created_ms=now_ms,
            )
            key_name = keyspace.api_key(record.key_hash)
            pipe.hset(key_name, items=_fields_if_new(record))
            pipe.hsetnx(key_name, "created_ms", str(now_ms))  # the first import's time stays
            pipe.zadd(keyspace.api_keys_index(), {record.key_hash: now_ms}, nx=True)
        await pipe.execute()

    async def lookup(self, key_hash: str) -> KeyRecord | None:
        """The key's record, or None when no such key was ever stored."""
        fields = await self._redis.hgetall(keyspace.api_key(key_hash))
        return from_hash(fields, KeyRecord) if fields else None

    async def all(self) -> list[KeyRecord]:
        """Every stored key, oldest first."""
        hashes = await members(self._redis, keyspace.api_keys_index())
        pipe = self._redis.pipeline(transaction=False)
        for key_hash in hashes:
            pipe.hgetall(keyspace.api_key(key_hash))
        return [from_hash(fields, KeyRecord) for fields in await pipe.execute() if fields]

    async def find(self, key_or_id: str) -> list[KeyRecord]:
        """Keys named by a full key, a key id (hash prefix) or a pair id, as `keys list` shows."""
        wanted = hash_key(key_or_id) if scope_of(key_or_id) else key_or_id
        if len(wanted) < 16:
            return []
        return [
            record
            for record in await self.all()
            if record.key_hash.startswith(wanted) or record.pair_id == wanted
        ]

    async def retire(self, records: list[KeyRecord], *, after_ms: int = 0) -> None:
        """Revoke keys now (after_ms=0) or let them expire `after_ms` from now."""
        pipe = self._redis.pipeline(transaction=False)
        for record in records:
            key = keyspace.api_key(record.key_hash)
            if after_ms:
                pipe.hset(key, "expires_ms", str(self._clock() + after_ms))
            else:
                pipe.hset(key, "revoked", "1")
        await pipe.execute()


def _fields_if_new(record: KeyRecord) -> list[str]:
    # Importing the same pair at every start-up must not un-revoke it, nor make it look
    # new: only the identifying fields are (re)written; the others keep their state.
    fields = to_hash(record)
    del fields["revoked"], fields["expires_ms"], fields["created_ms"]
    return [text for pair in fields.items() for text in pair]
