"""The steps of a move between two resources (store/reschedule.py's saga): reserve_place,
release_booking, confirm_place, abort_intent, abort_place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

from service.records import BookingRecord
from service.store.calls.bookings import booking_of
from service.store.calls.common import STALE, ScriptCalls, Stale, as_list
from service.store.refusals import refused


class Aborted(msgspec.Struct, frozen=True):
    """release_booking's ABORTED: the healer undid this move first."""


class Gone(msgspec.Struct, frozen=True):
    """confirm_place's GONE: no reservation of this move is left to confirm."""


ABORTED, GONE = Aborted(), Gone()
Verdict = Literal["RELEASED", "ABORTED"]
"""abort_intent's answer: the source released the booking to the move, or never will."""


class MoveCalls(ScriptCalls):
    """One method per step of a cross-resource move."""

    __slots__ = ()

    async def reserve_place(
        self,
        *,
        slot_key: str,
        lock_key: str,
        resource_key: str,
        booking_key: str,
        holds_key: str,
        held_key: str,
        lock_ends_key: str,
        events_key: str,
        starts_key: str,
        environment: str,
        now_ms: int,
        holder: str,
        intent_id: str,
        status: str,
        fields: Sequence[str],
    ) -> Stale | None:
        """Hold a place on the target (a refusal raises its error), or STALE."""
        reply = as_list(
            await self.scripts.reserve_place(
                [
                    slot_key,
                    lock_key,
                    resource_key,
                    booking_key,
                    holds_key,
                    held_key,
                    lock_ends_key,
                    events_key,
                    starts_key,
                ],
                [environment, now_ms, holder, intent_id, status, *fields],
            )
        )
        if reply[0] == "STALE":
            return STALE
        if reply[0] != "OK":
            raise refused(reply, now_ms)
        return None

    async def release_booking(
        self,
        *,
        booking_key: str,
        slot_key: str,
        resource_key: str,
        resource_bookings_key: str,
        slot_bookings_key: str,
        lock_key: str,
        events_key: str,
        held_key: str,
        starts_key: str,
        environment: str,
        booking_id: str,
        source_slot_id: str,
        status: str,
        target_slot_id: str,
        intent_id: str,
        now_ms: int,
    ) -> Aborted | Stale | None:
        """The source gives the booking up to the move; ABORTED or STALE when it may not."""
        reply = as_list(
            await self.scripts.release_booking(
                [
                    booking_key,
                    slot_key,
                    resource_key,
                    resource_bookings_key,
                    slot_bookings_key,
                    lock_key,
                    events_key,
                    held_key,
                    starts_key,
                ],
                [
                    environment,
                    booking_id,
                    source_slot_id,
                    status,
                    target_slot_id,
                    intent_id,
                    now_ms,
                ],
            )
        )
        if reply[0] == "OK":
            return None
        if reply[0] == "ABORTED":
            return ABORTED
        if reply[0] == "STALE":
            return STALE
        raise refused(reply, now_ms)

    async def confirm_place(
        self,
        *,
        booking_key: str,
        resource_bookings_key: str,
        slot_bookings_key: str,
        lock_key: str,
        slot_key: str,
        resource_key: str,
        lock_ends_key: str,
        events_key: str,
        held_key: str,
        booking_id: str,
        intent_id: str,
        holder: str,
    ) -> BookingRecord | Gone:
        """The reservation becomes the booking (harmless to repeat), or GONE."""
        reply = as_list(
            await self.scripts.confirm_place(
                [
                    booking_key,
                    resource_bookings_key,
                    slot_bookings_key,
                    lock_key,
                    slot_key,
                    resource_key,
                    lock_ends_key,
                    events_key,
                    held_key,
                ],
                [booking_id, intent_id, holder],
            )
        )
        return GONE if reply[0] == "GONE" else booking_of(reply)

    async def abort_intent(self, *, booking_key: str, intent_id: str) -> Verdict:
        """Whether the source released the booking to this move, or is now fenced against it."""
        reply = as_list(await self.scripts.abort_intent([booking_key], [intent_id]))
        return "RELEASED" if reply[0] == "RELEASED" else "ABORTED"

    async def abort_place(
        self,
        *,
        booking_key: str,
        slot_key: str,
        resource_key: str,
        lock_key: str,
        events_key: str,
        held_key: str,
        starts_key: str,
        intent_id: str,
        source_slot_id: str,
    ) -> None:
        """Undo the target's reservation (nothing left to undo is fine)."""
        await self.scripts.abort_place(
            [booking_key, slot_key, resource_key, lock_key, events_key, held_key, starts_key],
            [intent_id, source_slot_id],
        )
