"""redis-py clients that keep up with a moving topology: a Sentinel master that
changes, a Cluster whose slots move. Each subclass works around one redis-py
behaviour that a test in tests/test_fault_topology_*.py or test_fault_load_*.py
shows; service/connect.py builds them from REDIS_URL.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

logger = logging.getLogger("slotlock.redis")


class OutageAwareRedis(Redis):
    """A client of one server (plain, or the Sentinel master) whose commands and pipelines,
    written to a connection that closed a moment before, fail as an outage (503 E103).

    Redis killed under load: redis-py reconnects, and its HELLO can be written to the new
    transport just as uvloop closes it; uvloop answers with RuntimeError ("the handler is
    closed"), which would be a 500 (tests/test_fault_load_standalone.py saw one cancel in
    a run). Script calls on the raw path have their own check (store/raw_redis.py).
    """

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run one command; a connection closed under it is an outage."""
        with closed_under_is_outage():
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        """A pipeline whose connection closed under it is an outage too."""
        return OutageAwarePipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


class OutageAwarePipeline(Pipeline):
    """redis-py's Pipeline, for OutageAwareRedis."""

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Run the commands; a connection closed under them is an outage."""
        with closed_under_is_outage():
            return await super().execute(raise_on_error)


class SentinelMaster(OutageAwareRedis):
    """The current master's client; closing it also closes the connections to the Sentinels."""

    sentinels: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Close the master's pool, then the Sentinel clients."""
        await super().aclose(close_connection_pool)
        if self.sentinels is not None:
            await self.sentinels.aclose()


class FollowingSentinelPool(SentinelConnectionPool):
    """Asks the Sentinels where the master is at least every RECHECK_S, not only on connect.

    After a failover the old master, if alive, keeps accepting writes until a Sentinel
    demotes it (its INFO period, ~10 s), and those writes are then lost. redis-py asks
    the Sentinels only when it opens a connection, so its pooled connections would keep
    writing there; this pool moves a connection to the new master before handing it out.
    """

    RECHECK_S = 1.0
    _checked_at = -RECHECK_S

    async def get_connection(self, *args: Any, **options: Any) -> Any:
        """A connection to the master the Sentinels name now (as of RECHECK_S ago at most)."""
        await self._recheck_master()
        connection = await super().get_connection(*args, **options)  # type: ignore[no-untyped-call]
        if self.master_address is None or (connection.host, connection.port) == self.master_address:
            return connection
        try:
            await connection.disconnect()
            await connection.connect()  # asks the Sentinels again
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def _recheck_master(self) -> None:
        now_s = time.monotonic()
        if now_s - self._checked_at < self.RECHECK_S:
            return
        self._checked_at = now_s
        # Sentinels out of reach do not stop a reachable master from serving.
        with contextlib.suppress(redis_errors.ConnectionError, redis_errors.TimeoutError):
            await self.get_master_address()  # type: ignore[no-untyped-call]  # drops idle ones if moved


class ReroutingCluster(RedisCluster):
    """RedisCluster whose pipelines survive a failover.

    redis-py marks the cluster for rediscovery when a single command cannot reach its
    node, but not when a pipeline cannot (redis-py #3130): with zero retries, a request
    made only of pipelines would keep dialling a dead primary after its replica took
    over. (Script calls travel in these pipelines: service/store/redis_py.py.)
    """

    async def initialize(self, *args: Any, **kwargs: Any) -> RedisCluster:
        """Discover the nodes; no reachable node (or no full slot map) is an outage: 503."""
        try:
            return await super().initialize(*args, **kwargs)
        except redis_errors.RedisClusterException as error:
            # redis-py raises its generic cluster error here, which also means "bug"
            # elsewhere (a cross-slot command); raised as is it would be a 500, and at
            # start-up it would stop the service instead of leaving /readyz at 503.
            raise redis_errors.ConnectionError(f"cluster discovery failed: {error}") from error

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """Run one command; a connection closed under it by a cluster reset is an outage."""
        with closed_under_is_outage():
            return await super().execute_command(*args, **kwargs)

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        """A non-transactional pipeline that rediscovers the cluster after failures."""
        if transaction or shard_hint:
            return super().pipeline(transaction, shard_hint)
        # redis-py builds its own ClusterPipeline the same way; mypy sees an abstract base.
        return ReroutingPipeline(self, transaction)  # type: ignore[abstract]


class ReroutingPipeline(ClusterPipeline):
    """A non-transactional cluster pipeline; see ReroutingCluster."""

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        """Run the commands, grouped by node; after a connection failure, rediscover first."""
        try:
            replies = await super().execute(raise_on_error, allow_redirections)
        except _UNREACHABLE:
            self._rediscover()
            raise
        except (AttributeError, RuntimeError) as error:
            self._rediscover()
            raise closed_under(error) from error
        if any(isinstance(reply, _UNREACHABLE) for reply in replies):
            self._rediscover()
        return replies

    def _rediscover(self) -> None:
        # What RedisCluster._execute_command does after a single command failed so. A
        # private flag: pyproject pins redis below 9, tests/test_private_names.py checks it.
        self.cluster_client._initialize = True


_UNREACHABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)


# How a command fails when its connection is closed under it: the stream is gone
# (redis-py), or the transport is closed (uvloop).
_VANISHED = ("'NoneType' object has no attribute", "the handler is closed")


@contextlib.contextmanager
def closed_under_is_outage() -> Iterator[None]:
    """Around a command: its connection closed under it (closed_under) is raised as an
    outage; any other AttributeError or RuntimeError as it is."""
    try:
        yield
    except (AttributeError, RuntimeError) as error:
        raise closed_under(error) from error


def closed_under(error: Exception) -> redis_errors.ConnectionError:
    """The outage behind an error on a vanished connection; any other error is re-raised.

    A command written to a connection closed a moment before (a Redis or a Sentinel
    master killed under load) fails the same way, before anything reached Redis.
    On CLUSTERDOWN or an uncovered slot (a failover under way) redis-py resets the whole
    client: RedisCluster.aclose disconnects every connection of every node, in use or not.
    A command on another connection then fails with AttributeError or RuntimeError,
    which would be a 500 instead of a 503.
    """
    if not any(sign in str(error) for sign in _VANISHED):
        raise error
    return redis_errors.ConnectionError(f"connection closed under the command: {error}")
