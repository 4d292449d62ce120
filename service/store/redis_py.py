"""The transport over redis-py's client: TLS, Sentinel, Cluster and fakeredis (memory://).

redis-py's pipelines route each EVALSHA by its keys on Cluster, follow the
master a Sentinel names, and classify error replies with its parser (which
service/outage.py teaches slotlock's three extra codes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.redis_clients import closed_under
from service.store.client import RedisClient
from service.store.transport import Command, Transport


class ClientTransport(Transport):
    """Sends each batch as one non-transactional pipeline of a redis-py client."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """One pipeline, run whole; error replies come back in place."""
        pipe = self._redis.pipeline(transaction=False)
        for command in commands:
            # execute_command, not evalsha: redis-py blocks the latter in cluster pipelines
            # (a script without keys has no slot), and every slotlock script has keys.
            pipe.execute_command(*command)
        try:
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        except RuntimeError as error:
            raise closed_under(error) from error  # written to a connection just closed
        return replies

    async def load_script(self, source: str) -> None:
        """SCRIPT LOAD through the client: on Cluster, redis-py sends it to every primary."""
        await self._redis.script_load(source)

    async def aclose(self) -> None:
        """Nothing of its own to close: the client's pool belongs to whoever made the client."""
