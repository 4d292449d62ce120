"""The response envelope, encoded by one module-level msgspec Encoder."""

from __future__ import annotations

from collections.abc import Mapping
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


_JSON_CONTENT_TYPE = (b"content-type", b"application/json")


class EnvelopeResponse(Response):
    """JSON response whose body is an Envelope or ErrorEnvelope.

    Built here rather than by Response.__init__, whose header handling serves any
    media type and header mapping: this runs once per request, lock and unlock included.
    """

    media_type = "application/json"

    def __init__(
        self, content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status_code = status_code
        self.background = None
        self.body = _encoder.encode(content)
        self.raw_headers = [(b"content-length", b"%d" % len(self.body)), _JSON_CONTENT_TYPE]
        if headers:
            self.raw_headers += [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in headers.items()
            ]


def ok(data: Any, meta: Any = None, *, status: int = 200) -> EnvelopeResponse:
    """A success envelope around `data`."""
    return EnvelopeResponse(Envelope(data, {} if meta is None else meta), status_code=status)


def failure(error: ApiError) -> EnvelopeResponse:
    """The failure envelope for `error`, with Retry-After where it applies."""
    body = ErrorEnvelope(ErrorBody(error.code, error.message, error.status))
    headers = {}
    if error.retry_after_s is not None:
        headers["retry-after"] = str(max(1, error.retry_after_s))
    return EnvelopeResponse(body, status_code=error.status, headers=headers)
