"""The Lua scripts of lua/: read once, registered with redis-py, preloaded at start-up.

Each script is called with EVALSHA, batched with concurrent calls into one
pipeline (service/store/batching.py); a NOSCRIPT answer (after a restart, a
failover to a replica or SCRIPT FLUSH) loads the script and sends the call
again, which is safe because NOSCRIPT means it did not run. A line
`--!include NAME` pulls in lua/lib/NAME, so shared helpers are written once.

Every script's first line is a Redis 7 shebang with its flags: `#!lua` for a
script that writes, `#!lua flags=no-writes` for one that only reads. Redis then
refuses a writing script before it runs (so before it writes anything) when it
is out of memory (OOM), a read-only replica (READONLY) or short of replicas
(NOREPLICAS), and lets a reading one run in all three. Without a shebang Redis 7
would refuse a script only at its first write that may grow memory, after the
writes before it (tests/test_fault_redis_limits.py).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeAlias

from service.store.batching import BatchedScript, ScriptBatcher
from service.store.client import RedisClient

RedisReply: TypeAlias = "str | int | list[RedisReply] | None"
"""What a script answers, as hiredis or redis-py (decode_responses) hand it over: Lua
strings as str, numbers as int, tables as lists, false as None. The typed calls of
service/store/calls/ turn it into their reply types; nothing else reads it."""

_SHEBANG = "#!lua"
_INCLUDE = re.compile(r"^--!include (\S+)$", re.MULTILINE)


def lua_dir() -> Path:
    """Where the scripts live: beside the package in a wheel, at the top of a checkout."""
    packaged = Path(__file__).parent / "lua"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "lua"


def script_source(name: str, directory: Path | None = None) -> str:
    """The source of lua/NAME.lua with its includes expanded."""
    base = directory or lua_dir()
    text = (base / f"{name}.lua").read_text()
    return _INCLUDE.sub(lambda match: (base / "lib" / match.group(1)).read_text(), text)


def script_sha(source: str) -> str:
    """The SHA1 EVALSHA knows a script by."""
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


def script_flags(source: str) -> frozenset[str]:
    """The flags its `#!lua flags=...` first line gives a script; none for a bare `#!lua`."""
    first_line = source.partition("\n")[0]
    if not first_line.startswith(_SHEBANG):
        raise ValueError(f"a script must start with {_SHEBANG!r}: {first_line!r}")
    flags: set[str] = set()
    for option in first_line.split()[1:]:
        name, _, value = option.partition("=")
        if name == "flags":
            flags.update(flag for flag in value.split(",") if flag)
    return frozenset(flags)


@dataclass(frozen=True, slots=True)
class Scripts:
    """One registered script per atomic operation; field names match lua/ file names.

    Only the typed calls (service/store/calls/) run them: each names its KEYS and ARGV
    and decodes the reply (tests/test_script_signatures.py holds them to the headers).
    """

    read_slot: BatchedScript
    lock_slot: BatchedScript
    unlock_slot: BatchedScript
    create_slots: BatchedScript
    update_slot: BatchedScript
    set_slot_status: BatchedScript
    delete_slot: BatchedScript
    create_resource: BatchedScript
    update_resource: BatchedScript
    delete_resource: BatchedScript
    create_booking: BatchedScript
    set_booking_status: BatchedScript
    update_booking: BatchedScript
    delete_booking: BatchedScript
    reschedule_booking: BatchedScript
    reserve_place: BatchedScript
    release_booking: BatchedScript
    confirm_place: BatchedScript
    abort_intent: BatchedScript
    abort_place: BatchedScript
    expire_locks: BatchedScript
    list_slots: BatchedScript
    list_bookings: BatchedScript
    list_resources: BatchedScript
    index_resource: BatchedScript
    index_slots: BatchedScript

    @classmethod
    def register(cls, batcher: ScriptBatcher) -> Scripts:
        """Prepare every script to run through `batcher` (one for all: their calls share
        its batches)."""
        scripts = {}
        for name in cls.names():
            source = script_source(name)
            writes = "no-writes" not in script_flags(source)
            scripts[name] = BatchedScript(source, script_sha(source), batcher, writes=writes)
        return cls(**scripts)

    @classmethod
    def names(cls) -> list[str]:
        """Names of all scripts, i.e. of lua/*.lua outside lib/."""
        return [spec.name for spec in fields(cls)]

    def all(self) -> list[BatchedScript]:
        """Every registered script object."""
        return [getattr(self, name) for name in self.names()]

    async def preload(self, redis: RedisClient) -> None:
        """SCRIPT LOAD every script, so the first requests need no fallback.

        On Cluster, redis-py sends SCRIPT LOAD to every primary it knows. Replicas get
        nothing (Redis 7 replicates no script cache), so a promoted replica starts empty
        and the NOSCRIPT fallback of a call loads it there (tests/test_fault_topology_*).
        """
        for script in self.all():
            await redis.script_load(script.script)

    async def loaded(self, redis: RedisClient) -> bool:
        """Whether Redis holds every script right now (on Cluster: every primary holds each)."""
        present = await redis.script_exists(*[script.sha for script in self.all()])
        return all(present)
