"""The hot path's scripts: read, lock and unlock a slot; and the sweep of ended locks.

Lock and unlock run some 10k times a second per worker, so these methods do no more
than the stores did before them: one list of KEYS, one of ARGV, one status check; the
reply is narrowed with isinstance in line rather than through the accessors of
common.py (a Python call each: 1-2k instructions per lock+unlock pair, counted).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from service.scripts import RedisReply
from service.store.calls.common import ScriptCalls, as_int, as_list
from service.store.refusals import refused
from service.views import SlotView


class Locked(msgspec.Struct, frozen=True):
    """lock_slot's OK: the fencing token (kept while the same key changes what it has)."""

    token: int
    view: SlotView


class ExpiringSlot(msgspec.Struct, frozen=True):
    """expire_locks' KEYS per slot: its hash, its lock and its partial holds."""

    slot_key: str
    lock_key: str
    held_key: str


class LockCalls(ScriptCalls):
    """read_slot, lock_slot, unlock_slot and expire_locks."""

    __slots__ = ()

    async def read_slot(
        self,
        *,
        slot_key: str,
        lock_key: str,
        resource_key: str,
        held_key: str,
        environment: str,
        now_ms: int,
    ) -> SlotView:
        """One slot with its lock, held places and booking window (SlotNotFound if none)."""
        reply: RedisReply = await self.scripts.read_slot(
            [slot_key, lock_key, resource_key, held_key], [environment, now_ms]
        )
        return _view_of(reply, now_ms)

    async def lock_slot(
        self,
        *,
        slot_key: str,
        lock_key: str,
        resource_key: str,
        holds_key: str,
        held_key: str,
        lock_ends_key: str,
        events_key: str,
        environment: str,
        holder: str,
        until_ms: int,
        now_ms: int,
        max_holds: int,
        quantity: int,
    ) -> Locked:
        """Take, move or convert a lock (quantity 0) or a hold; a refusal raises its error."""
        reply: RedisReply = await self.scripts.lock_slot(
            [
                slot_key,
                lock_key,
                resource_key,
                holds_key,
                held_key,
                lock_ends_key,
                events_key,
            ],
            [environment, holder, until_ms, now_ms, max_holds, quantity],
        )
        if isinstance(reply, list) and reply[0] == "OK":
            token, view = reply[1], reply[2]
            if isinstance(token, int) and isinstance(view, list):
                return Locked(token, SlotView.from_script(view))
        raise refused(as_list(reply), now_ms)

    async def unlock_slot(
        self,
        *,
        slot_key: str,
        lock_key: str,
        resource_key: str,
        holds_key: str,
        held_key: str,
        lock_ends_key: str,
        events_key: str,
        environment: str,
        holder: str,
        now_ms: int,
    ) -> SlotView:
        """Release the holder's lock or hold (harmless when it has none); E059 if another's."""
        reply: RedisReply = await self.scripts.unlock_slot(
            [
                slot_key,
                lock_key,
                resource_key,
                holds_key,
                held_key,
                lock_ends_key,
                events_key,
            ],
            [environment, holder, now_ms],
        )
        return _view_of(reply, now_ms)

    async def expire_locks(
        self,
        *,
        lock_ends_key: str,
        events_key: str,
        resource_key: str,
        per_slot: Sequence[ExpiringSlot],
        now_ms: int,
        slot_ids: Sequence[str],
    ) -> int:
        """Write slot.unlocked for each given slot whose lock ended by itself; how many."""
        keys = [lock_ends_key, events_key, resource_key]
        for slot in per_slot:
            keys += [slot.slot_key, slot.lock_key, slot.held_key]
        return as_int(await self.scripts.expire_locks(keys, [now_ms, *slot_ids]))


def _view_of(reply: RedisReply, now_ms: int) -> SlotView:
    """The view of an {"OK", view} reply; a refusal raises its error."""
    if isinstance(reply, list) and reply[0] == "OK":
        view = reply[1]
        if isinstance(view, list):
            return SlotView.from_script(view)
    raise refused(as_list(reply), now_ms)
