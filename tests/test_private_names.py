"""Every private or undocumented name slotlock takes from a dependency is still there.

Each such dependency has an upper bound in pyproject.toml; a new version inside it
that moved a name fails here, naming the pin to revisit, instead of failing in
production as a 500 or a lost failover. Names used:

    redis      BaseParser.EXCEPTION_CLASSES (service/outage.py: three reply codes)
               RedisCluster._initialize, ClusterPipeline(client, transaction),
               ClusterPipeline.cluster_client (service/redis_clients.py: rediscovery)
               SentinelConnectionPool.master_address (redis_clients.FollowingSentinelPool)
    fakeredis  ScriptingCommandsMixin.eval and ._lua_redis_call, _helpers.SimpleError,
               model.is_write_command (service/fake_redis.py: script shebangs)
    uvicorn    the protocol class convention: Server makes `http=` with config,
               server_state, app_state and _loop; ServerState's connections, tasks,
               default_headers and total_requests (service/http_protocol.py)
    starlette  CORSMiddleware.preflight_response and send (service/cors.py)
"""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).parent.parent / "pyproject.toml"


def pin(package: str) -> str:
    """The requirement pyproject.toml states for `package` (dependencies or the dev extra)."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    for requirement in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        if re.match(rf"{package}\b", requirement):
            return str(requirement)
    raise AssertionError(f"{package} is not a dependency in pyproject.toml")


def moved(package: str, name: str) -> str:
    """The message of a failed check: what moved, and which pin to revisit."""
    return f"{package} moved {name}: revisit the pin {pin(package)!r} in pyproject.toml"


@pytest.mark.parametrize("package", ["redis", "fakeredis", "uvicorn", "starlette"])
def test_every_dependency_whose_private_names_are_used_has_an_upper_bound(package: str) -> None:
    """An upgrade past the versions these names were checked on is a deliberate step."""
    assert "<" in pin(package), f"{package} needs an upper bound: {pin(package)!r}"


def test_redis_py_still_looks_reply_codes_up_in_its_parser_table() -> None:
    """NOREPLICAS, MISCONF and BUSY reach redis-py's callers as outages (503), not 500s."""
    from redis._parsers.base import BaseParser

    from service.outage import BusyScriptError, NoReplicasError, PersistenceError

    assert isinstance(BaseParser.EXCEPTION_CLASSES, dict), moved("redis", "EXCEPTION_CLASSES")
    for reply, expected in [
        ("NOREPLICAS Not enough good replicas to write.", NoReplicasError),
        ("MISCONF Errors writing to the AOF file", PersistenceError),
        ("BUSY Redis is busy running a script.", BusyScriptError),
    ]:
        parsed = BaseParser.parse_error(reply)  # type: ignore[no-untyped-call]
        assert type(parsed) is expected, moved("redis", "BaseParser.parse_error")


def test_redis_py_cluster_still_rediscovers_on_its_initialize_flag() -> None:
    """A cluster pipeline that lost its node still makes the client look for the new primary."""
    from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster

    source = inspect.getsource(RedisCluster.initialize)
    assert "if self._initialize" in source, moved("redis", "RedisCluster._initialize")
    client = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", 1)])
    assert client._initialize is True, moved("redis", "RedisCluster._initialize")
    parameters = list(inspect.signature(ClusterPipeline.__init__).parameters)
    assert parameters[:3] == ["self", "client", "transaction"], moved("redis", "ClusterPipeline")
    pipe = ClusterPipeline(client)  # type: ignore[abstract]  # as RedisCluster.pipeline does
    assert pipe.cluster_client is client, moved("redis", "ClusterPipeline.cluster_client")


def test_redis_py_sentinel_pool_still_keeps_the_master_address() -> None:
    """The pool that follows a failover compares its connections with the master's address."""
    from redis.asyncio.sentinel import SentinelConnectionPool

    source = inspect.getsource(SentinelConnectionPool.__init__)
    assert "self.master_address" in source, moved("redis", "SentinelConnectionPool.master_address")


def test_fakeredis_still_has_the_eval_and_lua_call_that_fake_redis_replaces() -> None:
    """memory:// and the tests read the scripts' `#!lua` line as Redis 7 does."""
    try:
        from fakeredis._helpers import SimpleError
        from fakeredis.commands_mixins.scripting_mixin import ScriptingCommandsMixin
        from fakeredis.model import is_write_command
    except ImportError as error:
        raise AssertionError(moved("fakeredis", str(error))) from error
    assert issubclass(SimpleError, Exception), moved("fakeredis", "_helpers.SimpleError")
    assert is_write_command(b"set"), moved("fakeredis", "model.is_write_command")
    assert not is_write_command(b"get"), moved("fakeredis", "model.is_write_command")
    assert list(inspect.signature(ScriptingCommandsMixin.eval).parameters) == [
        "self",
        "script",
        "numkeys",
        "keys_and_args",
    ], moved("fakeredis", "ScriptingCommandsMixin.eval")
    assert list(inspect.signature(ScriptingCommandsMixin._lua_redis_call).parameters) == [
        "self",
        "lua_runtime",
        "expected_globals",
        "op",
        "args",
    ], moved("fakeredis", "ScriptingCommandsMixin._lua_redis_call")


def test_uvicorn_still_makes_and_tracks_protocols_as_http_protocol_expects() -> None:
    """slotlock's HTTP protocol is made, waited for and counted as uvicorn's own are
    (service/http_protocol.py)."""
    from uvicorn.server import Server, ServerState

    made_with = inspect.getsource(Server)
    for keyword in ("config=", "server_state=", "app_state=", "_loop="):
        assert keyword in made_with, moved("uvicorn", f"Server's protocol keyword {keyword}")
    state = ServerState()
    for name, kind in (
        ("connections", set), ("tasks", set), ("default_headers", list), ("total_requests", int),
    ):  # fmt: skip
        assert isinstance(getattr(state, name, None), kind), moved("uvicorn", f"ServerState.{name}")


def test_starlette_still_has_what_cors_calls() -> None:
    """CORSMiddleware's preflight_response and send keep the parameters service.cors passes."""
    from starlette.middleware.cors import CORSMiddleware

    assert list(inspect.signature(CORSMiddleware.preflight_response).parameters) == [
        "self",
        "request_headers",
    ], moved("starlette", "CORSMiddleware.preflight_response")
    assert list(inspect.signature(CORSMiddleware.send).parameters) == [
        "self",
        "message",
        "send",
        "request_headers",
    ], moved("starlette", "CORSMiddleware.send")
