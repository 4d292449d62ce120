"""The Lua scripts of lua/: read once, registered with redis-py, preloaded at start-up.

Each script is called through redis-py's script object, which sends EVALSHA and
falls back to sending the source once when Redis answers NOSCRIPT (after a
restart, a failover to a replica or SCRIPT FLUSH). A line `--!include NAME`
pulls in lua/lib/NAME, so shared helpers are written once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True, slots=True)
class Scripts:
    """One registered script per atomic operation; field names match lua/ file names."""

    read_slot: Any
    lock_slot: Any
    unlock_slot: Any
    create_slots: Any
    update_slot: Any
    set_slot_status: Any
    delete_slot: Any
    create_resource: Any
    update_resource: Any
    delete_resource: Any
    create_booking: Any
    set_booking_status: Any
    update_booking: Any
    delete_booking: Any
    reschedule_booking: Any
    reserve_place: Any
    release_booking: Any
    confirm_place: Any
    abort_intent: Any
    abort_place: Any

    @classmethod
    def register(cls, redis: Any) -> Scripts:
        """Register every script with `redis` (no round trip yet)."""
        return cls(**{name: redis.register_script(script_source(name)) for name in cls.names()})

    @classmethod
    def names(cls) -> list[str]:
        """Names of all scripts, i.e. of lua/*.lua outside lib/."""
        return [spec.name for spec in fields(cls)]

    def all(self) -> list[Any]:
        """Every registered script object."""
        return [getattr(self, name) for name in self.names()]

    async def preload(self, redis: Any) -> None:
        """SCRIPT LOAD every script, so the first requests need no fallback."""
        for script in self.all():
            await redis.script_load(script.script)

    async def loaded(self, redis: Any) -> bool:
        """Whether Redis holds every script right now."""
        present = await redis.script_exists(*[script.sha for script in self.all()])
        return all(present)
