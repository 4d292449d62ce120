"""What a run creates before it starts: a published resource and its slots, via the API.

Slots are 30 minutes long, back to back from the next whole hour a day ahead,
so a "day" of the calendar holds 48 of them: virtual users browse one day at a
time, as a booking page does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from service.loadtest.client import ApiClient, Reply, created_id

SLOT_S = 1800
DAY_S = 86_400
SLOTS_PER_CALL = 500  # the API's bulk-create limit
SETUP = "setup"


class SetupError(RuntimeError):
    """The service refused to create what the run needs."""


class _Listed(msgspec.Struct):
    data: list[dict[str, object]]


_listed = msgspec.json.Decoder(_Listed)


def iso(epoch_s: float) -> str:
    """An instant as the API writes it: UTC, milliseconds, `Z`."""
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Schedule:
    """The resource a run works on and its slots, in start order."""

    resource_id: str
    slot_ids: list[str]
    first_start_s: int
    capacity: int

    @property
    def days(self) -> int:
        """How many calendar days the slots cover."""
        return max(1, math.ceil(len(self.slot_ids) * SLOT_S / DAY_S))

    def day(self, index: int) -> tuple[str, str]:
        """`start_date` and `end_date` query values that select one day of slots."""
        start_s = self.first_start_s + index * DAY_S
        return iso(start_s), iso(start_s + DAY_S)


async def create_schedule(
    api: ApiClient, name: str, slot_count: int, capacity: int, now_s: float
) -> Schedule:
    """A new published resource with `slot_count` slots of `capacity` places each."""
    resource_id = created_id(_checked(await api.call(SETUP, "POST", "/resources", {"name": name})))
    _checked(await api.call(SETUP, "POST", f"/resources/{resource_id}/publish", b""))
    first_start_s = (int(now_s) // 3600 + 1) * 3600 + DAY_S
    slot_ids: list[str] = []
    for offset in range(0, slot_count, SLOTS_PER_CALL):
        count = min(SLOTS_PER_CALL, slot_count - offset)
        specs = [_spec(first_start_s + (offset + n) * SLOT_S, capacity) for n in range(count)]
        body = {"resource_id": resource_id, "slots": specs}
        reply = _checked(await api.call(SETUP, "POST", "/slots", body))
        slot_ids += [str(slot["id"]) for slot in _listed.decode(reply.body).data]
    return Schedule(resource_id, slot_ids, first_start_s, capacity)


def _spec(start_s: int, capacity: int) -> dict[str, object]:
    return {"start_date": iso(start_s), "end_date": iso(start_s + SLOT_S), "capacity": capacity}


def _checked(reply: Reply) -> Reply:
    if not reply.ok:
        detail = reply.body[:300].decode(errors="replace") or "no answer"
        raise SetupError(f"setup request refused ({reply.status}): {detail}")
    return reply
