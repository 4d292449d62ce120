"""Readiness: whether the Redis behind REDIS_URL can serve this pod's traffic.

One server (`redis://`, or the master the Sentinels name) can serve when it
answers, holds every script (they are loaded again when it lost them), is a
primary (`INFO replication` role: a replica refuses every change) and never
evicts (`INFO memory` maxmemory_policy `noeviction`: an evicted lock is a second
holder, an evicted booking a lost one). INFO, not CONFIG: managed Redis often
refuses CONFIG.

On Redis Cluster each shard is judged by its primary: it can serve when it
answers, says `cluster_state:ok`, holds the scripts and never evicts. The pod
is ready while at least one shard answers and every shard that answers can
serve. A shard that does not answer takes only the requests for its own slots
(503 E103); taking every pod out of rotation for it would turn one shard's
outage into everyone's. A shard that answers but evicts, or a cluster that
says it is down, is a state no traffic should go to.

/readyz checks on every probe, and a background job every CHECK_INTERVAL_S, so
that a change made at run time (CONFIG SET maxmemory-policy) is logged within
that time even when nothing probes. Each problem is logged once when it
appears and once when it is gone, not at every check.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio.cluster import ClusterNode, RedisCluster

from service.outage import OUTAGE_ERRORS
from service.scripts import Scripts
from service.store.client import RedisClient

logger = logging.getLogger("slotlock.redis")

CHECK_INTERVAL_S = 10.0
SAFE_POLICY = "noeviction"


class NoShardAnswers(redis_errors.ConnectionError):
    """No primary of the Cluster answered the readiness check."""


class Readiness:
    """Checks the Redis behind the service; logs each problem when it appears and goes."""

    def __init__(
        self, redis: RedisClient, scripts: Scripts, warm_up: Callable[[], Awaitable[None]]
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._warm_up = warm_up
        self._reported: frozenset[str] = frozenset()
        self._info_refused_logged = False
        self._warmed = False  # scripts loaded and key file imported once

    async def warm_up(self) -> None:
        """Load the scripts and import the key file (start-up, and until it worked once)."""
        await self._warm_up()
        self._warmed = True

    async def problems(self) -> list[str]:
        """What keeps Redis from serving now (empty: ready); an outage error if it is away."""
        notices: list[str] = []
        if isinstance(self._redis, RedisCluster):
            if not self._warmed:
                # Needs every primary; the shards that answer get their scripts below.
                with contextlib.suppress(*OUTAGE_ERRORS):
                    await self.warm_up()
            found = await self._cluster_problems(self._redis, notices)
        else:
            found = await self._server_problems()
        self._report(found + notices)
        return found

    async def check(self) -> bool:
        """Check and log (the background job); whether it reached Redis."""
        await self.problems()
        return True

    async def _server_problems(self) -> list[str]:
        if not self._warmed or not await self._scripts.loaded(self._redis):
            await self.warm_up()
        info = await self._info(lambda *args: self._redis.execute_command(*args))
        return _info_problems(info, "redis")

    async def _cluster_problems(self, cluster: RedisCluster, notices: list[str]) -> list[str]:
        """Problems of the shards that answer; those that do not go to `notices`."""
        found: list[str] = []
        answered = 0
        for node in cluster.get_primaries():
            try:
                found += await self._shard_problems(cluster, node)
            except OUTAGE_ERRORS as error:
                notices.append(f"cluster primary {node.name} does not answer ({error}): "
                               "requests for its slots get 503")  # fmt: skip
                continue
            answered += 1
        if not answered:
            raise NoShardAnswers("no Cluster primary answers")
        return found

    async def _shard_problems(self, cluster: RedisCluster, node: ClusterNode) -> list[str]:
        async def on_node(*args: Any) -> Any:
            return await cluster.execute_command(*args, target_nodes=node)

        state = (await on_node("CLUSTER INFO")).get("cluster_state")
        shas = [script.sha for script in self._scripts.all()]
        present = await on_node("SCRIPT EXISTS", *shas)
        for script, loaded in zip(self._scripts.all(), present, strict=True):
            if not loaded:
                await on_node("SCRIPT LOAD", script.script)
        found = _info_problems(await self._info(on_node), f"cluster primary {node.name}")
        if state != "ok":
            found.append(f"cluster primary {node.name} says cluster_state:{state}")
        return found

    async def _info(self, run: Callable[..., Awaitable[Any]]) -> dict[str, Any] | None:
        """INFO memory and replication; None where INFO is refused (fakeredis has none)."""
        try:
            info: dict[str, Any] = await run("INFO", "memory", "replication")
        except redis_errors.ResponseError as error:
            if isinstance(error, OUTAGE_ERRORS):
                raise
            if not self._info_refused_logged:
                self._info_refused_logged = True
                logger.warning("redis refuses INFO (%s): its eviction policy and role go "
                               "unchecked", error)  # fmt: skip
            return None
        return info

    def _report(self, found: list[str]) -> None:
        now = frozenset(found)
        for problem in sorted(now - self._reported):
            logger.error("redis cannot serve: %s", problem)
        for problem in sorted(self._reported - now):
            logger.warning("redis problem resolved: %s", problem)
        self._reported = now


def _info_problems(info: dict[str, Any] | None, where: str) -> list[str]:
    if info is None:
        return []
    found = []
    policy = info.get("maxmemory_policy")
    if policy is not None and policy != SAFE_POLICY:
        found.append(
            f"{where} has maxmemory-policy {policy}: it may evict locks, bookings and "
            f"API keys; set maxmemory-policy {SAFE_POLICY}"
        )
    role = info.get("role")
    if role is not None and role != "master":
        found.append(
            f"{where} is a read-only replica (role:{role}); point REDIS_URL at the primary"
        )
    return found
