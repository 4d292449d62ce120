"""Instants: ISO 8601 in, UTC milliseconds inside, `...T..:..:..mmmZ` out."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

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
