"""The typed script calls decode each reply shape a header lists, and refuse any other.

Here each script answers a canned reply (no Redis: tests/script_faults.py), so every
status can be shown, including ones a live script reaches only in a race.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from service.errors import SlotNotFound, Unprocessable
from service.records import SlotRecord, to_hash
from service.scripts import RedisReply, Scripts
from service.store.batching import ScriptBatcher
from service.store.calls.bookings import Booked, BookingCalls, Replayed
from service.store.calls.common import STALE, UnexpectedReply
from service.store.calls.locks import LockCalls, Locked
from service.store.calls.moves import ABORTED, MoveCalls
from service.store.calls.slots import NewSlot, SlotCalls
from tests.script_faults import Canned

T = TypeVar("T")
SLOT = SlotRecord(
    id="3d922700-0000-4000-8000-000000000001",
    environment="test",
    resource_id="3d922700-0000-4000-8000-000000000000",
    start_ms=1_000,
    end_ms=2_000,
    capacity=2,
    lockable=True,
    metadata="{}",
    created_ms=1,
    updated_ms=1,
)
VIEW: list[RedisReply] = [json.dumps(to_hash(SLOT)), 0, "published", "0", "UTC", 1]


def scripts_answering(reply: RedisReply) -> tuple[Scripts, Canned]:
    """Scripts whose every call answers `reply` (each test calls one of them), through the
    real batcher: the Canned transport keeps what each call sent."""
    canned = Canned(reply)
    return Scripts.register(ScriptBatcher(canned)), canned


def run(call: Coroutine[Any, Any, T]) -> T:
    """Await one call on a fresh loop."""
    return asyncio.run(call)


def lock(reply: RedisReply) -> tuple[Locked, Canned]:
    """lock_slot over a script answering `reply`."""
    scripts, canned = scripts_answering(reply)
    keys = {name: f"k:{name}" for name in ("slot_key", "lock_key", "resource_key")}
    locked = run(
        LockCalls(scripts).lock_slot(
            **keys,
            holds_key="k:holds",
            held_key="k:held",
            lock_ends_key="k:ends",
            events_key="k:events",
            environment="test",
            holder="h",
            until_ms=9_000,
            now_ms=5_000,
            max_holds=5,
            quantity=0,
        )
    )
    return locked, canned


def test_lock_sends_keys_and_argv_in_header_order_and_decodes_the_view() -> None:
    """A granted lock returns its fencing token and the slot as the script read it."""
    locked, canned = lock(["OK", 7, VIEW])
    assert locked.token == 7
    assert locked.view.record == SLOT
    assert locked.view.held_places == 1
    assert canned.sent == (
        [
            "k:slot_key",
            "k:lock_key",
            "k:resource_key",
            "k:holds",
            "k:held",
            "k:ends",
            "k:events",
        ],
        ["test", "h", 9_000, 5_000, 5, 0],
    )


def test_a_lock_refusal_raises_its_error_with_retry_after_from_now_ms() -> None:
    """LOCKED until 8 s, judged at 5 s: 422 E045 with Retry-After 3."""
    with pytest.raises(Unprocessable) as raised:
        lock(["LOCKED", 8_000])
    assert raised.value.code == "E045"
    assert raised.value.retry_after_s == 3


@pytest.mark.parametrize("reply", [["WHAT"], ["OK", "seven", VIEW], "OK", None])
def test_a_reply_no_header_lists_fails_loudly(reply: RedisReply) -> None:
    """A status or shape lock_slot's header does not list is an error, never a wrong answer."""
    with pytest.raises(UnexpectedReply):
        lock(reply)


def test_read_slot_of_a_missing_slot_is_not_found() -> None:
    """SLOT_NOT_FOUND becomes the 404 error."""
    scripts, _ = scripts_answering(["SLOT_NOT_FOUND"])
    read = LockCalls(scripts).read_slot(
        slot_key="s",
        lock_key="l",
        resource_key="r",
        held_key="h",
        environment="test",
        now_ms=1,
    )
    with pytest.raises(SlotNotFound):
        run(read)


def test_create_slots_flattens_each_group_and_reads_stale() -> None:
    """Each NewSlot adds its two keys and its ARGV run; STALE comes back as Stale."""
    scripts, canned = scripts_answering(["STALE"])
    group = NewSlot("k:new", "k:neighbour", "new", 1, 2, "neighbour", ["a", "1"])
    created = run(
        SlotCalls(scripts).create_slots(
            resource_key="k:r",
            starts_key="k:s",
            events_key="k:e",
            per_slot=[group],
            environment="test",
            field_count=1,
        )
    )
    assert created == STALE
    assert canned.sent == (
        ["k:r", "k:s", "k:e", "k:new", "k:neighbour"],
        ["test", 1, "new", 1, 2, "neighbour", "a", "1"],
    )


@pytest.mark.parametrize(
    ("reply", "decoded"),
    [(["OK", "resource-1"], Booked("resource-1")), (["REPLAY", "b-1"], Replayed("b-1"))],
)
def test_create_booking_tells_a_booking_from_a_replay(
    reply: RedisReply, decoded: Booked | Replayed
) -> None:
    """OK names the resource; REPLAY names the booking an Idempotency-Key already made."""
    scripts, _ = scripts_answering(reply)
    keys = [
        "slot_key",
        "lock_key",
        "resource_key",
        "resource_bookings_key",
        "slot_bookings_key",
        "booking_key",
        "receipt_key",
        "holds_key",
        "held_key",
        "lock_ends_key",
        "events_key",
        "starts_key",
    ]
    booked = BookingCalls(scripts).create_booking(
        **{key: f"k:{key}" for key in keys},
        environment="test",
        now_ms=1,
        holder="",
        booking_id="b-1",
        receipt_ttl_ms=0,
        fields=[],
    )
    assert run(booked) == decoded


def test_release_after_the_healer_aborted_is_aborted() -> None:
    """release_booking's ABORTED is its own value, so the saga undoes its reservation."""
    scripts, _ = scripts_answering(["ABORTED"])
    released = MoveCalls(scripts).release_booking(
        booking_key="b",
        slot_key="s",
        resource_key="r",
        resource_bookings_key="rb",
        slot_bookings_key="sb",
        lock_key="l",
        events_key="e",
        held_key="h",
        starts_key="st",
        environment="test",
        booking_id="b-1",
        source_slot_id="s-1",
        status="active",
        target_slot_id="t-1",
        intent_id="i",
        now_ms=1,
    )
    assert run(released) == ABORTED
