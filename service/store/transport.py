"""How script calls reach Redis: one interface, one implementation per wire path.

    RawTransport (raw_redis.py)      one pipelined hiredis connection to one plain server
                                     (redis://, unix://): the hot path
    ClientTransport (redis_py.py)    redis-py's pipelines: TLS, Sentinel, Cluster, fakeredis

service/connect.py picks one from REDIS_URL (`transport_for`), never by looking
inside a client. Both answer alike, and tests/test_transport_contract.py holds
each to that: an error reply comes back in its place as redis-py's exception for
its code (service/outage.py), and a Redis that cannot be reached raises redis-py's
ConnectionError or TimeoutError (503 E103).

What is the same on both paths lives here: EVALSHA, the NOSCRIPT fallback and
the WAIT for replicas.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

Command = tuple[Any, ...]


class Script(Protocol):
    """A registered Lua script: its source, its SHA1 and whether it may write."""

    @property
    def script(self) -> str: ...
    @property
    def sha(self) -> str: ...
    @property
    def writes(self) -> bool: ...


class ScriptCall(Protocol):
    """One call of a script with its KEYS and ARGV."""

    @property
    def script(self) -> Script: ...
    @property
    def keys(self) -> list[Any]: ...
    @property
    def args(self) -> list[Any]: ...


class ReplicaAcksMissing(RedisConnectionError):
    """Fewer replicas than SLOTLOCK_REPLICA_ACKS confirmed a write in time.

    The write was applied on the primary and may or may not survive a failover,
    so the client is told 503 E103 and should retry with its Idempotency-Key.
    """


class Transport(ABC):
    """Sends commands to Redis, a batch per write, and hands back every reply in order."""

    @abstractmethod
    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """The replies to `commands`, sent together; an error reply is returned in its
        place as its redis-py exception (NoScriptError, ReadOnlyError...), not raised.

        Raises redis-py's ConnectionError or TimeoutError when Redis cannot be reached.
        """

    @abstractmethod
    async def load_script(self, source: str) -> None:
        """SCRIPT LOAD `source` where the calls go (on Cluster: every primary)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close what the transport opened of its own; a later call opens it again."""

    async def execute(self, *command: Any) -> Any:
        """One command's reply; an error reply is raised."""
        (reply,) = await self.pipeline([command])
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def run_scripts(
        self, calls: Sequence[ScriptCall], replica_acks: int = 0, ack_timeout_ms: int = 1000
    ) -> list[Any]:
        """Each call's reply (or error, in place), EVALSHA in one write.

        A restarted or promoted Redis lost its scripts: NOSCRIPT means the call did
        not run, so loading the script and sending the call again is safe. With
        `replica_acks` > 0 a batch that may write ends with WAIT, and its writers get
        ReplicaAcksMissing when fewer replicas confirm in `ack_timeout_ms`.
        """
        replies = await self.pipeline(evalsha(calls, replica_acks, ack_timeout_ms))
        for reply in replies:
            if isinstance(reply, Exception):  # a refusal, NOSCRIPT or LOADING: rare
                return await self.after_errors(calls, replies, replica_acks, ack_timeout_ms)
        return _acknowledged(calls, replies, replica_acks)

    def write_scripts(self, calls: Sequence[ScriptCall]) -> asyncio.Future[list[Any]] | None:
        """The batcher's fast path: EVALSHA for each call written now, no WAIT; the
        future of the replies as they came (errors in place: see `after_errors`).

        None when this transport cannot write at once (no open connection, or no such
        path at all): run_scripts then. The raw transport has the path; a batch that
        takes it needs no task of its own (a task, its coroutines and two of its steps
        per batch were about a tenth of a script call's CPU in the worker).
        """
        return None

    async def after_errors(
        self,
        calls: Sequence[ScriptCall],
        replies: list[Any],
        replica_acks: int,
        ack_timeout_ms: int,
    ) -> list[Any]:
        """What run_scripts makes of replies with an error among them: LOADING or NOAUTH
        raised for all, a lost script loaded and its calls sent again, WAIT's verdict."""
        _raise_outage(replies)
        replies = _acknowledged(calls, replies, replica_acks)
        missing = [call for call, reply in zip(calls, replies, strict=True) if _no_script(reply)]
        if not missing:
            return replies
        for script in {id(call.script): call.script for call in missing}.values():
            await self.load_script(script.script)
        again = await self.pipeline(evalsha(missing, replica_acks, ack_timeout_ms))
        _raise_outage(again)
        second = {
            id(call): reply
            for call, reply in zip(
                missing, _acknowledged(missing, again, replica_acks), strict=True
            )
        }
        return [second.get(id(call), reply) for call, reply in zip(calls, replies, strict=True)]


def evalsha(calls: Sequence[ScriptCall], replica_acks: int, ack_timeout_ms: int) -> list[Command]:
    """EVALSHA for each call, then WAIT when replicas must confirm and a script may write."""
    commands: list[Command] = [
        ("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args) for call in calls
    ]
    if replica_acks > 0 and any(call.script.writes for call in calls):
        commands.append(("WAIT", replica_acks, ack_timeout_ms))
    return commands


def _raise_outage(replies: list[Any]) -> None:
    for reply in replies:
        if isinstance(reply, RedisConnectionError):
            # LOADING or NOAUTH: Redis serves no one now. redis-py raises these for the
            # whole pipeline, so every transport does.
            raise reply


def _acknowledged(calls: Sequence[ScriptCall], replies: list[Any], replica_acks: int) -> list[Any]:
    """The calls' replies without WAIT's, writes refused when too few replicas confirmed."""
    if len(replies) == len(calls):
        return replies  # no WAIT was sent
    acks = replies.pop()
    if isinstance(acks, int) and acks >= replica_acks:
        return replies
    missing = ReplicaAcksMissing(f"{acks} of {replica_acks} replicas confirmed")
    return [
        missing if call.script.writes and not isinstance(reply, Exception) else reply
        for call, reply in zip(calls, replies, strict=True)
    ]


def _no_script(reply: Any) -> bool:
    return isinstance(reply, NoScriptError)
