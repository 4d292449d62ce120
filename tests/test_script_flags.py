"""Every script's `#!lua` flags match what its body does, and fakeredis reads them as Redis does."""

from __future__ import annotations

import asyncio
import re

import fakeredis
import pytest
from fakeredis.commands_mixins.scripting_mixin import ScriptingCommandsMixin
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from service.fake_redis import fake_redis
from service.scripts import lua_dir, script_flags, script_source
from service.store.client import RedisClient
from tests.redis_servers import RedisServer

SCRIPT_NAMES = sorted(path.stem for path in lua_dir().glob("*.lua"))

# Every command the scripts call, by whether Redis flags it `write`; a command that
# is in neither set fails test_every_called_command_is_classified, so a new one
# gets a decision (checked against a real server's COMMAND INFO below).
WRITE_COMMANDS = {
    "DEL", "HINCRBY", "HSET", "PEXPIRE", "PEXPIREAT", "SET", "XADD", "XTRIM", "ZADD", "ZREM",
    "ZREMRANGEBYSCORE",
}  # fmt: skip
READ_COMMANDS = {
    "EXISTS", "GET", "HGET", "HGETALL", "HMGET", "PEXPIRETIME", "TIME", "XLEN", "XRANGE", "ZCARD",
    "ZCOUNT", "ZRANGE", "ZRANGEBYSCORE", "ZRANK", "ZREVRANGEBYSCORE", "ZSCORE",
}  # fmt: skip

_CALL = re.compile(r"redis\.p?call\(\s*['\"]([A-Za-z]+)['\"]")
_COMPUTED_CALL = re.compile(r"redis\.p?call\(\s*[^'\"\s]")
_COMMENT = re.compile(r"--.*$", re.MULTILINE)


def commands_of(name: str) -> set[str]:
    """The commands a script's body calls (includes expanded), upper case."""
    body = _COMMENT.sub("", script_source(name))
    assert not _COMPUTED_CALL.search(body), f"{name} calls a command by a computed name"
    return {command.upper() for command in _CALL.findall(body)}


def test_there_are_scripts_that_write_and_scripts_that_only_read() -> None:
    """The checks below see both kinds (an empty kind would make them vacuous)."""
    kinds = {"no-writes" in script_flags(script_source(name)) for name in SCRIPT_NAMES}
    assert kinds == {True, False}


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_first_line_is_a_shebang_with_known_flags(name: str) -> None:
    """Line 1 is `#!lua`, with at most `flags=no-writes` (no allow-oom, allow-stale...)."""
    assert script_source(name).startswith("#!lua")
    assert script_flags(script_source(name)) <= {"no-writes"}


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_every_called_command_is_classified(name: str) -> None:
    """Each command a script calls is listed as a read or a write here."""
    assert commands_of(name) <= WRITE_COMMANDS | READ_COMMANDS


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_no_writes_exactly_when_the_body_calls_no_write_command(name: str) -> None:
    """`no-writes` exactly when the body calls no write command (a writer is refused on OOM)."""
    writes = bool(commands_of(name) & WRITE_COMMANDS)
    assert ("no-writes" not in script_flags(script_source(name))) == writes


def test_the_command_classes_are_those_of_redis_server(redis_server: RedisServer) -> None:
    """redis-server flags exactly WRITE_COMMANDS `write` among the commands the scripts call."""
    names = sorted(WRITE_COMMANDS | READ_COMMANDS)
    with redis_server.client() as client:
        info = client.execute_command("COMMAND", "INFO", *names)  # by lower-case name
    flagged = {
        name for name in WRITE_COMMANDS | READ_COMMANDS if "write" in info[name.lower()]["flags"]
    }
    assert flagged == WRITE_COMMANDS


READ_ONLY_WRITE = "#!lua flags=no-writes\nreturn redis.call('SET', KEYS[1], '1')"
READ_ONLY_READ = "#!lua flags=no-writes\nreturn redis.call('GET', KEYS[1])"
WRITING = "#!lua\nreturn redis.call('SET', KEYS[1], 'v')"


async def outcomes(redis: RedisClient) -> tuple[str, object, object, object]:
    """What one Redis does with the three shebang scripts, and whether the refused one wrote."""
    try:
        await redis.eval(READ_ONLY_WRITE, 1, "k")
        refused = "ran"
    except ResponseError as error:
        refused = "refused" if "read-only scripts" in str(error) else str(error)
    written = await redis.get("k")
    set_reply = await redis.evalsha(await redis.script_load(WRITING), 1, "k")
    read_reply = await redis.eval(READ_ONLY_READ, 1, "k")
    await redis.aclose()
    return refused, written, set_reply, read_reply


def test_fakeredis_and_redis_server_agree_on_shebang_scripts(redis_server: RedisServer) -> None:
    """A `no-writes` script that writes is refused before writing; `#!lua` scripts run: on both."""
    redis_server.client().flushall()
    real = asyncio.run(outcomes(Redis(port=redis_server.port, decode_responses=True)))
    fake = asyncio.run(outcomes(fake_redis()))
    assert real == fake == ("refused", None, "OK", "v")


def test_the_fakeredis_names_the_shim_replaces_are_still_there() -> None:
    """fakeredis still runs EVAL and Lua's redis.call through the methods fake_redis.py wraps."""
    assert fakeredis.__version__.startswith("2.40.")
    for name in ("eval", "_lua_redis_call", "_lua_redis_pcall"):
        assert callable(getattr(ScriptingCommandsMixin, name))
