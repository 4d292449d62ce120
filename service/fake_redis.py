"""fakeredis that reads the Redis 7 script shebang the scripts of lua/ start with.

Every script starts with `#!lua` (or `#!lua flags=no-writes`): Redis 7 reads
that line as the script's flags and refuses a script without `no-writes` before
it runs when it is out of memory, a replica, or short of replicas. fakeredis
2.40 runs the text as Lua instead, and Lua cannot parse the line. This teaches
its EVAL what Redis does: the line is not Lua, and a `no-writes` script calling a
write command fails as on Redis. (fakeredis is never out of memory: the tests of
that run on redis-server, tests/test_fault_redis_limits.py.)

It replaces fakeredis's EVAL and its Lua `redis.call` on their class, once, for
every fakeredis client in the process. Both names are fakeredis's own, so
pyproject pins fakeredis's upper bound, and tests/test_private_names.py checks the
names are still there.
"""

from __future__ import annotations

from typing import Any

from fakeredis._helpers import SimpleError
from fakeredis.commands_mixins.scripting_mixin import ScriptingCommandsMixin
from fakeredis.model import is_write_command

from service.store.client import RedisClient

SHEBANG = b"#!lua"
_READ_ONLY_REFUSAL = "Write commands are not allowed from read-only scripts."
_original_eval = ScriptingCommandsMixin.eval
_original_call = ScriptingCommandsMixin._lua_redis_call


def script_flags(source: bytes) -> frozenset[bytes] | None:
    """The flags of a `#!lua flags=a,b` first line; None for a script without a shebang."""
    first_line = source.split(b"\n", 1)[0]
    if not first_line.startswith(SHEBANG):
        return None
    flags: set[bytes] = set()
    for option in first_line.split()[1:]:
        name, _, value = option.partition(b"=")
        if name == b"flags":
            flags.update(flag for flag in value.split(b",") if flag)
    return frozenset(flags)


def _eval(self: Any, script: bytes, numkeys: int, *keys_and_args: bytes) -> Any:
    flags = script_flags(script)
    if flags is None:
        return _original_eval(self, script, numkeys, *keys_and_args)
    # The shebang becomes a comment: Lua line numbers in errors stay those of the file.
    self._slotlock_no_writes = b"no-writes" in flags
    try:
        return _original_eval(self, b"--" + script, numkeys, *keys_and_args)
    finally:
        self._slotlock_no_writes = False


def _call(self: Any, lua_runtime: Any, expected_globals: set[Any], op: bytes, *args: Any) -> Any:
    if getattr(self, "_slotlock_no_writes", False) and is_write_command(bytes(op).lower()):
        raise SimpleError(_READ_ONLY_REFUSAL)
    return _original_call(self, lua_runtime, expected_globals, op, *args)


def install() -> None:
    """Make every fakeredis client in this process read script shebangs (idempotent)."""
    ScriptingCommandsMixin.eval = _eval  # type: ignore[method-assign]
    ScriptingCommandsMixin._lua_redis_call = _call  # type: ignore[method-assign]


def fake_redis() -> RedisClient:
    """A new in-process fakeredis (Redis 7) that runs the scripts of lua/ as Redis does."""
    import fakeredis

    install()
    client: RedisClient = fakeredis.FakeAsyncRedis(
        server=fakeredis.FakeServer(version=(7,)), decode_responses=True
    )
    return client
