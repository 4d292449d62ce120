"""What a fault under load must not break, judged from a FaultRun's record.

Each check returns the violations it found (empty when the promise held), so a
failing test names every offending request. FaultUnderLoadContract turns them
into tests: a test module subclasses it and provides a module-scoped `run`
fixture (a FaultRun), and gets one test per promise.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from typing import Any

import msgspec

from tests.fault_load import Attempt
from tests.fault_run import FaultRun

LATENCY_MARGIN_S = 1.0  # on top of SLOTLOCK_REDIS_TIMEOUT_S: a loaded 2-core machine
RECOVERY_LIMIT_S = 5.0  # from Redis being back to the first write it answers


def bad_answers(attempts: list[Attempt]) -> list[str]:
    """Requests with no answer, or a 5xx other than 503 E103 with a Retry-After of >= 1 s."""
    bad = []
    start_s = min((attempt.sent_s for attempt in attempts), default=0.0)
    for attempt in attempts:
        well_formed_503 = (
            attempt.status == 503
            and attempt.code == "E103"
            and (attempt.retry_after or "").isdigit()
            and int(attempt.retry_after or 0) >= 1
        )
        if attempt.status == 0 or (attempt.status >= 500 and not well_formed_503):
            bad.append(
                f"{attempt.kind} {attempt.slot_id}: {attempt.status} {attempt.data!r}"
                f" (sent at +{attempt.sent_s - start_s:.2f} s, after {attempt.latency_s:.2f} s)"
            )
    return bad


def slowest_s(attempts: list[Attempt]) -> float:
    """The longest any request waited for its answer."""
    return max((attempt.latency_s for attempt in attempts), default=0.0)


def oversold(run: FaultRun) -> list[str]:
    """Slots seen with more active bookings than places: by the monitor, or after the load."""
    capacity = run.slots.capacity
    found = [
        f"monitor saw {a.data['num_active_bookings']} active on {a.slot_id}"
        for a in run.attempts
        if a.kind == "read" and a.status == 200 and a.data["num_active_bookings"] > capacity
    ]
    for name, state in (("before", run.before), ("after", run.after)):
        for slot_id, slot in state.slots.items():
            listed = sum(b["status"] == "active" for b in state.bookings[slot_id])
            if max(slot["num_active_bookings"], listed) > capacity:
                found.append(f"{name} settling: {slot_id} has {listed} active bookings listed")
    return found


def double_holders(attempts: list[Attempt]) -> list[str]:
    """Locks granted to a second lock_key while the first could still hold the slot.

    Tokens grow with every new holder. For two holders next to each other in token
    order, the later one's grant must have come back after the earlier one's lock
    could first have ended: its first unlock or booking was sent, or it expired.
    A token is never shared by two keys, and no lock with a larger token is
    granted before one with a smaller token was even asked for.
    """
    first_release: dict[str, float] = {}
    for attempt in attempts:
        if attempt.kind in ("book", "unlock") and attempt.lock_key is not None:
            known_s = first_release.get(attempt.lock_key, math.inf)
            first_release[attempt.lock_key] = min(known_s, attempt.sent_s)
    grants: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        if attempt.kind in ("lock", "hold") and attempt.status == 200:
            grants[attempt.slot_id].append(attempt)
    found: list[str] = []
    for slot_id, granted in grants.items():
        found += _shared_tokens(slot_id, granted)
        ordered = sorted(granted, key=lambda attempt: attempt.token)
        for earlier, later in itertools.pairwise(ordered):
            ended_s = min(
                first_release.get(str(earlier.lock_key), math.inf),
                earlier.sent_s + earlier.lock_for_s,
            )
            if later.lock_key != earlier.lock_key and later.received_s < ended_s:
                found.append(f"{slot_id}: token {later.token} granted while {earlier.token} held")
        for earlier, later in itertools.combinations(ordered, 2):
            if later.token > earlier.token and later.received_s < earlier.sent_s:
                found.append(f"{slot_id}: token {later.token} granted before {earlier.token}")
    return found


def _shared_tokens(slot_id: str, granted: list[Attempt]) -> list[str]:
    owner: dict[int, str | None] = {}
    found = []
    for attempt in granted:
        if owner.setdefault(attempt.token, attempt.lock_key) != attempt.lock_key:
            found.append(f"{slot_id}: token {attempt.token} given to two lock keys")
    return found


def lost_bookings(run: FaultRun) -> list[str]:
    """Bookings answered 200 during the load that the service no longer shows as such."""
    cancelled = _ids(run.phase("load"), "cancel", 200)
    maybe_cancelled = _ids(run.phase("load"), "cancel", 503)
    found = []
    for attempt in run.phase("load"):
        if attempt.kind != "book" or attempt.status != 200:
            continue
        booking = run.before.found.get(str(attempt.booking_id))
        if booking is None or booking["slot_id"] != attempt.slot_id:
            found.append(f"booking {attempt.booking_id} on {attempt.slot_id} is gone")
            continue
        wanted = {"cancelled"} if attempt.booking_id in cancelled else {"active"}
        if attempt.booking_id in maybe_cancelled:
            wanted.add("cancelled")
        if booking["status"] not in wanted:
            found.append(f"booking {attempt.booking_id} is {booking['status']}, not {wanted}")
    return found


def lost_locks(run: FaultRun) -> list[str]:
    """Held locks granted during the load that the slot no longer shows."""
    return [
        f"held lock on {a.slot_id} until {a.data['locked_until']} is gone"
        for a in run.phase("load")
        if a.kind == "hold"
        and a.status == 200
        and run.before.held[a.slot_id]["locked_until"] != a.data["locked_until"]
    ]


def counters_beyond_acknowledged(run: FaultRun) -> list[str]:
    """Before settling: each slot holds its acknowledged bookings plus at most its 503'd ones."""
    load = run.phase("load")
    cancelled = _ids(load, "cancel", 200)
    maybe_cancelled = _ids(load, "cancel", 503)
    found = []
    for slot_id, slot in run.before.slots.items():
        mine = [a for a in load if a.slot_id == slot_id]
        acknowledged = _ids(mine, "book", 200)
        unanswered = sum(a.kind == "book" and a.status == 503 for a in mine)
        listed = {b["id"] for b in run.before.bookings[slot_id]}
        active = {b["id"] for b in run.before.bookings[slot_id] if b["status"] == "active"}
        surely_active = acknowledged - cancelled - maybe_cancelled
        at_most_active = len(acknowledged - cancelled) + unanswered
        if not acknowledged <= listed or len(listed - acknowledged) > unanswered:
            found.append(f"{slot_id}: {len(listed)} bookings for {len(acknowledged)} "
                         f"acknowledged and {unanswered} answered 503")  # fmt: skip
        if not len(surely_active) <= len(active) <= at_most_active:
            found.append(f"{slot_id}: {len(active)} active, not within "
                         f"[{len(surely_active)}, {at_most_active}]")  # fmt: skip
        found += _counter_mismatch("before", slot, listed, active)
    return found


def unsettled(run: FaultRun) -> list[str]:
    """After settling: the bookings are exactly the acknowledged ones, counters to match."""
    answered = run.phase("load", "settle")
    cancelled = _ids(answered, "cancel", 200)
    found = [
        f"{a.kind} {a.idempotency_key or a.booking_id} still answered 503 after retries"
        for a in _still_unanswered(answered)
    ]
    for slot_id, slot in run.after.slots.items():
        acknowledged = _ids([a for a in answered if a.slot_id == slot_id], "book", 200)
        listed = {b["id"] for b in run.after.bookings[slot_id]}
        active = {b["id"] for b in run.after.bookings[slot_id] if b["status"] == "active"}
        if listed != acknowledged:
            found.append(
                f"{slot_id}: unacknowledged {sorted(listed - acknowledged)}, "
                f"missing {sorted(acknowledged - listed)}"
            )
        if active != acknowledged - cancelled:
            found.append(
                f"{slot_id}: active {len(active)}, expected {len(acknowledged - cancelled)}"
            )
        found += _counter_mismatch("after", slot, listed, active)
    return found


def _still_unanswered(attempts: list[Attempt]) -> list[Attempt]:
    last: dict[tuple[str, str | None], Attempt] = {}
    for attempt in attempts:
        if attempt.kind in ("book", "cancel"):
            last[attempt.kind, attempt.idempotency_key or attempt.booking_id] = attempt
    return [attempt for attempt in last.values() if attempt.status == 503]


def _counter_mismatch(name: str, slot: Any, listed: set[str], active: set[str]) -> list[str]:
    counted = (slot["num_bookings"], slot["num_active_bookings"])
    if counted == (len(listed), len(active)):
        return []
    return [f"{name}: {slot['id']} counts {counted}, lists {(len(listed), len(active))}"]


def stale_fence_tokens(run: FaultRun) -> list[str]:
    """Slots whose newest lock got a token not above every token granted during the load."""
    found = []
    for slot_id, token in run.fence_tokens.items():
        granted = [
            a.token for a in run.phase("load") if a.slot_id == slot_id and a.kind == "lock"
            and a.status == 200
        ]  # fmt: skip
        if granted and token <= max(granted):
            found.append(f"{slot_id}: new token {token}, but {max(granted)} was granted")
    return found


def settled_replays(run: FaultRun) -> int:
    """Retries that found the booking their 503'd first attempt had made."""
    made_before = {b["id"] for bookings in run.before.bookings.values() for b in bookings}
    acknowledged = _ids(run.phase("load"), "book", 200)
    return sum(
        a.kind == "book" and a.status == 200 and a.booking_id in made_before - acknowledged
        for a in run.phase("settle")
    )


def _ids(attempts: list[Attempt], kind: str, status: int) -> set[str]:
    return {
        str(a.booking_id) for a in attempts
        if a.kind == kind and a.status == status and a.booking_id is not None
    }  # fmt: skip


def unexpected_failures(service_log: str) -> list[str]:
    """The last line of each exception the service logged as an unexpected failure."""
    found = []
    for line in service_log.splitlines():
        if "unexpected failure" in line:  # uvicorn repeats it when the answer had started
            record = msgspec.json.decode(line)
            found.append(str(record.get("exception", line)).strip().splitlines()[-1])
    return found


def figures(run: FaultRun) -> dict[str, Any]:
    """The measured figures of a run, for its summary line."""
    load = run.phase("load")
    marks = run.marks
    return {
        "requests": len(load),
        "acknowledged_writes": sum(a.answered_by_redis and a.status < 300 for a in load),
        "bookings_200": sum(a.kind == "book" and a.status == 200 for a in load),
        "answered_503": sum(a.status == 503 for a in load),
        "bookings_503": sum(a.kind == "book" and a.status == 503 for a in load),
        "settled_200": sum(a.kind == "book" and a.status == 200 for a in run.phase("settle")),
        "settled_replays": settled_replays(run),
        "max_latency_s": round(slowest_s(load), 3),
        "max_503_latency_s": round(slowest_s([a for a in load if a.status == 503]), 3),
        "outage_s": round(marks["recovered"] - marks["fault"], 3),
        "recovery_s": round(marks["recovered"] - marks["back"], 3),
        "first_2xx_after_back_s": round(_first_success_s(load, marks["fault"]) - marks["back"], 3),
        **run.notes,
    }


def _none(problems: list[str]) -> None:
    """Fail with the first problems found, one per line (helpers get no assert rewriting)."""
    by_kind = Counter(problem.split(" ", 1)[0] for problem in problems)
    summary = ", ".join(f"{kind} {count}" for kind, count in by_kind.most_common())
    assert not problems, f"{len(problems)} found ({summary}):\n" + "\n".join(problems[:15])


def _first_success_s(attempts: list[Attempt], since_s: float) -> float:
    return min(
        (
            a.received_s
            for a in attempts
            if a.answered_by_redis and a.status < 300 and a.sent_s > since_s
        ),
        default=math.inf,
    )


class FaultUnderLoadContract:
    """The promises a fault under load keeps; subclass it where a `run` fixture exists."""

    def test_load_met_the_fault(self, run: FaultRun) -> None:
        """The fault hit a running load: 503s during it, acknowledged bookings on each side."""
        load = run.phase("load")
        booked = [a.received_s for a in load if a.kind == "book" and a.status == 200]
        assert any(a.status == 503 for a in load)
        assert min(booked) < run.marks["fault"] < max(booked), (booked, run.marks)

    def test_every_5xx_is_503_e103_with_retry_after(self, run: FaultRun) -> None:
        """No request went unanswered, and no 5xx other than 503 E103 with Retry-After."""
        _none(bad_answers(run.phase("load", "settle")))

    def test_answers_come_within_the_redis_timeout(self, run: FaultRun) -> None:
        """Even during the fault, every answer, 503s included, came within the Redis timeout."""
        slowest = slowest_s(run.phase("load"))
        assert slowest < run.redis_timeout_s + LATENCY_MARGIN_S, slowest

    def test_service_recovers_by_itself(self, run: FaultRun) -> None:
        """Writes are answered again within seconds of Redis being back, with no restart."""
        assert run.marks["recovered"] - run.marks["back"] < RECOVERY_LIMIT_S, run.marks

    def test_no_oversell(self, run: FaultRun) -> None:
        """No slot ever showed more active bookings than its capacity."""
        _none(oversold(run))

    def test_no_double_lock_holder(self, run: FaultRun) -> None:
        """No lock was granted to a second key while another could hold it; tokens only grow."""
        _none(double_holders(run.attempts))

    def test_acknowledged_bookings_survive(self, run: FaultRun) -> None:
        """Every booking answered 200 is still there, in the state its answers left it."""
        _none(lost_bookings(run))

    def test_acknowledged_locks_survive(self, run: FaultRun) -> None:
        """Every held lock answered 200 is still on its slot, until the same instant."""
        _none(lost_locks(run))

    def test_counters_hold_acknowledged_plus_at_most_the_503s(self, run: FaultRun) -> None:
        """Before any retry, each slot counts its acknowledged bookings plus at most its 503s."""
        _none(counters_beyond_acknowledged(run))

    def test_retry_with_the_idempotency_key_settles_every_503(self, run: FaultRun) -> None:
        """Retried with their keys, the 503'd bookings settle: counts equal acknowledged ones."""
        _none(unsettled(run))

    def test_fencing_tokens_never_go_back(self, run: FaultRun) -> None:
        """A lock taken after the fault gets a token above every token granted before."""
        _none(stale_fence_tokens(run))

    def test_no_unexpected_failure_in_the_log(self, run: FaultRun) -> None:
        """The service logged no unexpected failure (the E001 path) during the fault."""
        _none(unexpected_failures(run.service_log))
