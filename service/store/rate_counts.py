"""The rate limits' shared counts: per key, period and window, one counter in Redis.

Each pod adds what it admitted and reads back what every pod did, for all its
active keys in one pipelined round trip (service/ratelimit.py decides).
"""

from __future__ import annotations

from dataclasses import dataclass

from service import keyspace
from service.store.client import RedisClient


@dataclass(frozen=True, slots=True)
class Window:
    """One key's window of one period: `index` counts periods since the epoch."""

    key_hash: str
    period_s: int
    index: int

    def counter(self) -> str:
        """Its counter's Redis key."""
        return keyspace.rate_counter(self.key_hash, self.period_s, self.index)

    def previous(self) -> Window:
        """The window before it."""
        return Window(self.key_hash, self.period_s, self.index - 1)


@dataclass(frozen=True, slots=True)
class Totals:
    """What every pod counted in a window and in the one before."""

    current: int
    previous: int


class RateCounts:
    """INCRBY, PEXPIRE and GET of the counters, pipelined."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis

    async def exchange(
        self, ended: dict[Window, int], current: list[tuple[Window, int]]
    ) -> list[Totals]:
        """Add the counts of windows that `ended` and of the `current` ones; the current
        ones' totals (each kept two periods), in order."""
        pipe = self._redis.pipeline(transaction=False)
        for window, count in ended.items():
            pipe.incrby(window.counter(), count)
        for window, count in current:
            pipe.incrby(window.counter(), count)
            pipe.pexpire(window.counter(), 2 * window.period_s * 1000)
            pipe.get(window.previous().counter())
        replies = (await pipe.execute())[len(ended) :]
        return [
            Totals(int(replies[at]), int(replies[at + 2] or 0)) for at in range(0, len(replies), 3)
        ]
