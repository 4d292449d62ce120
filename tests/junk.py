"""Junk for the fuzz tests: bodies that are no request, and values no field should take.

Raw JSON text (or bytes), so that a value can be what `json.dumps` never writes: NaN,
1e400, a lone surrogate escape, bytes that are not UTF-8, 10000 levels of nesting.
"""

from __future__ import annotations

import json
import random

Codes = tuple[str, ...]  # the error codes a refusal may carry; () means it may be accepted
E013, E042, E047 = ("E013",), ("E042",), ("E047",)
HUGE_INT = "1" + "0" * 30
LONG = "x" * 6000


def deep(depth: int, opening: str, leaf: str, closing: str) -> str:
    """`leaf` inside `depth` levels of `opening` ... `closing`."""
    return opening * depth + leaf + closing * depth


def nested_metadata(depth: int, kind: str) -> str:
    """Metadata whose one value is `depth` arrays or objects deep."""
    value = deep(depth, "[", "", "]") if kind == "[" else deep(depth, '{"a":', "1", "}")
    return '{"k": ' + value + "}"


def random_bytes(seed: int, size: int) -> bytes:
    """`size` random bytes, the same for the same seed."""
    return random.Random(seed).randbytes(size)


# Whole bodies that are no request at all. Raw bytes, so they can be invalid JSON.
JUNK_BODIES: list[bytes] = [
    *(random_bytes(seed, size) for seed, size in enumerate([1, 7, 64, 512, 4096])),
    b"\x00",
    b"\xff\xfe{\x00}\x00",
    '{"name": "x"}'.encode("utf-16"),
    b"\xef\xbb\xbf{}",
    b"null",
    b"true",
    b"0",
    b"-1",
    b"1e400",
    HUGE_INT.encode(),
    b"NaN",
    b"Infinity",
    b"-Infinity",
    json.dumps(LONG).encode(),
    b"[]",
    b"[{}]",
    deep(10_000, "[", "", "]").encode(),
    deep(10_000, '{"a":', "1", "}").encode(),
    deep(1_000, "[", "", "]").encode(),
    b"{",
    b"{}}",
    b'{"a": 1,}',
    b"{'a': 1}",
    b'{"a": 1} {"b": 2}',
    b'{"\\ud800": 1}',
    b'{"name": "\xff"}',
    b'{"\xc0\xaf": 1}',
    b'{"metadata": {"k": "\xed\xa0\x80"}}',
    json.dumps({"k" * 6000: 1}).encode(),
    b'{"a": 1 /* comment */}',
]
EMPTY_BODIES = [b"", b"   \n"]

# Raw JSON values of each kind, to put where another kind belongs.
SAMPLES_BY_KIND: dict[str, list[str]] = {
    "str": ['"1"', '"true"', '"null"', '"{}"'],
    "int": ["0", "-1", HUGE_INT],
    "float": ["1.5", "-0.0", "1e308"],
    "bool": ["true", "false"],
    "null": ["null"],
    "list": ["[]", '["a", 1]'],
    "dict": ["{}", '{"a": "b"}'],
}
# One of a kind a field does not take, by the kind it does take.
WRONG_FOR_KIND = {"int": '"1"', "str": HUGE_INT, "bool": '"true"', "dict": '"{}"', "list": "{}"}
# Strings that are not UTF-8: a stray byte, an encoded surrogate, past U+10FFFF, overlong.
NOT_UTF8_VALUES = [b'"\xff"', b'"a\xed\xa0\x80"', b'"\xf4\x90\x80\x80"', b'"\xc0\xaf"']
# Values that are not JSON, or not a value any field takes.
NOT_JSON_VALUES = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "01",
    "+1",
    ".5",
    "0x10",
    "undefined",
    "'single'",
    '"\\ud800"',
    '"\\udfff"',
    '"a\\ud800b"',
    '"raw \x00 nul"',
    '"raw \x1f control"',
    '"bad \\x escape"',
    deep(10_000, "[", "", "]"),
    deep(10_000, '{"a":', "1", "}"),
]
INVALID_INSTANTS = [
    "2020-13-01T00:00:00Z",
    "2020-00-10T00:00:00Z",
    "2020-01-32T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "2020-02-30T00:00:00Z",
    "2021-02-29T00:00:00Z",
    "2020-01-01T25:00:00Z",
    "2020-01-01T24:00:01Z",
    "2020-01-01T00:60:00Z",
    "2020-01-01T00:00:61Z",
    "2020-01-01T00:00:00+25:00",
    "2020-01-01T00:00:00Z+01:00",
    "",
    "now",
    "tomorrow at noon",
    LONG,
    "10000-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
]
# Well-formed but extreme timestamps: the service may take or refuse them, never fail on them.
EDGE_INSTANTS = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59.999Z",
    "9999-12-31T23:59:59-23:59",
    "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999Z",
    "2020-W01-1",
    "20200101T000000Z",
    "2020-01-01 00:00:00z",
    "2020-01-01T00:00:00.123456789Z",
    "\u0662\u0660\u0662\u0660-01-01T00:00:00Z",
    "\uff12\uff10\uff12\uff10-01-01T00:00:00Z",
    "2020-01-01",
]
EDGE_STRINGS = [
    '""',
    json.dumps(LONG),
    '"\\u0000"',
    '"nul\\u0000inside"',
    '"\\u202e\\u200fRTL\\u200e"',
    '"\\ud83d\\ude00 emoji"',
    json.dumps("\U0001f469\u200d\U0001f469\u200d\U0001f467 family", ensure_ascii=False),
    '"\\ufeffBOM"',
    json.dumps("Z\u0351\u0352\u0353a\u0354\u0355lgo", ensure_ascii=False),
    '"line\\nbreak\\ttab"',
    json.dumps("\U0010ffff\ufffe\uffff", ensure_ascii=False),
    json.dumps("\u0661\u0662\u0663"),
    '"UTC"',
    '"../../etc/passwd"',
    '"' + "\u00e9" * 300 + '"',
]
EDGE_INTS = [HUGE_INT, str(2**63), str(2**64), str(-(2**63) - 1), "1.0", "-0", "1e2", "0"]
INVALID_METADATA: list[tuple[str, Codes]] = [
    (json.dumps({"k": LONG}), E042),
    (json.dumps({"k" * 6000: 1}), E042),
    (json.dumps({"k" * 101: 1}), E042),
    (json.dumps({"k": [[[[["x" * 1000] * 5]]]]}), E042),
    (json.dumps({"k": {"nested": "x" * 5000}}), E042),
    *((nested_metadata(depth, "["), E042) for depth in (101, 500)),
    *((nested_metadata(depth, "{"), E042) for depth in (101, 500)),
    # Around 960 levels a body still decodes but its echo in a response may not encode;
    # a little deeper it does not decode (E013).
    *((nested_metadata(depth, "["), E042 + E013) for depth in range(950, 1000, 2)),
    (nested_metadata(960, "{"), E042 + E013),
    (nested_metadata(10_000, "["), E013),
    (nested_metadata(10_000, "{"), E013),
    ('{"k": 1e400}', E013),
    ('{"k": NaN}', E013),
]
EDGE_METADATA = [
    json.dumps({"k": int(HUGE_INT)}),
    json.dumps({"k": 1e308, "m": -0.0, "n": 5e-324}),
    json.dumps({"": ""}),
    '{"\\u0000": "\\u0000"}',
    json.dumps({"\U0001f600": "\u202e"}, ensure_ascii=False),
    json.dumps({"k": {"nested": [1, {"a": None}]}}),
    json.dumps({"k" * 100: "x" * 4998}),
    json.dumps({f"k{index}": index for index in range(1000)}),
    nested_metadata(100, "["),
    nested_metadata(100, "{"),
]
