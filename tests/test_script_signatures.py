"""Each Lua script has one typed call whose parameters are its header's KEYS and ARGV.

A script's header (lua/lock_slot.lua) names every KEYS[i] and ARGV[i]; the call in
service/store/calls/ takes them as keyword parameters of the same names, in the same
order. So a key added to, dropped from or moved in a header fails here until the call
(and so every store that calls it) follows; and no store can pass KEYS by position.
"""

from __future__ import annotations

import collections.abc
import importlib
import inspect
import pkgutil
import re
import typing
from collections.abc import Callable, Mapping

import pytest

import service.store.calls as calls_package
from service.scripts import Scripts, script_source
from service.store.calls.common import ScriptCalls

_ENTRY = re.compile(r"^\s*(KEYS|ARGV)\[(\d+)(\.\.)?\][ \t]+(.*?)[ \t]*$", re.MULTILINE)
_SEQUENCES = (collections.abc.Sequence, list)

Method = Callable[..., typing.Awaitable[object]]


def header_of(source: str) -> str:
    """The `--[[ ... ]]` comment after a script's flags line."""
    body = source.partition("\n")[2]
    return body[: body.index("]]")]


def header_parameters(header: str) -> tuple[list[str], set[str]]:
    """The parameters a header asks for, in order, and which of them are repeated tails.

    KEYS lines come first, then ARGV lines, each by its name: a fixed entry's first word,
    a tail's words up to the two spaces that begin its description. A tail (KEYS[n..],
    ARGV[n..]) is one sequence parameter; one made of runs ("slot ids, then booking
    ids") is one per run; a tail named as an earlier one (create_slots' "per slot",
    KEYS and ARGV of each new slot) shares its parameter.
    """
    names: list[str] = []
    tails: set[str] = set()
    for table in ("KEYS", "ARGV"):
        entries = sorted(
            (int(index), bool(tail), rest)
            for found, index, tail, rest in _ENTRY.findall(header)
            if found == table
        )
        for _, tail, rest in entries:
            # A fixed entry's name is one identifier; a tail's may be words ("per slot").
            column = re.split(r"\s{2,}", rest)[0] if tail else rest.split()[0]
            for run in column.split(", then ") if tail else [column]:
                name = run.split(",")[0].strip().replace(" ", "_")
                if tail:
                    tails.add(name)
                if name not in names:
                    names.append(name)
    return names, tails


def typed_calls() -> dict[str, list[Method]]:
    """Every public async method of every ScriptCalls class in service/store/calls/, by name."""
    found: dict[str, list[Method]] = {}
    for module_info in pkgutil.iter_modules(calls_package.__path__):
        module = importlib.import_module(f"{calls_package.__name__}.{module_info.name}")
        for cls in vars(module).values():
            if not (inspect.isclass(cls) and issubclass(cls, ScriptCalls)):
                continue
            if cls.__module__ != module.__name__:
                continue  # imported from another module: counted there
            for name, member in vars(cls).items():
                if not name.startswith("_") and inspect.iscoroutinefunction(member):
                    found.setdefault(name, []).append(member)
    return found


def signature_problems(header: str, method: Method) -> list[str]:
    """How a method's parameters disagree with its script's header (none: they agree)."""
    wanted, tails = header_parameters(header)
    signature = inspect.signature(method)
    parameters = [p for p in signature.parameters.values() if p.name != "self"]
    names = [p.name for p in parameters]
    problems = []
    if names != wanted:
        problems.append(f"parameters {names}, header {wanted}")
    hints = typing.get_type_hints(method)
    for parameter in parameters:
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
            problems.append(f"{parameter.name} may be passed by position")
        hint = hints.get(parameter.name)
        if parameter.name in tails and typing.get_origin(hint) not in _SEQUENCES:
            problems.append(f"{parameter.name} is a repeated tail, typed {hint}")
    annotations = [str(p.annotation) for p in parameters] + [str(signature.return_annotation)]
    if any(re.search(r"\bAny\b", annotation) for annotation in annotations):
        problems.append("Any in the signature")
    return problems


def catalogue_problems(
    headers: Mapping[str, str], calls: Mapping[str, list[Method]]
) -> dict[str, list[str]]:
    """Per script (or method) name: a missing call, a call without a script, two calls,
    or a signature that disagrees with the header."""
    problems: dict[str, list[str]] = {}
    for name in sorted(set(headers) | set(calls)):
        methods = calls.get(name, [])
        if name not in headers:
            problems[name] = ["a typed call without a script"]
        elif len(methods) != 1:
            problems[name] = [f"{len(methods)} typed calls, not one"]
        elif found := signature_problems(headers[name], methods[0]):
            problems[name] = found
    return problems


HEADERS = {name: header_of(script_source(name)) for name in Scripts.names()}
CALLS = typed_calls()


def test_every_script_has_exactly_one_typed_call() -> None:
    """No script is left to positional lists, and no typed call names a script that is gone."""
    assert set(CALLS) == set(HEADERS)
    assert all(len(methods) == 1 for methods in CALLS.values())


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_typed_call_takes_the_header_keys_and_argv_in_order(name: str) -> None:
    """The call's keyword parameters are the header's KEYS then ARGV names, none missing."""
    assert catalogue_problems({name: HEADERS[name]}, {name: CALLS.get(name, [])}) == {}


def test_headers_are_read_as_written() -> None:
    """The parser reads lock_slot's header (the model) and a variadic one as they read."""
    lock, lock_tails = header_parameters(HEADERS["lock_slot"])
    assert lock[:3] == ["slot_key", "lock_key", "resource_key"]
    assert lock[-6:] == ["environment", "holder", "until_ms", "now_ms", "max_holds", "quantity"]
    assert lock_tails == set()
    delete, delete_tails = header_parameters(HEADERS["delete_resource"])
    assert delete[-6:] == [
        "owned_keys",
        "environment",
        "resource_id",
        "slot_count",
        "slot_ids",
        "booking_ids",
    ]
    assert delete_tails == {"owned_keys", "slot_ids", "booking_ids"}
    create, create_tails = header_parameters(HEADERS["create_slots"])
    assert create == [
        "resource_key",
        "starts_key",
        "events_key",
        "per_slot",
        "environment",
        "field_count",
    ]
    assert create_tails == {"per_slot"}


_EXAMPLE_HEADER = """#!lua
--[[
example: a script for the checker's own test.

  KEYS[1] slot_key       sl:{T}:slot:<slot id>
  KEYS[2..] booking keys  sl:{T}:booking:<id>
  ARGV[1] environment    the caller's environment
  ARGV[2] now_ms

Returns:
  {"OK"}
]]
"""


class _Examples:
    """Methods that agree, and disagree, with _EXAMPLE_HEADER."""

    async def agrees(
        self, *, slot_key: str, booking_keys: list[str], environment: str, now_ms: int
    ) -> None:
        """As the header says."""

    async def swapped(
        self, *, slot_key: str, booking_keys: list[str], now_ms: int, environment: str
    ) -> None:
        """ARGV in the wrong order."""

    async def short(self, *, slot_key: str, booking_keys: list[str], environment: str) -> None:
        """ARGV[2] missing."""

    async def renamed(
        self, *, slot_key: str, booking_keys: list[str], environment: str, now: int
    ) -> None:
        """ARGV[2] under another name."""

    async def positional(
        self, slot_key: str, booking_keys: list[str], environment: str, now_ms: int
    ) -> None:
        """Right names, but a caller may pass them by position."""

    async def scalar_tail(
        self, *, slot_key: str, booking_keys: str, environment: str, now_ms: int
    ) -> None:
        """The repeated KEYS tail typed as one key."""


def test_the_checker_fails_on_mismatched_examples() -> None:
    """The checks above catch a call whose parameters stray from its header in any way."""
    header = header_of(_EXAMPLE_HEADER)
    assert signature_problems(header, _Examples.agrees) == []
    for wrong in (
        _Examples.swapped,
        _Examples.short,
        _Examples.renamed,
        _Examples.positional,
        _Examples.scalar_tail,
    ):
        assert signature_problems(header, wrong) != [], wrong.__name__
    assert catalogue_problems({"example": header}, {"example": [_Examples.agrees]}) == {}
    assert catalogue_problems({"example": header}, {}) == {"example": ["0 typed calls, not one"]}
    assert catalogue_problems({}, {"example": [_Examples.agrees]}) == {
        "example": ["a typed call without a script"]
    }
