"""One contract for every transport: the same script calls answer alike on each wire path.

Run against fakeredis (memory://), a real redis-server through redis-py's client
and through the raw connection, and (slow) a three-primary Cluster. A user sees
no difference between REDIS_URL forms: the same replies, the same errors for the
same refusals (so the same API answers), and 503 E103 when Redis is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis

from service.connect import redis_from_settings
from service.outage import OUTAGE_ERRORS, REPLY_ERRORS, classify_reply_error
from service.scripts import script_sha
from service.settings import Settings
from service.store.raw_redis import RawTransport, ServerAddress
from service.store.redis_py import ClientTransport
from service.store.transport import ReplicaAcksMissing, Transport
from tests.redis_servers import RedisServer, free_port
from tests.topologies import ClusterTopology

KEY = "{contract}counter"  # every key under one hash tag, as on Cluster


@dataclass(frozen=True)
class Script:
    """A script as the batcher registers it: source, SHA1, whether it writes."""

    script: str
    writes: bool = True

    @property
    def sha(self) -> str:
        return script_sha(self.script)


@dataclass(frozen=True)
class Call:
    """One call of a script with its KEYS and ARGV."""

    script: Script
    keys: list[Any]
    args: list[Any]


INCREMENT = Script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
REFUSE = Script("return redis.error_reply(ARGV[1])", writes=False)


@dataclass
class Opened:
    """A transport, and the client under it that the test (as the app) closes last."""

    transport: Transport
    client: redis.asyncio.Redis | redis.asyncio.RedisCluster | None = None

    async def aclose(self) -> None:
        await self.transport.aclose()
        if isinstance(self.client, redis.asyncio.RedisCluster):
            # After a failed pipeline the cluster client waits to rediscover, and until
            # then its aclose closes nothing: rediscover first, so every socket closes.
            with contextlib.suppress(*OUTAGE_ERRORS):  # no cluster there to discover
                await self.client.initialize()
        if self.client is not None:
            await self.client.aclose()


@dataclass
class Wire:
    """One way of reaching Redis: how to build its transport, break it and heal it."""

    name: str
    connect: Callable[[], Opened]  # called inside the test's event loop
    connect_down: Callable[[], Opened]  # to a Redis that cannot be reached
    flush_scripts: Callable[[], None]
    drop_connections: Callable[[], None]
    heal: Callable[[], None] = lambda: None


def _fake_wire() -> Wire:
    server = fakeredis.FakeServer(version=(7,))
    down = fakeredis.FakeServer(version=(7,))
    down.connected = False

    def client(on: fakeredis.FakeServer) -> Opened:
        found = fakeredis.FakeAsyncRedis(server=on, decode_responses=True)
        return Opened(ClientTransport(found), found)

    def drop() -> None:
        server.connected = False

    def heal() -> None:
        server.connected = True

    def flush() -> None:
        fakeredis.FakeRedis(server=server).script_flush()

    return Wire("fakeredis", lambda: client(server), lambda: client(down), flush, drop, heal)


def _client_transport(url: str) -> Opened:
    found = redis_from_settings(Settings(redis_url=url, redis_timeout_s=2.0))
    return Opened(ClientTransport(found), found)


def _kill_clients(nodes: list[redis.Redis]) -> None:
    for node in nodes:
        with node:
            node.client_kill_filter(_type="normal", skipme=True)


def _server_wires(server: RedisServer) -> list[Wire]:
    down_url = f"redis://127.0.0.1:{free_port()}/0"

    def flush() -> None:
        with server.client() as client:
            client.script_flush()

    def drop() -> None:
        _kill_clients([server.client()])

    raw = Wire(
        "raw",
        lambda: Opened(RawTransport(ServerAddress.from_url(server.url), 2.0)),
        lambda: Opened(RawTransport(ServerAddress.from_url(down_url), 2.0)),
        flush,
        drop,
    )
    redis_py = Wire(
        "redis-py",
        lambda: _client_transport(server.url),
        lambda: _client_transport(down_url),
        flush,
        drop,
    )
    return [raw, redis_py]


def _cluster_wire(cluster: ClusterTopology) -> Wire:
    down_url = f"redis+cluster://127.0.0.1:{free_port()}"
    return Wire(
        "cluster",
        lambda: _client_transport(cluster.url),
        lambda: _client_transport(down_url),
        cluster.flush_scripts,
        lambda: _kill_clients([node.client() for node in cluster.primaries()]),
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server of this module's own (it kills its clients' connections)."""
    started = RedisServer.start_new(Path(tmp_path_factory.mktemp("contract")))
    yield started
    started.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterTopology]:
    """Three primaries with a replica each."""
    with ClusterTopology.started(tmp_path_factory.mktemp("contract-cluster")) as topology:
        yield topology


@pytest.fixture(
    params=["fakeredis", "raw", "redis-py", pytest.param("cluster", marks=pytest.mark.slow)]
)
def wire(request: pytest.FixtureRequest) -> Wire:
    """Each transport in turn, on a Redis of its own kind."""
    if request.param == "fakeredis":
        return _fake_wire()
    if request.param == "cluster":
        return _cluster_wire(request.getfixturevalue("cluster"))
    wires = {each.name: each for each in _server_wires(request.getfixturevalue("server"))}
    return wires[request.param]


def _run(wire: Wire, body: Callable[[Transport], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        opened = wire.connect()
        try:
            return await body(opened.transport)
        finally:
            await opened.aclose()

    return asyncio.run(go())


def _calls(*args: Any) -> list[Call]:
    return [Call(INCREMENT, [KEY], [arg]) for arg in args]


def test_a_batch_of_script_calls_answers_each_in_order(wire: Wire) -> None:
    """Calls sent together run in the order they were made, each answered in its place."""

    async def body(transport: Transport) -> list[Any]:
        await transport.execute("DEL", KEY)
        await transport.load_script(INCREMENT.script)
        return await transport.run_scripts(_calls(1, 10, 100))

    assert _run(wire, body) == [1, 11, 111]


def test_a_flushed_script_is_loaded_again_and_the_call_answers(wire: Wire) -> None:
    """After a restart or failover lost the scripts (NOSCRIPT), the request still succeeds,
    and its script ran once, not twice."""

    async def body(transport: Transport) -> tuple[list[Any], Any]:
        await transport.execute("DEL", KEY)
        wire.flush_scripts()
        replies = await transport.run_scripts(_calls(5, 5))
        return replies, await transport.execute("GET", KEY)

    assert _run(wire, body) == ([5, 10], "10")


# Not TRYAGAIN, MOVED or ASK: Cluster's redis-py follows or retries those itself.
@pytest.mark.parametrize("code", ["READONLY", "NOREPLICAS", "MISCONF", "BUSY", "OOM"])
def test_an_error_reply_is_the_same_exception_on_every_wire(wire: Wire, code: str) -> None:
    """A refusal reads the same whatever the REDIS_URL: the same class (so the same 503 or
    error code) and message, returned in its call's place while the others answer."""

    async def body(transport: Transport) -> list[Any]:
        await transport.load_script(REFUSE.script)
        await transport.load_script(INCREMENT.script)
        refused = Call(REFUSE, [KEY], [f"{code} told by the contract test"])
        return await transport.run_scripts([refused, *_calls(1)])

    error, answered = _run(wire, body)
    assert type(error) is REPLY_ERRORS[code]
    assert str(error) == "told by the contract test"
    assert isinstance(answered, int)


def test_a_reply_that_redis_serves_no_one_fails_the_whole_batch(wire: Wire) -> None:
    """LOADING (a restarted Redis reading its data) fails every call of the batch as an
    outage, 503 E103, on every wire."""

    async def body(transport: Transport) -> BaseException:
        await transport.load_script(REFUSE.script)
        await transport.load_script(INCREMENT.script)
        refused = Call(REFUSE, [KEY], ["LOADING Redis is loading the dataset in memory"])
        with pytest.raises(redis.exceptions.BusyLoadingError) as caught:
            await transport.run_scripts([*_calls(1), refused])
        return caught.value

    assert isinstance(_run(wire, body), OUTAGE_ERRORS)


def test_a_script_error_is_a_response_error_on_every_wire(wire: Wire) -> None:
    """A script that fails (a bug) is a ResponseError, not an outage: a 500, never a 503."""
    broken = Script("return redis.call('NO_SUCH_COMMAND')")

    async def body(transport: Transport) -> list[Any]:
        await transport.load_script(broken.script)
        return await transport.run_scripts([Call(broken, [KEY], [])])

    (error,) = _run(wire, body)
    assert type(error) is redis.exceptions.ResponseError
    assert not isinstance(error, OUTAGE_ERRORS)


def test_a_redis_out_of_reach_is_an_outage_on_every_wire(wire: Wire) -> None:
    """No Redis behind the URL: the call fails with an outage error (503 E103)."""

    async def go() -> BaseException:
        opened = wire.connect_down()
        try:
            with pytest.raises(OUTAGE_ERRORS) as caught:
                await opened.transport.run_scripts(_calls(1))
            return caught.value
        finally:
            await opened.aclose()

    assert isinstance(asyncio.run(go()), redis.exceptions.ConnectionError)


def test_after_dropped_connections_calls_fail_as_outages_then_answer(wire: Wire) -> None:
    """Redis closing the connections (a restart, a kill) fails a call as an outage at worst,
    and the service answers again once Redis is back, with no restart of its own."""

    async def body(transport: Transport) -> Any:
        await transport.load_script(INCREMENT.script)
        await transport.run_scripts(_calls(1))
        wire.drop_connections()
        await asyncio.sleep(0.05)
        with contextlib.suppress(*OUTAGE_ERRORS):
            # redis-py notices a dead pooled connection only when it uses it
            await transport.run_scripts(_calls(1))
        wire.heal()
        return await transport.run_scripts(_calls(1))

    (reply,) = _run(wire, body)
    assert isinstance(reply, int)


def test_closing_twice_is_harmless_and_a_later_call_opens_again(wire: Wire) -> None:
    """Shutting the app down closes the transport; a call after that still answers."""

    async def body(transport: Transport) -> list[Any]:
        await transport.load_script(INCREMENT.script)
        await transport.aclose()
        await transport.aclose()
        return await transport.run_scripts(_calls(1))

    (reply,) = _run(wire, body)
    assert isinstance(reply, int)


def test_writes_unconfirmed_by_replicas_are_refused_reads_are_not(wire: Wire) -> None:
    """With SLOTLOCK_REPLICA_ACKS and no replica to confirm, a write is 503 E103 (it may not
    survive a failover) while a read in the same batch answers."""
    if wire.name == "cluster":
        pytest.skip("replica acks are refused with redis+cluster:// at start-up (connect.py)")
    read = Script("return redis.call('GET', KEYS[1])", writes=False)

    async def body(transport: Transport) -> list[Any]:
        for script in (INCREMENT, read):
            await transport.load_script(script.script)
        calls = [*_calls(1), Call(read, [KEY], [])]
        return await transport.run_scripts(calls, replica_acks=1, ack_timeout_ms=10)

    written, answered = _run(wire, body)
    assert isinstance(written, ReplicaAcksMissing)
    assert answered is not None


@pytest.mark.parametrize("code", sorted(REPLY_ERRORS))
def test_the_raw_path_classifies_every_code_as_redis_py_does(code: str) -> None:
    """Whichever wire a reply comes by, the same refusal is the same exception: the raw
    transport's table agrees with redis-py's parser on every code it lists."""
    from redis._parsers.base import BaseParser

    reply = f"{code} 3999 127.0.0.1:6381"  # MOVED and ASK read a slot and an address
    ours = classify_reply_error(redis.exceptions.ResponseError(reply))
    theirs = BaseParser.parse_error(reply)  # type: ignore[no-untyped-call]
    assert (type(ours), str(ours)) == (type(theirs), str(theirs))
