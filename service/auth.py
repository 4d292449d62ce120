"""Who is calling: Bearer keys checked against their stored hashes, cached per process.

A verified key is cached for `key_cache_s` (at most 5 s), so checking a key
costs no Redis round trip on the hot path, and a revoked key stops working on
every pod within that time. Unknown keys are cached too, so junk keys cannot
turn every request into a Redis lookup. When a key's entry is missing or has
expired, the requests that find it so share one lookup: under load a busy key's
entry expires while dozens of its requests are in flight, and each made its own.
Keys are looked up by their SHA-256, so nothing compares secret bytes, and the
cache holds only hashes.
"""

from __future__ import annotations

import asyncio

import msgspec

from service.clock import Clock
from service.errors import SecretKeyRequired, Unauthenticated, UnknownKey
from service.store.api_keys import KeyRecord, KeyStore, hash_key, scope_of

_MAX_CACHED_KEYS = 10_000


class Caller(msgspec.Struct, frozen=True):
    """The environment and scope of the key behind a request."""

    environment: str
    scope: str
    key_hash: str

    @property
    def is_secret(self) -> bool:
        """Whether the caller used a secret key."""
        return self.scope == "secret"

    def require_secret(self) -> None:
        """Refuse a public key on a secret-only endpoint (401 E015)."""
        if not self.is_secret:
            raise SecretKeyRequired("this endpoint needs a secret key")


class Authenticator:
    """Turns an Authorization header into a Caller."""

    def __init__(self, keys: KeyStore, clock: Clock, cache_s: float) -> None:
        self._keys = keys
        self._clock = clock
        self._cache_ms = int(cache_s * 1000)
        self._cache: dict[str, _Checked] = {}
        self._lookups: dict[str, asyncio.Future[_Checked]] = {}  # in flight, by key hash

    async def authenticate(self, authorization: str | None) -> Caller:
        """The caller, or 401 E056 / E055."""
        # The scheme name is case-insensitive (RFC 9110 section 11.1).
        if authorization is None or authorization[:7].lower() != "bearer ":
            raise Unauthenticated("send `Authorization: Bearer <key>`")
        key = authorization[7:].strip()
        if scope_of(key) is None:
            raise UnknownKey("unknown or revoked API key")
        key_hash = hash_key(key)
        now_ms = self._clock()
        checked = self._cache.get(key_hash)
        if checked is None or now_ms - checked.at_ms >= self._cache_ms:
            checked = await self._looked_up(key_hash, now_ms)
        if checked.caller is None or (checked.expires_ms and checked.expires_ms <= now_ms):
            raise UnknownKey("unknown or revoked API key")
        return checked.caller

    def _looked_up(self, key_hash: str, now_ms: int) -> asyncio.Future[_Checked]:
        """The lookup of `key_hash` in flight, or a new one: cached when it ends.

        It runs as a task of its own, and each request awaits it through a shield, so a
        request that is cancelled (its client gone) cancels nobody else's lookup."""
        lookup = self._lookups.get(key_hash)
        if lookup is None or lookup.done():
            lookup = asyncio.ensure_future(self._look_up(key_hash, now_ms))
            # Its failure is told to whoever awaits it; if all of them went away, this
            # reads it, so that asyncio does not log it as never retrieved.
            lookup.add_done_callback(_retrieve)
            self._lookups[key_hash] = lookup
        return asyncio.shield(lookup)

    async def _look_up(self, key_hash: str, now_ms: int) -> _Checked:
        try:
            checked = _Checked.of(key_hash, await self._keys.lookup(key_hash), now_ms)
        finally:
            self._lookups.pop(key_hash, None)  # a failed lookup (Redis down) is tried afresh
        if len(self._cache) >= _MAX_CACHED_KEYS:
            self._cache.clear()
        self._cache[key_hash] = checked
        return checked


def _retrieve(lookup: asyncio.Future[_Checked]) -> None:
    if not lookup.cancelled():
        lookup.exception()


class _Checked(msgspec.Struct, frozen=True):
    """What one lookup of a key found, kept for `key_cache_s`: its Caller, None if unknown."""

    at_ms: int
    caller: Caller | None
    expires_ms: int = 0  # 0: never

    @classmethod
    def of(cls, key_hash: str, record: KeyRecord | None, now_ms: int) -> _Checked:
        if record is None or record.revoked:
            return cls(now_ms, None)
        return cls(now_ms, Caller(record.environment, record.scope, key_hash), record.expires_ms)
