"""Redis outages: which errors mean "Redis is unreachable", logged once per outage."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis import exceptions as redis_errors
from redis._parsers.base import BaseParser

logger = logging.getLogger("slotlock.redis")


class NoReplicasError(redis_errors.ResponseError):
    """NOREPLICAS: the primary has fewer good replicas than its min-replicas-to-write.

    Redis refuses a script at its first write, so nothing was written: the primary
    lost its replicas (a partition, or a failover that left it behind).
    """


class PersistenceError(redis_errors.ResponseError):
    """MISCONF: Redis cannot persist to disk and refuses writes until it can again."""


class BusyScriptError(redis_errors.ResponseError):
    """BUSY: Redis runs someone else's script past its busy-reply-threshold.

    Until that script ends (or SCRIPT KILL stops it) Redis answers every command so,
    reads included; nothing was run. Not BusyLoadingError, which is LOADING.
    """


# redis-py has no class for these replies and raises a bare ResponseError (a 500);
# its parsers, and the raw connection's (service/store/raw_redis.py), look reply
# codes up in this table.
BaseParser.EXCEPTION_CLASSES.setdefault("NOREPLICAS", NoReplicasError)
BaseParser.EXCEPTION_CLASSES.setdefault("MISCONF", PersistenceError)
BaseParser.EXCEPTION_CLASSES.setdefault("BUSY", BusyScriptError)


def classify_reply_error(error: redis_errors.ResponseError) -> redis_errors.ResponseError:
    """The redis-py exception an error reply stands for (LOADING, READONLY, NOSCRIPT...)."""
    classified: redis_errors.ResponseError = BaseParser.parse_error(str(error))  # type: ignore[no-untyped-call]
    return classified


# Everything a broken, restarting, failing-over or unreachable Redis can raise
# through redis-py. None of them says the request was wrong: each is a 503 E103.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # includes BusyLoadingError, AuthenticationError
    redis_errors.TimeoutError,
    redis_errors.ClusterError,  # ClusterDownError, MasterDownError
    redis_errors.TryAgainError,
    redis_errors.ReadOnlyError,  # a demoted master during failover
    NoReplicasError,  # a master cut off from its replicas (min-replicas-to-write)
    PersistenceError,  # a disk Redis cannot write to
    BusyScriptError,  # another client's long script holds Redis
    redis_errors.OutOfMemoryError,  # a full Redis: nothing the client can fix, retry later
    redis_errors.MovedError,
    redis_errors.AskError,
    redis_errors.SlotNotCoveredError,
    OSError,
    TimeoutError,
)


class OutageLog:
    """Logs the start and the end of an outage once, not every failed call in between.

    One log serves the process: requests and background jobs report to it. An
    outage ends once calls succeed and none failed for QUIET_S, so a Redis that
    refuses only some calls (writes when out of memory, one Cluster shard) is one
    outage, not a start and an end per request. A success that comes sooner
    checks again when QUIET_S has passed, so the end is logged without more
    traffic.
    """

    QUIET_S = 2.0

    def __init__(self, clock_s: Callable[[], float] = time.monotonic) -> None:
        self.in_outage = False
        self.failed_requests = 0
        self._clock_s = clock_s
        self._failed_at_s = 0.0
        self._succeeded_at_s = 0.0
        self._check_pending = False

    def failure(self, error: BaseException) -> None:
        """A call failed because Redis could not take it."""
        self.failed_requests += 1
        self._failed_at_s = self._clock_s()
        if not self.in_outage:
            self.in_outage = True
            logger.error("redis unreachable: %s: %s", type(error).__name__, error)

    def success(self) -> None:
        """A call reached Redis."""
        if not self.in_outage:
            return
        self._succeeded_at_s = self._clock_s()
        quiet_for_s = self._succeeded_at_s - self._failed_at_s
        if quiet_for_s >= self.QUIET_S:
            self._end()
        elif not self._check_pending:
            self._check_pending = True
            asyncio.get_running_loop().call_later(self.QUIET_S - quiet_for_s, self._check)

    def _check(self) -> None:
        self._check_pending = False
        if self.in_outage and self._succeeded_at_s > self._failed_at_s:
            self.success()  # ends it now, or checks again after the latest failure

    def _end(self) -> None:
        self.in_outage = False
        logger.warning("redis reachable again after %d failed requests", self.failed_requests)
        self.failed_requests = 0
