"""Two-band sorted sets (lua/lib/bands.lua): one index answers a two-valued filter.

A member of the first band ("in": an open slot, an active booking, a draft
resource) is scored by its sort key (ms since the epoch); one of the second band
by the key plus 2^50. Every instant of years 1 to 9999 lies within 2^49 ms of the
epoch, so the bands never meet and each score is an exact integer in a double.
"""

from __future__ import annotations

BAND_SIZE = 1 << 50
BAND_HALF = 1 << 49


def band_score(sort_ms: int, is_in: bool) -> int:
    """The score of a sort key in the first band (is_in) or the second."""
    return sort_ms if is_in else sort_ms + BAND_SIZE


def sort_key_of(score: float) -> int:
    """The sort key of a score from either band."""
    value = int(score)
    return value - BAND_SIZE if value >= BAND_HALF else value


def band_bounds(is_in: bool) -> tuple[int, int]:
    """The lowest and highest score a band can hold."""
    offset = 0 if is_in else BAND_SIZE
    return offset - BAND_HALF, offset + BAND_HALF
