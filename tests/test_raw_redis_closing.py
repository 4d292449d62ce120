"""A batch sent on a closing raw connection fails as an outage; the next one reconnects."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.store.raw_redis import RawTransport, ServerAddress, pack
from tests.redis_servers import RedisServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server of this module's own."""
    started = RedisServer.start_new(Path(tmp_path_factory.mktemp("raw-closing")))
    yield started
    started.kill()


async def _aborted_then_sent(port: int) -> tuple[BaseException | None, list[object]]:
    raw = RawTransport(ServerAddress(port=port), timeout_s=2.0)
    assert await raw.pipeline([("PING",)]) == ["PONG"]
    protocol = await raw._reconnected()  # the open one
    assert protocol.transport is not None
    # Aborted (as a timeout or a killed Redis does), but connection_lost not yet run.
    protocol.transport.abort()
    failure: BaseException | None = None
    try:
        protocol.send(pack(("PING",)), 1)
    except Exception as error:
        failure = error
    replies = await raw.pipeline([("PING",)])
    await raw.aclose()
    return failure, replies


def test_a_write_to_a_closing_connection_is_a_connection_error_on_uvloop(
    server: RedisServer,
) -> None:
    """uvloop refuses the write with RuntimeError (a 500); the raw path says Redis is gone."""
    failure, replies = uvloop.run(_aborted_then_sent(server.port))
    assert isinstance(failure, RedisConnectionError)
    assert replies == ["PONG"]


def test_the_next_batch_after_an_abort_opens_a_new_connection(server: RedisServer) -> None:
    """The same holds on the standard loop: a closing connection is never reused."""
    failure, replies = asyncio.run(_aborted_then_sent(server.port))
    assert isinstance(failure, RedisConnectionError)
    assert replies == ["PONG"]


async def _silent_redis_batches() -> tuple[list[BaseException | object], int, float]:
    """Two batches to a server that reads and never answers, then a third."""
    accepted = 0

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        while await reader.read(65536):
            pass
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    raw = RawTransport(ServerAddress(port=port), timeout_s=0.3)
    started = asyncio.get_running_loop().time()
    first = asyncio.ensure_future(raw.pipeline([("PING",)]))
    await asyncio.sleep(0.1)
    second = asyncio.ensure_future(raw.pipeline([("PING",)]))
    outcomes: list[BaseException | object] = list(
        await asyncio.gather(first, second, return_exceptions=True)
    )
    waited_s = asyncio.get_running_loop().time() - started
    with pytest.raises(RedisTimeoutError):
        await raw.pipeline([("PING",)])
    await raw.aclose()
    server.close()
    return outcomes, accepted, waited_s


def test_a_silent_redis_times_out_the_oldest_batch_and_the_connection_is_replaced() -> None:
    """The oldest unanswered batch gets a timeout, those behind it a lost connection (both
    503 E103), and the next batch does not wait on the silent connection: it opens another."""
    outcomes, accepted, waited_s = uvloop.run(_silent_redis_batches())
    assert isinstance(outcomes[0], RedisTimeoutError)
    assert isinstance(outcomes[1], RedisConnectionError)
    assert 0.3 <= waited_s < 1.0
    assert accepted == 2


# --- logging in: AUTH and SELECT on every new connection ---


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server that lets in only the ACL user `app` with password `s3cret`."""
    started = RedisServer.start_new(Path(tmp_path_factory.mktemp("raw-login")))
    with started.client() as admin:  # once up: its start-up check pings without a password
        admin.execute_command("ACL", "SETUSER", "app", "on", ">s3cret", "~*", "&*", "+@all")
        admin.execute_command("ACL", "SETUSER", "default", "off")
    yield started
    started.kill()


async def _written_through(port: int, password: str) -> object:
    """SET through a raw connection logged in as `app` to database 3; what database 3 holds."""
    raw = RawTransport(ServerAddress(port=port, username="app", password=password, db=3), 2.0)
    try:
        await raw.pipeline([("SET", "login-probe", "here")])
        return (await raw.pipeline([("SELECT", 3), ("GET", "login-probe")]))[1]
    finally:
        await raw.aclose()


def test_a_new_connection_logs_in_and_selects_its_database(guarded: RedisServer) -> None:
    """The URL's user, password and database are used: the write lands in database 3 only."""
    assert uvloop.run(_written_through(guarded.port, "s3cret")) == "here"
    checker = RawTransport(ServerAddress(port=guarded.port, username="app", password="s3cret"), 2)
    assert uvloop.run(_get_in_database_0(checker)) is None


async def _get_in_database_0(raw: RawTransport) -> object:
    try:
        return (await raw.pipeline([("GET", "login-probe")]))[0]
    finally:
        await raw.aclose()


def test_a_refused_login_is_an_outage(guarded: RedisServer) -> None:
    """A wrong password is a ConnectionError (503 E103), not a reply the caller must read."""
    with pytest.raises(RedisConnectionError, match="refused the login"):
        uvloop.run(_written_through(guarded.port, "wrong"))
