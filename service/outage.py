"""Redis outages: which errors mean "Redis is unreachable", logged once per outage."""

from __future__ import annotations

import logging

from redis import exceptions as redis_errors

logger = logging.getLogger("slotlock.redis")

# Everything a broken, restarting, failing-over or unreachable Redis can raise
# through redis-py. None of them says the request was wrong: each is a 503 E103.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # includes BusyLoadingError, AuthenticationError
    redis_errors.TimeoutError,
    redis_errors.ClusterError,  # ClusterDownError, MasterDownError
    redis_errors.TryAgainError,
    redis_errors.ReadOnlyError,  # a demoted master during failover
    redis_errors.MovedError,
    redis_errors.AskError,
    redis_errors.SlotNotCoveredError,
    OSError,
    TimeoutError,
)


class OutageLog:
    """Logs the start and the end of an outage, not every failed request in between."""

    def __init__(self) -> None:
        self.in_outage = False
        self.failed_requests = 0

    def failure(self, error: BaseException) -> None:
        """A request failed because Redis did not answer."""
        self.failed_requests += 1
        if not self.in_outage:
            self.in_outage = True
            logger.error("redis unreachable: %s: %s", type(error).__name__, error)

    def success(self) -> None:
        """A request reached Redis again."""
        if self.in_outage:
            self.in_outage = False
            logger.warning("redis reachable again after %d failed requests", self.failed_requests)
            self.failed_requests = 0
