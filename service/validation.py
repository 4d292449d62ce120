"""Turning request bytes into checked values, each mistake with its documented code."""

from __future__ import annotations

import functools
import math
import zoneinfo
from typing import Any, TypeVar

import msgspec

from service.clock import parse_instant_ms
from service.errors import BadRequest, InvalidCapacity, Unprocessable
from service.payloads import Request

RequestT = TypeVar("RequestT", bound=Request)

MAX_METADATA_KEY_CHARS = 100
MAX_METADATA_VALUE_CHARS = 5000
# A value nested ~960 deep fits in 5000 characters and decodes, but a response carrying it
# cannot be encoded (RecursionError: a 500 on every later read). 100 is plenty for metadata.
MAX_METADATA_DEPTH = 100
TOO_DEEP = "the body is nested too deeply"
# What format_instant can write back: an offset may push a timestamp out of years 1..9999.
FIRST_INSTANT_MS = parse_instant_ms("0001-01-01T00:00:00Z")
LAST_INSTANT_MS = parse_instant_ms("9999-12-31T23:59:59.999Z")
_metadata_encoder = msgspec.json.Encoder()


@functools.cache
def _decoder(request_type: type[RequestT]) -> msgspec.json.Decoder[RequestT]:
    return msgspec.json.Decoder(request_type)


def decode_body(body: bytes, request_type: type[RequestT]) -> RequestT:
    """Decode a JSON body into `request_type`; any mistake is 400 E013 naming the field."""
    decoder: msgspec.json.Decoder[RequestT] = _decoder(request_type)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as error:
        raise BadRequest(str(error)) from None
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec: bad UTF-8 in a string
        raise BadRequest("the body is not valid JSON") from None
    except RecursionError:  # msgspec's depth guard; a few KiB of `[[[[` reach it
        raise BadRequest(TOO_DEEP) from None


_object_decoder = msgspec.json.Decoder(dict[str, Any])


def decode_object(body: bytes) -> dict[str, Any]:
    """A JSON object body as a dict (400 E013 for anything else)."""
    try:
        return _object_decoder.decode(body)
    except msgspec.ValidationError:
        raise BadRequest("the body must be a JSON object") from None
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec: bad UTF-8 in a string
        raise BadRequest("the body is not valid JSON") from None
    except RecursionError:
        raise BadRequest(TOO_DEEP) from None


def convert_body(fields: dict[str, Any], request_type: type[RequestT]) -> RequestT:
    """A decoded JSON object checked as `request_type` (400 E013 naming the field)."""
    try:
        converted: RequestT = msgspec.convert(fields, request_type)
    except msgspec.ValidationError as error:
        raise BadRequest(str(error)) from None
    return converted


def instant_ms(value: str, field_name: str) -> int:
    """A timestamp field in epoch ms, or 400 E013 naming the field."""
    try:
        found_ms = parse_instant_ms(value)
    except (ValueError, OverflowError) as error:
        raise BadRequest(f"`{field_name}` {error}") from None
    if not FIRST_INSTANT_MS <= found_ms <= LAST_INSTANT_MS:
        raise BadRequest(f"`{field_name}` must lie in the years 1 to 9999 in UTC")
    return found_ms


def slot_date_ms(value: str, field_name: str) -> int:
    """A slot's start or end in epoch ms, to the second: API.md keeps slot dates so and
    drops milliseconds from input (400 E013 as instant_ms)."""
    return instant_ms(value, field_name) // 1000 * 1000


def capacity(value: Any) -> int:
    """A capacity: an integer of at least 1 (JSON 2.0 counts), else 400 E047."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
        raise InvalidCapacity("`capacity` must be a positive integer (at most 1000000)")
    return value


def timezone(name: str) -> str:
    """An IANA timezone name, else 422 E022."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise Unprocessable("E022", f"`timezone` {name!r} is not a known IANA timezone") from None
    return name


def booking_disabled_before(seconds: int) -> int:
    """A resource's `booking_disabled_before`: 0 or more seconds, else 422 E058."""
    if seconds < 0:
        raise Unprocessable("E058", "`booking_disabled_before` must be 0 or more seconds")
    return seconds


def metadata_json(metadata: dict[str, Any]) -> str:
    """Metadata as stored JSON text, after the per-key and per-value limits (422 E042)."""
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY_CHARS:
            raise Unprocessable(
                "E042",
                f"metadata key {key[:20]!r}... is longer than {MAX_METADATA_KEY_CHARS} characters",
            )
        if _nesting(value) > MAX_METADATA_DEPTH:
            raise Unprocessable(
                "E042",
                f"metadata value of {key!r} is nested deeper than {MAX_METADATA_DEPTH} levels",
            )
        if len(_metadata_encoder.encode(value).decode()) > MAX_METADATA_VALUE_CHARS:
            raise Unprocessable(
                "E042",
                f"metadata value of {key!r} is longer than {MAX_METADATA_VALUE_CHARS} characters",
            )
    return _metadata_encoder.encode(metadata).decode()


def _nesting(value: Any) -> int:
    """How many arrays and objects deep a JSON value goes (a scalar is 0), without recursion."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            pending += [
                (child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)
            ]
    return deepest


def lock_key(value: str) -> str:
    """A lock_key: printable characters only (the length is checked by its type)."""
    if not value.isprintable():
        raise BadRequest("`lock_key` must consist of printable characters")
    return value
