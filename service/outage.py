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


# What each error code a script call can meet stands for, as redis-py's exception
# classes (its parser maps the same codes to the same classes: the contract tests
# hold both transports to this table). The last three are slotlock's own.
REPLY_ERRORS: dict[str, type[redis_errors.RedisError]] = {
    "ERR": redis_errors.ResponseError,  # a script's own error, or a command refused
    "NOSCRIPT": redis_errors.NoScriptError,
    "READONLY": redis_errors.ReadOnlyError,
    "LOADING": redis_errors.BusyLoadingError,
    "OOM": redis_errors.OutOfMemoryError,
    "MASTERDOWN": redis_errors.MasterDownError,
    "CLUSTERDOWN": redis_errors.ClusterDownError,
    "TRYAGAIN": redis_errors.TryAgainError,
    "MOVED": redis_errors.MovedError,
    "ASK": redis_errors.AskError,
    "CROSSSLOT": redis_errors.ClusterCrossSlotError,
    "EXECABORT": redis_errors.ExecAbortError,
    "NOPERM": redis_errors.NoPermissionError,
    "NOAUTH": redis_errors.AuthenticationError,
    "WRONGPASS": redis_errors.AuthenticationError,
    "NOREPLICAS": NoReplicasError,
    "MISCONF": PersistenceError,
    "BUSY": BusyScriptError,
}
_OWN_CODES = ("NOREPLICAS", "MISCONF", "BUSY")

# redis-py has no class for slotlock's three and raises a bare ResponseError (a 500)
# for every command it sends; its parsers look reply codes up in this table, a
# private name (pyproject pins redis below its next major; tests/test_private_names.py).
for _code in _OWN_CODES:
    BaseParser.EXCEPTION_CLASSES.setdefault(_code, REPLY_ERRORS[_code])


def classify_reply_error(error: redis_errors.ResponseError) -> redis_errors.RedisError:
    """The exception an error reply stands for (NOSCRIPT, READONLY, BUSY...), as redis-py's
    parser makes it: the code's class with the rest of the message, else the reply as is."""
    code, _, rest = str(error).partition(" ")
    found = REPLY_ERRORS.get(code)
    return error if found is None else found(rest)


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
