"""What every typed script call shares: its registered scripts, STALE, reading a raw reply.

A reply arrives as RedisReply (service/scripts.py); these accessors narrow one item to
the type its script's header promises, and fail loudly (a RuntimeError, a 500) when a
script answers something its header does not list, rather than carry it on.
"""

from __future__ import annotations

import msgspec

from service.scripts import RedisReply, Scripts


class ScriptCalls:
    """Base of the typed calls: the registered scripts they run."""

    __slots__ = ("scripts",)

    def __init__(self, scripts: Scripts) -> None:
        self.scripts = scripts


class Stale(msgspec.Struct, frozen=True):
    """The script found that what the store read before calling it changed: read again."""


STALE = Stale()


class UnexpectedReply(RuntimeError):
    """A script answered a shape its header does not list."""


def as_list(reply: RedisReply) -> list[RedisReply]:
    """A table reply (every script but expire_locks answers one)."""
    if isinstance(reply, list):
        return reply
    raise UnexpectedReply(f"a script answered {reply!r} where a table was due")


def as_int(item: RedisReply) -> int:
    """A Lua number, or a number kept as a string (a hash field, a score)."""
    if isinstance(item, int | str):
        return int(item)
    raise UnexpectedReply(f"a script answered {item!r} where a number was due")


def as_str(item: RedisReply) -> str:
    """A Lua string (a number is read as its decimal text)."""
    if isinstance(item, str):
        return item
    if isinstance(item, int):
        return str(item)
    raise UnexpectedReply(f"a script answered {item!r} where a string was due")


def as_strs(items: RedisReply) -> list[str]:
    """A table of strings, such as HGETALL's field/value list."""
    return [as_str(item) for item in as_list(items)]
