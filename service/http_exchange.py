"""One HTTP request and its answer, as the ASGI app sees them: `receive`, `send`, and the run.

The connection (service/http_protocol.py) parses the request into an Exchange and
starts its run; the app reads the body with `receive` and answers with `send`.
A response with a Content-Length is written whole, head and body in one write,
when its body comes (ours always comes in the same turn as its head); a streamed
one (no Content-Length: chunked) has its head written at once, so a client sees
an event stream open before its first event.

The checks are uvicorn's, so an app gets the same errors under either: a header
name must be a token and a value free of control characters (a value with a line
break would let whatever echoes it inject headers), a body must match its
Content-Length, and a message out of order is a RuntimeError.
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, Protocol

logger = logging.getLogger("uvicorn.error")

ASGIApp = Callable[[dict[str, Any], Any, Any], Any]

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # uvicorn's HEADER_VALUE_RE: tab allowed
_MAX_KNOWN_NAMES = 1000
_DISCONNECT = {"type": "http.disconnect"}


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


STATUS_LINES = {status: _status_line(status) for status in range(100, 600)}
# Header names already checked, each with its lower-case form: an app sends the same
# few names on every answer, and a dict lookup is cheaper than two regex searches.
_known_names: dict[bytes, bytes] = {}


# The headers that frame the answer, looked at more closely.
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection"))


def _checked_name(name: bytes) -> bytes:
    """A header name not seen yet: checked, and remembered with its lower-case form."""
    if not _TOKEN.fullmatch(name):
        raise RuntimeError("Invalid HTTP header name.")
    if len(_known_names) >= _MAX_KNOWN_NAMES:
        _known_names.clear()
    lowered = _known_names[name] = name.lower()
    return lowered


class Connection(Protocol):
    """What an exchange needs of its connection (service/http_protocol.py)."""

    transport: asyncio.Transport
    writing_paused: bool

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]: ...

    def resume_reading(self) -> None: ...
    async def drained(self) -> None: ...
    def answered(self, exchange: Exchange) -> None: ...


class Exchange:
    """One request's body (as it arrives) and its answer (as the app sends it)."""

    __slots__ = (
        "_body",
        "_body_taken",
        "_connection",
        "_head",
        "_head_only",
        "_remaining",
        "_unread",
        "_waiter",
        "chunked",
        "complete",
        "disconnected",
        "expect_continue",
        "keep_alive",
        "more_body",
        "scope",
        "started",
    )

    def __init__(
        self, connection: Connection, scope: dict[str, Any], *, keep_alive: bool,
        expect_continue: bool,
    ) -> None:  # fmt: skip
        self._connection = connection
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue  # a 100 Continue is owed on the first read
        # The request body: what arrived and the app has not read, and whether more comes.
        self._body: list[bytes] = []
        self._unread = 0  # bytes in _body
        self.more_body = True
        self._body_taken = False  # the app has read the last of it
        self._waiter: asyncio.Future[None] | None = None
        # The answer.
        self.started = False
        self.complete = False
        self.disconnected = False
        self.chunked = False
        self._remaining = 0  # bytes of a Content-Length body still to come
        self._head_only = scope["method"] == "HEAD"  # the body is not written
        self._head = b""  # written with the first body part

    # --- what the connection tells it ---

    def body_received(self, body: bytes) -> int:
        """Keep a part of the request body for the app; returns how much is kept unread."""
        self._body.append(body)
        self._unread += len(body)  # counted as it comes: a body of many tiny chunks stays linear
        self._wake()
        return self._unread

    def body_ended(self) -> None:
        """The request is whole."""
        self.more_body = False
        self._wake()

    def lost(self) -> None:
        """The client is gone: reads answer http.disconnect, writes are dropped."""
        if not self.complete:
            self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- the app's side ---

    async def run(self, app: ASGIApp) -> None:
        """Run `app` on this exchange; a failure before the answer began is a 500."""
        failed = False
        try:
            result = await app(self.scope, self.receive, self.send)
        except BaseException as error:
            logger.error("Exception in ASGI application\n", exc_info=error)
            failed, result = True, None  # answered after the block: nothing compiled awaits here
        if failed:
            if not self.started:
                await self._send_500()
            else:
                self._connection.transport.close()
        elif result is not None:
            logger.error("ASGI callable should return None, but returned '%s'.", result)
            self._connection.transport.close()
        elif not self.started and not self.disconnected:
            logger.error("ASGI callable returned without starting response.")
            await self._send_500()
        elif not self.complete and not self.disconnected:
            logger.error("ASGI callable returned without completing response.")
            self._connection.transport.close()

    async def receive(self) -> dict[str, Any]:
        """The next part of the body; once it is all read, wait for the end of the exchange."""
        if self.expect_continue:
            self.expect_continue = False
            if not self._connection.transport.is_closing():
                self._connection.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while not self._readable():
            self._connection.resume_reading()
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        if self.disconnected or self.complete:
            return _DISCONNECT
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body, self._unread = [], 0
        self._body_taken = not self.more_body
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    def _readable(self) -> bool:
        if self.disconnected or self.complete:
            return True
        return not self._body_taken and (bool(self._body) or not self.more_body)

    async def send(self, message: dict[str, Any]) -> None:
        """Write the answer's head (`http.response.start`) or a part of its body."""
        connection = self._connection
        if connection.writing_paused and not self.disconnected:
            await connection.drained()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got '{kind}'."
                )
            self._start(message["status"], message.get("headers", ()))
            if self.chunked:  # a stream: its client sees it open now
                connection.transport.write(self._head)
                self._head = b""
        elif not self.complete:
            if kind != "http.response.body":
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{kind}'.")
            self._write_body(message.get("body", b""), message.get("more_body", False))
        else:
            raise RuntimeError(
                f"Unexpected ASGI message '{kind}' sent, after response already completed."
            )

    def _start(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> None:
        self.started = True
        self.expect_continue = False
        lines = [STATUS_LINES.get(status) or _status_line(status)]
        values = []
        length: int | None = None
        says_close = False
        known = _known_names
        for name, value in [*self._connection.default_headers, *headers]:
            lowered = known.get(name) or _checked_name(name)
            values.append(value)
            lines += (lowered, b": ", value, b"\r\n")
            if lowered not in _FRAMING:
                continue
            if lowered == b"content-length":
                if length is None and not self.chunked:
                    length = int(value.decode())
            elif lowered == b"transfer-encoding":
                self.chunked = self.chunked or value.lower() == b"chunked"
            elif b"close" in [token.strip().lower() for token in value.split(b",")]:
                self.keep_alive = False  # connection: close
                says_close = True
        if _CONTROL.search(b"".join(values)):  # as searching each value: the join adds none
            raise RuntimeError("Invalid HTTP header value.")
        if not self.keep_alive and not says_close:
            lines.append(b"connection: close\r\n")
        if length is None and not self.chunked and not self._head_only and status not in (204, 304):
            self.chunked = True
            lines.append(b"transfer-encoding: chunked\r\n")
        self._remaining = 0 if self._head_only or length is None else length
        lines.append(b"\r\n")
        self._head = b"".join(lines)

    def _write_body(self, body: bytes, more_body: bool) -> None:
        if self._head_only:
            data = b""
        elif self.chunked:
            data = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            if not more_body:
                data += b"0\r\n\r\n"
        else:
            if len(body) > self._remaining:
                raise RuntimeError("Response content longer than Content-Length")
            self._remaining -= len(body)
            data = body
        if self._head:
            data, self._head = self._head + data, b""
        transport = self._connection.transport
        if data:
            transport.write(data)
        if more_body:
            return
        if self._remaining:
            raise RuntimeError("Response content shorter than Content-Length")
        self.complete = True
        self._wake()
        if not self.keep_alive:
            transport.close()
        self._connection.answered(self)

    async def _send_500(self) -> None:
        await self.send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"21"),
                    (b"connection", b"close"),
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": b"Internal Server Error"})
