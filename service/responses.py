"""The response envelope, encoded by one module-level msgspec Encoder."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from service.errors import ApiError
from service.payloads import ErrorBody, ErrorEnvelope

_encoder = msgspec.json.Encoder()

# API responses can carry data a shared cache must not keep (lock state, bookings).
HARDENING_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}


class Envelope(msgspec.Struct):
    """The success envelope of API.md."""

    data: Any
    meta: Any
    success: bool = True


class EnvelopeResponse(Response):
    """JSON response whose body is an Envelope or ErrorEnvelope (or any msgspec-encodable)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


def ok(data: Any, meta: Any = None, *, status: int = 200) -> EnvelopeResponse:
    """A success envelope around `data`."""
    return EnvelopeResponse(Envelope(data, {} if meta is None else meta), status_code=status)


def failure(error: ApiError) -> EnvelopeResponse:
    """The failure envelope for `error`, with Retry-After where it applies."""
    body = ErrorEnvelope(ErrorBody(error.code, error.message, error.status))
    headers = None
    if error.retry_after_s is not None:
        headers = {"retry-after": str(max(1, error.retry_after_s))}
    return EnvelopeResponse(body, status_code=error.status, headers=headers)
