"""Instants: ISO 8601 in, UTC milliseconds inside; out as UTC `...mmmZ`, or a zone's local time."""

from __future__ import annotations

import functools
import time
import zoneinfo
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

Clock = Callable[[], int]
"""Returns the current time in milliseconds since the epoch; injected for tests."""


def system_clock_ms() -> int:
    """Wall-clock milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def parse_instant_ms(text: str) -> int:
    """ISO 8601 with any offset (none means UTC) to epoch milliseconds.

    Raises ValueError with a plain-words reason for anything else.
    """
    if not 10 <= len(text) <= 40:
        raise ValueError("is not an ISO 8601 timestamp")
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError("is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MS


@functools.lru_cache(maxsize=65536)
def format_instant(instant_ms: int) -> str:
    """Epoch milliseconds as UTC ISO 8601 with milliseconds and `Z`.

    Cached: a slot's four timestamps are rendered on every lock and unlock, and
    strftime was a visible share of the hot path.
    """
    moment = _EPOCH + instant_ms * _ONE_MS
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant_ms % 1000:03d}Z"


@functools.lru_cache(maxsize=65536)
def format_local_instant(instant_ms: int, timezone: str) -> str:
    """Epoch milliseconds in `timezone`, to the second, with its offset then (`+02:00`).

    Cached like format_instant: a slot's dates are rendered on every lock and unlock.
    Where the zone cannot be written in ISO 8601 the same instant is shown in UTC
    (`+00:00`): a date its offset pushes out of years 1..9999, an offset with seconds
    (local mean time, before about 1900), a zone that is unknown (none is ever stored).
    """
    moment = _EPOCH + (instant_ms // 1000) * _ONE_S
    try:
        local = moment.astimezone(_zone(timezone))
    except OverflowError:
        return moment.isoformat()
    offset = local.utcoffset()
    if offset is None or offset.seconds % 60:
        return moment.isoformat()
    return local.isoformat()


_ONE_S = timedelta(seconds=1)


@functools.lru_cache(maxsize=1024)
def _zone(name: str) -> tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return UTC
