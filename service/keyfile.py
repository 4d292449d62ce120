"""API keys provisioned declaratively: a JSON file (e.g. a mounted Kubernetes Secret).

The file holds one key pair as `slotlock keys create` prints it, or a list of
them. Each is stored at start-up (storing a pair again is harmless, and never
un-revokes it), so nobody has to exec into a pod to create keys; a pair marked
`"revoked": true` is revoked, so revocation can be declared the same way.
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec

from service.store.api_keys import KeyPair, KeyStore, scope_of

logger = logging.getLogger("slotlock.keys")


class KeyFileEntry(KeyPair, kw_only=True):
    """A pair as the file holds it; `revoked: true` revokes it on every start-up."""

    revoked: bool = False


def read_key_file(path: Path) -> list[KeyFileEntry]:
    """The pairs in the file; a malformed file stops start-up, naming the file, not its keys."""
    try:
        text = path.read_bytes()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(f"SLOTLOCK_KEYS_FILE {path} cannot be read: {reason}") from None
    try:
        pairs = msgspec.json.decode(text, type=KeyFileEntry | list[KeyFileEntry])
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        # msgspec names the position or field, never the value: no key reaches the message.
        raise ValueError(f"SLOTLOCK_KEYS_FILE {path} is not a key file: {error}") from None
    pairs = pairs if isinstance(pairs, list) else [pairs]
    for pair in pairs:
        if scope_of(pair.public_key) != "public" or scope_of(pair.secret_key) != "secret":
            raise ValueError(f"SLOTLOCK_KEYS_FILE {path} holds a key of the wrong form")
    return pairs


async def import_key_file(keys: KeyStore, path: Path) -> None:
    """Store every pair of the file, and revoke those it marks revoked."""
    pairs = read_key_file(path)
    for pair in pairs:
        await keys.import_pair(pair)
        if pair.revoked:
            await keys.retire(await keys.find(pair.public_key) + await keys.find(pair.secret_key))
    revoked = sum(pair.revoked for pair in pairs)
    logger.info(
        "imported API key pairs", extra={"pairs": len(pairs), "revoked": revoked, "file": str(path)}
    )
