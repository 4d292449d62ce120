"""Per-API-key rate limits that hold across pods, without a Redis call per request.

The `limits` library would be the natural choice, but every `hit` of its Redis
storage is a round trip of its own, which would double the cost of lock,
unlock and book (each is exactly one round trip). So each pod decides locally
and shares its counts through Redis in batches:

- the limit is a sliding window counter (the estimate `limits` also uses):
  previous window's total, weighted by how much of it still overlaps the last
  period, plus the current window's total;
- a pod adds its own requests to the totals at once, and every `flush`
  (0.1 s) INCRBYs them into `sl:{rl:..}:<key>:<period>:<window>` and reads back
  the totals all pods have written.

A key can therefore overshoot by what other pods admitted in the last flush
interval (at most pods x limit x 0.1 s); a single pod never overshoots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from service.auth import Caller
from service.clock import Clock
from service.errors import RateLimited
from service.settings import RateLimit
from service.store.rate_counts import RateCounts, Window

FLUSH_INTERVAL_S = 0.1


@dataclass(slots=True)
class _Window:
    """What this pod knows of one key's counts."""

    index: int
    current_total: int = 0  # this window, all pods, as of the last flush
    previous_total: int = 0  # the window before, all pods
    unflushed: int = 0  # admitted here since the last flush


class RateLimiter:
    """Admits or refuses (429 E062) each authenticated request."""

    def __init__(self, counts: RateCounts, clock: Clock, limits: dict[str, RateLimit]) -> None:
        self._counts = counts
        self._clock = clock
        self._limits = limits  # by scope: "public", "secret"
        self._windows: dict[tuple[str, int], _Window] = {}
        self._outbox: dict[Window, int] = {}  # counts of windows that ended before their flush

    def admit(self, caller: Caller) -> None:
        """Count the request, or refuse it with Retry-After when the key is over its limit."""
        limit = self._limits[caller.scope]
        period_ms = limit.period_s * 1000
        now_ms = self._clock()
        window = self._window(caller.key_hash, limit, now_ms // period_ms)
        overlap = 1 - (now_ms % period_ms) / period_ms
        estimate = window.previous_total * overlap + window.current_total + window.unflushed
        if estimate >= limit.amount:
            retry_after_ms = period_ms - now_ms % period_ms
            raise RateLimited(
                f"too many requests for this key (limit {limit})",
                retry_after_s=math.ceil(retry_after_ms / 1000),
            )
        window.unflushed += 1

    def _window(self, key_hash: str, limit: RateLimit, index: int) -> _Window:
        slot = (key_hash, limit.period_s)
        window = self._windows.get(slot)
        if window is None or window.index != index:
            previous = 0
            if window is not None:
                if window.unflushed:
                    ended = Window(key_hash, limit.period_s, window.index)
                    self._outbox[ended] = self._outbox.get(ended, 0) + window.unflushed
                if window.index == index - 1:
                    previous = window.current_total + window.unflushed
            window = _Window(index, previous_total=previous)
            self._windows[slot] = window
        return window

    async def flush(self) -> bool:
        """Share this pod's counts and learn every pod's totals: one pipelined round trip.

        Whether it reached Redis (with nothing to share it does not try).
        """
        windows = list(self._windows.items())
        outbox, self._outbox = self._outbox, {}
        if not windows and not outbox:
            return False
        sent = [window.unflushed for _, window in windows]
        current = [
            (Window(key_hash, period_s, window.index), window.unflushed)
            for (key_hash, period_s), window in windows
        ]
        totals = await self._counts.exchange(outbox, current)
        for (_, window), count, total in zip(windows, sent, totals, strict=True):
            window.unflushed -= count  # requests admitted while the pipeline ran stay
            window.current_total = total.current
            window.previous_total = max(window.previous_total, total.previous)
        self._forget_idle()
        return True

    def _forget_idle(self) -> None:
        """Drop keys that sent nothing for two windows, so memory follows active keys."""
        now_ms = self._clock()
        for slot, window in list(self._windows.items()):
            period_ms = slot[1] * 1000
            if window.index < now_ms // period_ms - 1 and not window.unflushed:
                del self._windows[slot]
