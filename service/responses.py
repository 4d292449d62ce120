"""The JSON answers of the API: the envelope, encoded by one module-level msgspec Encoder,
sent by a response class of our own.

EnvelopeResponse is not a Starlette Response: it is the few lines an ASGI response with
a JSON body needs (a status, the raw headers, the body, two `send` calls), compiled with
the rest of the request path (service/native.py). Starlette's Response, interpreted,
builds its headers through a general `init_headers` and sends through a `__call__` that
also handles websockets and background tasks; for every lock and unlock that was some
1.5-2 us of a worker's CPU, about 5% of what the service adds to a request (README,
"Performance"). Everything else the service answers (redirects, the metrics page, the
event stream, a replayed answer) stays a Starlette Response; `Answer` is either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from service.errors import ApiError
from service.payloads import ErrorBody, ErrorEnvelope

_encoder = msgspec.json.Encoder()

# API responses can carry data a shared cache must not keep (lock state, bookings).
HARDENING_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}
_CONTENT_TYPE = (b"content-type", b"application/json")


class Envelope(msgspec.Struct):
    """The success envelope of API.md."""

    data: Any
    meta: Any
    success: bool = True


class EnvelopeResponse:
    """An ASGI response whose body is `content` (an Envelope, an ErrorEnvelope or anything
    msgspec encodes) as JSON, with Content-Length and Content-Type.

    `raw_headers` is a list the dispatcher extends before sending (as Starlette's is);
    `headers` are extra ones, names as given (lower-cased on the wire)."""

    def __init__(
        self, content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        body: bytes = _encoder.encode(content)
        self.status_code = status_code
        self.body = body
        self.raw_headers: list[tuple[bytes, bytes]] = [
            (b"content-length", str(len(body)).encode()),
            _CONTENT_TYPE,
        ]
        if headers:
            self.raw_headers += [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in headers.items()
            ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the head, then the whole body."""
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body})


# What an endpoint answers: JSON envelopes are EnvelopeResponses; the rest Starlette's.
Answer = EnvelopeResponse | Response


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
