"""The cross-resource reschedule saga: crashed at each step, then healed.

A move to another resource runs as intent, reserve, release and confirm (see
service/store/reschedule.py). Here the saga crashes after each of the first
three steps (`Rescheduler.crash_after`), and the tests show that before healing
nothing is lost and nothing oversold, that the healer leaves in-flight moves
alone until their deadline, and that once it has run the booking sits on
exactly one slot, every counter matches the bookings there, and the intent log
is empty: on the source if the crash came before the release, on the target if
after. A slow release that arrives after the healer undid its move must not
lose the booking either.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from service import keyspace
from service.settings import Settings
from service.store.calls.common import Stale
from service.store.calls.moves import ABORTED, GONE, Aborted
from service.store.client import RedisClient, members
from service.store.reschedule import INTENT_DEADLINE_MS, Intent, Rescheduler
from tests.api import Api, error_of
from tests.test_bookings import (
    ManualClock,
    action,
    book,
    booked,
    counts,
    listed,
    open_api,
    open_intents,
    redis_of,
    reschedule,
    run,
)

CRASH_POINTS = ["intent", "reserve", "release"]
# Where the booking belongs once healed: the release step is the point of no return.
HEALED_ON = {"intent": "source", "reserve": "source", "release": "target"}


@pytest.fixture
def clock() -> ManualClock:
    """The service's clock, moved past intent deadlines by hand."""
    return ManualClock()


@pytest.fixture
def api(redis_client: RedisClient, settings: Settings, clock: ManualClock) -> Iterator[Api]:
    """The app in-process on fakeredis or a real redis-server, reading `clock`."""
    yield from open_api(redis_client, settings, clock)


def rescheduler(api: Api) -> Rescheduler:
    """The app's rescheduler: its crash point and its healer."""
    found: Rescheduler = api.app.services.rescheduler
    return found


def heal(api: Api) -> int:
    """Run one round of the healer on the app's loop; how many moves it settled."""
    return run(api, rescheduler(api).heal)


@dataclass
class HalfDoneMove:
    """A booking whose move from `source` (one resource) to `target` (another) crashed."""

    booking_id: str
    source: dict[str, Any]
    target: dict[str, Any]

    def slot_id(self, side: str) -> str:
        """The id of the "source" or "target" slot."""
        return str((self.source if side == "source" else self.target)["id"])

    def resource_id(self, side: str) -> str:
        """The id of the "source" or "target" slot's resource."""
        return str((self.source if side == "source" else self.target)["resource_id"])


def crashed_move(api: Api, crash_after: str, *, back_home: bool = False) -> HalfDoneMove:
    """A booking on a 1-place slot whose move to a 1-place slot of another resource crashed.

    With `back_home` the booking is first moved away from the resource its id
    belongs to, and the crashed move takes it back there.
    """
    home = api.slot(api.resource()["id"])
    away = api.slot(api.resource(name="Room 2")["id"])
    booking_id = booked(api, home["id"])["id"]
    source, target = home, away
    if back_home:
        assert reschedule(api, booking_id, away["id"]).status_code == 200
        source, target = away, home
    rescheduler(api).crash_after = crash_after
    try:
        assert error_of(reschedule(api, booking_id, target["id"])) == (500, "E001")
    finally:
        rescheduler(api).crash_after = None
    return HalfDoneMove(booking_id, source, target)


def pass_the_deadline(clock: ManualClock) -> None:
    """Move the clock past every intent logged so far."""
    clock.advance(INTENT_DEADLINE_MS + 1)


def assert_settled(api: Api, move: HalfDoneMove, side: str) -> None:
    """The booking is on `side` only: by id, in every list and in every counter."""
    other = "target" if side == "source" else "source"
    found = api.ok("GET", f"/bookings/{move.booking_id}")
    assert (found["slot_id"], found["resource_id"]) == (move.slot_id(side), move.resource_id(side))
    assert listed(api, slot_id=move.slot_id(side)) == [move.booking_id]
    assert listed(api, slot_id=move.slot_id(other)) == []
    assert listed(api, resource_id=move.resource_id(side)) == [move.booking_id]
    assert listed(api, resource_id=move.resource_id(other)) == []
    assert counts(api, f"/slots/{move.slot_id(side)}") == (1, 1, 0)
    assert counts(api, f"/slots/{move.slot_id(other)}") == (0, 0, 0)
    assert counts(api, f"/resources/{move.resource_id(side)}") == (1, 1, 0)
    assert counts(api, f"/resources/{move.resource_id(other)}") == (0, 0, 0)
    assert open_intents(api) == 0


def logged_intent(api: Api) -> Intent:
    """The one move in the intent log."""
    entries = run(api, members, redis_of(api), keyspace.reschedule_intents())
    assert len(entries) == 1
    return msgspec.json.decode(entries[0], type=Intent)


@pytest.mark.parametrize("crash_after", CRASH_POINTS)
def test_crashed_move_loses_no_booking(api: Api, crash_after: str) -> None:
    """Before healing the booking is found by id: on the source, or once released on the target."""
    move = crashed_move(api, crash_after)
    found = api.ok("GET", f"/bookings/{move.booking_id}")
    side = HEALED_ON[crash_after]
    assert (found["slot_id"], found["status"]) == (move.slot_id(side), "active")
    on_source = listed(api, slot_id=move.slot_id("source"))
    on_target = listed(api, slot_id=move.slot_id("target"))
    assert len(on_source) + len(on_target) <= 1


@pytest.mark.parametrize("crash_after", CRASH_POINTS)
def test_crashed_move_oversells_nothing(api: Api, crash_after: str) -> None:
    """Before healing no slot counts more than its capacity, and a reserved place stays taken."""
    move = crashed_move(api, crash_after)
    for side in ("source", "target"):
        slot = api.ok("GET", f"/slots/{move.slot_id(side)}")
        assert slot["num_active_bookings"] <= slot["capacity"]
    competitor = book(api, move.slot_id("target"))
    if crash_after == "intent":  # nothing was reserved yet: the place is free
        assert competitor.status_code == 200
    else:
        assert error_of(competitor) == (422, "E049")


@pytest.mark.parametrize("crash_after", CRASH_POINTS)
def test_healer_leaves_a_move_alone_before_its_deadline(
    api: Api, clock: ManualClock, crash_after: str
) -> None:
    """A move whose deadline has not passed may still be running: the healer does not touch it."""
    crashed_move(api, crash_after)
    clock.advance(INTENT_DEADLINE_MS - 1000)
    assert heal(api) == 0
    assert open_intents(api) == 1


@pytest.mark.parametrize("crash_after", CRASH_POINTS)
def test_healing_settles_the_move(api: Api, clock: ManualClock, crash_after: str) -> None:
    """Past the deadline the healer puts the booking on one side: the source before release."""
    move = crashed_move(api, crash_after)
    pass_the_deadline(clock)
    assert heal(api) == 1
    assert_settled(api, move, HEALED_ON[crash_after])


@pytest.mark.parametrize("crash_after", CRASH_POINTS)
def test_healing_settles_a_move_back_home(api: Api, clock: ManualClock, crash_after: str) -> None:
    """A crashed move back to the resource the booking's id belongs to heals the same way."""
    move = crashed_move(api, crash_after, back_home=True)
    pass_the_deadline(clock)
    assert heal(api) == 1
    assert_settled(api, move, HEALED_ON[crash_after])


def test_read_mid_move_back_home_shows_where_the_booking_is(api: Api) -> None:
    """Before its release step, a move back home leaves GET /bookings/:id on the source slot."""
    move = crashed_move(api, "reserve", back_home=True)
    assert listed(api, slot_id=move.slot_id("source")) == [move.booking_id]
    found = api.ok("GET", f"/bookings/{move.booking_id}")
    assert found["slot_id"] == move.slot_id("source")


@pytest.mark.parametrize("crash_after", CRASH_POINTS)
def test_healing_frees_or_keeps_the_target_place(
    api: Api, clock: ManualClock, crash_after: str
) -> None:
    """After healing, the target's place is free again unless the booking moved there."""
    move = crashed_move(api, crash_after)
    pass_the_deadline(clock)
    heal(api)
    competitor = book(api, move.slot_id("target"))
    if HEALED_ON[crash_after] == "source":
        assert competitor.status_code == 200
    else:
        assert error_of(competitor) == (422, "E049")


@pytest.mark.parametrize("crash_after", CRASH_POINTS)
def test_healing_twice_changes_nothing(api: Api, clock: ManualClock, crash_after: str) -> None:
    """A second healer round (another pod) finds nothing to do and leaves the state settled."""
    move = crashed_move(api, crash_after)
    pass_the_deadline(clock)
    heal(api)
    assert heal(api) == 0
    assert_settled(api, move, HEALED_ON[crash_after])


@pytest.mark.parametrize("crash_after", CRASH_POINTS)
def test_healed_booking_moves_again(api: Api, clock: ManualClock, crash_after: str) -> None:
    """The fence the healer leaves stops only the crashed move: a new move goes through."""
    move = crashed_move(api, crash_after)
    pass_the_deadline(clock)
    heal(api)
    side = "target" if HEALED_ON[crash_after] == "source" else "source"
    assert reschedule(api, move.booking_id, move.slot_id(side)).status_code == 200
    assert_settled(api, move, side)


def test_competitor_that_booked_before_the_reserve_keeps_its_place(
    api: Api, clock: ManualClock
) -> None:
    """A competitor that took the target before anything was reserved keeps it; so does the move."""
    move = crashed_move(api, "intent")
    competitor = booked(api, move.slot_id("target"))
    pass_the_deadline(clock)
    assert heal(api) == 1
    assert api.ok("GET", f"/bookings/{move.booking_id}")["slot_id"] == move.slot_id("source")
    assert listed(api, slot_id=move.slot_id("target")) == [competitor["id"]]
    assert counts(api, f"/slots/{move.slot_id('target')}") == (1, 1, 0)
    assert counts(api, f"/slots/{move.slot_id('source')}") == (1, 1, 0)
    assert open_intents(api) == 0


def test_cancel_before_release_is_healed_on_the_source(api: Api, clock: ManualClock) -> None:
    """A booking cancelled while its move is reserved but not released heals as cancelled, home."""
    move = crashed_move(api, "reserve")
    assert action(api, move.booking_id, "cancel").status_code == 200
    pass_the_deadline(clock)
    heal(api)
    assert api.ok("GET", f"/bookings/{move.booking_id}")["slot_id"] == move.slot_id("source")
    assert counts(api, f"/slots/{move.slot_id('source')}") == (1, 0, 1)
    assert counts(api, f"/slots/{move.slot_id('target')}") == (0, 0, 0)
    assert counts(api, f"/resources/{move.resource_id('target')}") == (0, 0, 0)


@pytest.mark.parametrize(
    ("method", "suffix", "json"),
    [("POST", "/cancel", None), ("PATCH", "", {"metadata": {}}), ("DELETE", "", None)],
)
def test_change_during_a_released_move_is_retryable(
    api: Api, clock: ManualClock, method: str, suffix: str, json: Any
) -> None:
    """Changing a booking mid-move is a retryable 503, not a 500, and changes nothing."""
    move = crashed_move(api, "release")
    response = api.call(method, f"/bookings/{move.booking_id}{suffix}", json)
    assert error_of(response) == (503, "E103")
    assert "retry-after" in response.headers
    pass_the_deadline(clock)
    heal(api)
    assert_settled(api, move, "target")


def test_slow_release_after_the_healer_loses_nothing(api: Api, clock: ManualClock) -> None:
    """A release step that arrives after the healer undid its move is refused and moves nothing."""
    move = crashed_move(api, "reserve")
    intent = logged_intent(api)
    pass_the_deadline(clock)
    heal(api)
    saga = rescheduler(api)
    assert run(api, saga._release, intent) == ABORTED
    assert run(api, saga._confirm, intent) == GONE
    assert_settled(api, move, "source")


def test_release_before_the_healer_goes_forward(api: Api, clock: ManualClock) -> None:
    """A release that wins the race with the healer makes the healer finish the move."""
    move = crashed_move(api, "reserve")
    intent = logged_intent(api)
    assert run(api, rescheduler(api)._release, intent) is None  # released
    pass_the_deadline(clock)
    assert heal(api) == 1
    assert_settled(api, move, "target")


def test_saga_overtaken_by_the_healer_starts_over_and_moves(
    api: Api, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A move the healer undoes before its release step starts over, and lands once."""
    saga = rescheduler(api)
    release = saga._release
    overtaken: list[Aborted | Stale | None] = []

    async def slow_release(intent: Intent) -> Aborted | Stale | None:
        if not overtaken:
            pass_the_deadline(clock)
            await saga.heal()
            overtaken.append(await release(intent))
            return overtaken[0]
        return await release(intent)

    monkeypatch.setattr(saga, "_release", slow_release)
    source = api.slot(api.resource()["id"])
    target = api.slot(api.resource(name="Room 2")["id"])
    booking_id = booked(api, source["id"])["id"]
    assert reschedule(api, booking_id, target["id"]).status_code == 200
    assert overtaken == [ABORTED]
    assert_settled(api, HalfDoneMove(booking_id, source, target), "target")
