"""The raw transport: one pipelined asyncio connection with a hiredis parser.

redis-py's asyncio client spends 40-60 us of CPU on every call (connection
checkout, command packing, response reading through streams); on one worker
that was more than the rest of a lock request together. Script batches need
far less: write a few EVALSHA commands, read as many replies. This connection
does only that, for a single server reached by `redis://` or `unix://`
(service/connect.py chooses it from REDIS_URL); every other form (TLS, Sentinel,
Cluster, fakeredis) goes through redis-py (service/store/redis_py.py).

Batches are written as soon as they are handed over and answered in order, so
several can be on the wire at once. Failures keep redis-py's meaning, so the
rest of the service sees one set of errors: a broken or silent connection
raises redis ConnectionError / TimeoutError for every batch in flight (503 E103),
and the next batch opens a new connection.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.outage import classify_reply_error
from service.store.transport import Command, ScriptCall, Transport, evalsha


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """Where one Redis server listens and how to log in."""

    host: str = "127.0.0.1"
    port: int = 6379
    unix_path: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int = 0

    @classmethod
    def from_url(cls, url: str) -> ServerAddress:
        """The server a redis:// or unix:// URL names, read as redis-py's client reads it."""
        found = parse_url(url)
        return cls(
            host=str(found.get("host") or "127.0.0.1"),
            port=int(found.get("port") or 6379),
            unix_path=found.get("path"),
            username=found.get("username"),
            password=found.get("password"),
            db=int(found.get("db") or 0),
        )


class _Batch:
    """Replies expected for one write, collected in order, and when Redis must have sent them."""

    __slots__ = ("deadline", "done", "expected", "replies")

    def __init__(self, expected: int, done: asyncio.Future[list[Any]], deadline: float) -> None:
        self.expected = expected
        self.replies: list[Any] = []
        self.done = done
        self.deadline = deadline  # loop time


class _Protocol(asyncio.Protocol):
    """Feeds bytes to hiredis and hands each batch its replies, or a timeout when Redis
    leaves one unanswered for `timeout_s`.

    One timer watches the connection, not one per batch (asyncio.timeout around each
    batch was a visible share of a lock's Redis work): replies come in order, so only
    the oldest batch can be overdue, and the timer is set for its deadline.
    """

    def __init__(self, timeout_s: float) -> None:
        self.transport: asyncio.Transport | None = None
        self.pending: deque[_Batch] = deque()
        self.reader = hiredis.Reader(encoding="utf-8", replyError=ResponseError)
        self.closed = False
        self.timeout_s = timeout_s
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        pending = self.pending
        while pending:
            reply = self.reader.gets()
            if reply is False:
                return
            batch = pending[0]
            batch.replies.append(
                classify_reply_error(reply) if isinstance(reply, ResponseError) else reply
            )
            if len(batch.replies) == batch.expected:
                pending.popleft()
                if not batch.done.done():
                    batch.done.set_result(batch.replies)

    def connection_lost(self, error: Exception | None) -> None:
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        failure = RedisConnectionError(f"connection to Redis lost: {error or 'closed'}")
        while self.pending:
            batch = self.pending.popleft()
            if not batch.done.done():
                batch.done.set_exception(failure)

    def is_open(self) -> bool:
        """Whether a batch can still be written: an aborted transport closes at once, but
        connection_lost (which sets `closed`) comes a loop turn later, and uvloop answers
        a write in between with RuntimeError (a 500) instead of a connection error."""
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def send_commands(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        """Write `commands` at once; the future of their replies, in order."""
        return self.send(b"".join([pack(command) for command in commands]), len(commands))

    def send(self, payload: bytes, expected: int) -> asyncio.Future[list[Any]]:
        if not self.is_open():
            raise RedisConnectionError("connection to Redis lost: closing")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any]] = loop.create_future()
        batch = _Batch(expected, done, loop.time() + self.timeout_s)
        self.pending.append(batch)
        if self._watchdog is None:
            self._watchdog = loop.call_at(batch.deadline, self._check_silence)
        assert self.transport is not None
        self.transport.write(payload)
        return done

    def _check_silence(self) -> None:
        """Fail the oldest batch if it is overdue, and drop the connection: a Redis that
        stayed silent that long is not answering (the batches behind it then fail as a lost
        connection, and the next batch opens a new one). Otherwise look again at its deadline."""
        self._watchdog = None
        if not self.pending:
            return
        oldest, loop = self.pending[0], asyncio.get_running_loop()
        if loop.time() < oldest.deadline:
            self._watchdog = loop.call_at(oldest.deadline, self._check_silence)
            return
        self.pending.popleft()
        if not oldest.done.done():
            oldest.done.set_exception(RedisTimeoutError("Redis did not answer in time"))
        assert self.transport is not None
        self.transport.abort()


class RawTransport(Transport):
    """Sends batches of commands over one pipelined connection."""

    def __init__(self, address: ServerAddress, timeout_s: float) -> None:
        self.address = address
        self._timeout_s = timeout_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock = asyncio.Lock()

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Replies to `commands`, written at once and answered in order; errors in place."""
        # An open connection is found without a coroutine; only a reconnection awaits.
        protocol = self._open() or await self._reconnected()
        return await protocol.send_commands(commands)

    def write_scripts(self, calls: Sequence[ScriptCall]) -> asyncio.Future[list[Any]] | None:
        """EVALSHA for each call, written now if the connection is open (else None)."""
        protocol = self._open()
        if protocol is None:
            return None
        return protocol.send_commands(evalsha(calls, 0, 0))

    async def load_script(self, source: str) -> None:
        """SCRIPT LOAD on this connection's server."""
        await self.execute("SCRIPT", "LOAD", source)

    async def aclose(self) -> None:
        """Close the connection; the next batch would open a new one."""
        if self._protocol is not None:
            self._drop(self._protocol)

    async def _reconnected(self) -> _Protocol:
        """An open connection, opened by the first caller to find none (the others wait)."""
        async with self._connecting:
            protocol = self._open()
            if protocol is None:
                protocol = self._protocol = await self._connect()
            return protocol

    def _open(self) -> _Protocol | None:
        """The connection, if it is open."""
        protocol = self._protocol
        return protocol if protocol is not None and protocol.is_open() else None

    async def _connect(self) -> _Protocol:
        address, loop = self.address, asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout_s):
                if address.unix_path is not None:
                    _, protocol = await loop.create_unix_connection(
                        self._new_protocol, address.unix_path
                    )
                else:
                    _, protocol = await loop.create_connection(
                        self._new_protocol, address.host, address.port
                    )
                await self._log_in(protocol)
        except (OSError, TimeoutError) as error:
            raise RedisConnectionError(f"cannot reach Redis: {type(error).__name__}") from None
        return protocol

    def _new_protocol(self) -> _Protocol:
        return _Protocol(self._timeout_s)

    async def _log_in(self, protocol: _Protocol) -> None:
        address = self.address
        commands: list[Command] = []
        if address.password is not None:
            credentials = (
                (address.username, address.password) if address.username else (address.password,)
            )
            commands.append(("AUTH", *credentials))
        if address.db:
            commands.append(("SELECT", address.db))
        if commands:
            for reply in await protocol.send_commands(commands):
                if isinstance(reply, Exception):
                    self._drop(protocol)
                    raise RedisConnectionError(f"Redis refused the login: {reply}")

    def _drop(self, protocol: _Protocol) -> None:
        if protocol.transport is not None:
            protocol.transport.abort()  # connection_lost fails whatever is still waiting
        if self._protocol is protocol:
            self._protocol = None


def pack(command: tuple[Any, ...]) -> bytes:
    """One command (str, int or bytes items) in RESP, packed by hiredis in C.

    (A third of the CPU of packing it in Python, which was a tenth of a lock's Redis work.)
    """
    packed: bytes = hiredis.pack_command(command)
    return packed
