"""The Lua scripts: each compiles as Redis's Lua 5.1, and its header tells the truth."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from lupa import lua51

from service.scripts import lua_dir, script_source

SCRIPT_NAMES = sorted(path.stem for path in lua_dir().glob("*.lua"))

_HEADER_LINE = re.compile(r"^\s*(KEYS|ARGV)\[(\d+)(\.\.)?\]", re.MULTILINE)
_LITERAL_READ = re.compile(r"\b(KEYS|ARGV)\[\s*(\d+)\s*\]")
_COMPUTED_READ = re.compile(r"\b(KEYS|ARGV)\[(?!\s*\d+\s*\])")
_WHOLE_READ = re.compile(r"(?:#|\bunpack\(\s*)(KEYS|ARGV)\b")
_UNPACK_FROM = re.compile(r"\bunpack\(\s*(KEYS|ARGV)\s*,\s*(\d+)")
_STATUS = re.compile(r"\breturn\s*\{\s*'([A-Z_]+)'")
_COMMENT = re.compile(r"--.*$", re.MULTILINE)


@dataclass(frozen=True)
class Documented:
    """What a header says one table (KEYS or ARGV) holds."""

    fixed: set[int]  # KEYS[i] lines
    rest_from: int | None  # the n of a KEYS[n..] line, if any


def split(name: str) -> tuple[str, str]:
    """The header comment and the body (includes expanded) of lua/NAME.lua."""
    source = script_source(name).partition("\n")[2]  # after the `#!lua` flags line
    assert source.startswith("--[["), f"{name}.lua has no header comment"
    end = source.index("]]") + 2
    return source[:end], _COMMENT.sub("", source[end:])


def documented(header: str, table: str) -> Documented:
    """The KEYS or ARGV indexes the header documents."""
    fixed, rest_from = set(), None
    for found_table, index, open_ended in _HEADER_LINE.findall(header):
        if found_table != table:
            continue
        if open_ended:
            assert rest_from is None, f"two {table}[n..] lines"
            rest_from = int(index)
        else:
            fixed.add(int(index))
    return Documented(fixed, rest_from)


def read_literally(body: str, table: str) -> set[int]:
    """The indexes the body reads as KEYS[3] or ARGV[3]."""
    return {int(index) for found, index in _LITERAL_READ.findall(body) if found == table}


def reads_the_rest(body: str, table: str) -> bool:
    """Whether the body reads the table at computed indexes, unpacks it or takes its length."""
    return any(found == table for found in _COMPUTED_READ.findall(body)) or any(
        found == table for found in _WHOLE_READ.findall(body)
    )


TAILS = [
    (name, table)
    for name in SCRIPT_NAMES
    for table in ("KEYS", "ARGV")
    if documented(script_source(name), table).rest_from is not None
]
"""(script, table) pairs whose header documents a variable tail, KEYS[n..] or ARGV[n..]."""


def test_there_are_scripts() -> None:
    """The glob finds the scripts (an empty list would make every other test vacuous)."""
    assert {"lock_slot", "unlock_slot", "create_slots"} <= set(SCRIPT_NAMES)
    assert ("create_slots", "KEYS") in TAILS


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_script_compiles_as_lua_5_1(name: str) -> None:
    """The script, with its includes, is valid Lua 5.1 (the Lua of Redis) after its flags line."""
    lua51.LuaRuntime().compile("--" + script_source(name))  # Redis reads line 1 itself


@pytest.mark.parametrize("name", SCRIPT_NAMES)
@pytest.mark.parametrize("table", ["KEYS", "ARGV"])
def test_header_lists_exactly_the_fixed_indexes_read(name: str, table: str) -> None:
    """The header's KEYS[i]/ARGV[i] lines are exactly the literal indexes the body reads."""
    header, body = split(name)
    assert documented(header, table).fixed == read_literally(body, table)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
@pytest.mark.parametrize("table", ["KEYS", "ARGV"])
def test_header_fixed_indexes_count_from_1(name: str, table: str) -> None:
    """Documented fixed indexes run 1, 2, ... without a gap."""
    header, _ = split(name)
    fixed = documented(header, table).fixed
    assert fixed == set(range(1, len(fixed) + 1))


@pytest.mark.parametrize("name", SCRIPT_NAMES)
@pytest.mark.parametrize("table", ["KEYS", "ARGV"])
def test_header_documents_a_variable_tail_exactly_when_read(name: str, table: str) -> None:
    """A KEYS[n..]/ARGV[n..] line exists exactly when the body reads past the fixed indexes."""
    header, body = split(name)
    assert (documented(header, table).rest_from is not None) == reads_the_rest(body, table)


@pytest.mark.parametrize(("name", "table"), TAILS)
def test_variable_tail_starts_after_the_fixed_indexes(name: str, table: str) -> None:
    """`n` of KEYS[n..]/ARGV[n..] follows the last fixed index, as does any `unpack(T, n)`."""
    header, body = split(name)
    said = documented(header, table)
    assert said.rest_from == max(said.fixed, default=0) + 1
    for found, start in _UNPACK_FROM.findall(body):
        if found == table:
            assert int(start) == said.rest_from


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_header_lists_every_status_returned(name: str) -> None:
    """Every status the body returns ({'STATUS', ...}) is listed in the header."""
    header, body = split(name)
    for status in set(_STATUS.findall(body)):
        assert f'"{status}"' in header, status


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_body_builds_no_key_names(name: str) -> None:
    """Keys arrive through KEYS; the body never spells a key name (Cluster safety)."""
    _, body = split(name)
    assert not re.search(r"""['"]sl:""", body)


def test_a_wrong_header_is_caught(tmp_path: Path) -> None:
    """The checks above do fail on a header that omits a key the body reads."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "broken.lua").write_text(
        "--[[\nbroken\n\n  KEYS[1] a\n  ARGV[1..] b\n]]\n"
        "local a, b = KEYS[1], KEYS[2]\nreturn {'OK', ARGV[1]}\n"
    )
    source = script_source("broken", tmp_path)
    end = source.index("]]") + 2
    header, body = source[:end], source[end:]
    assert documented(header, "KEYS").fixed != read_literally(body, "KEYS")
    assert documented(header, "ARGV").fixed != read_literally(body, "ARGV")
    assert not reads_the_rest(body, "ARGV")
