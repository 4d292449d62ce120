"""uvicorn's httptools protocol, with each response going to its socket in one write.

uvicorn writes a response's head when the app sends `http.response.start` and
its body when it sends `http.response.body`: two send() system calls for every
small JSON answer, the largest single cost of a lock in a py-spy profile of the
worker. This protocol gives uvicorn a transport that gathers what is written in
one turn of the event loop and hands it to the socket at the end of that turn.
A response written in one go (all of ours) leaves in one system call; nothing
waits longer than the current turn.

It also bounds what a connection may send before its request's head is
complete (SLOTLOCK_MAX_HEADER_BYTES, 16 KiB): past that it answers 431 E105 and
closes, instead of letting httptools gather a header of any size (three
connections trickling 50 MB headers grew a worker by 146 MB).

It uses uvicorn's private parser callbacks (`on_headers_complete`, `on_body`,
`on_message_complete`, `url`, `headers`): pyproject pins uvicorn's upper bound,
and tests/test_http_protocol.py checks that the names are still there.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.errors import HeadersTooLarge
from service.event_hub import end_every_stream
from service.responses import HARDENING_HEADERS, failure

DEFAULT_MAX_HEAD_BYTES = 16384
# After a 431 the connection reads and drops what the client still sends, for this
# long, before it closes: closing with unread bytes makes the kernel send a reset,
# which can destroy the answer before the client reads it.
LINGER_S = 1.0
_max_head_bytes = DEFAULT_MAX_HEAD_BYTES


def limit_head_bytes(max_head_bytes: int) -> None:
    """Set the request head limit for connections made from now on (the app factory does)."""
    global _max_head_bytes
    _max_head_bytes = max_head_bytes


def too_large_answer(max_head_bytes: int) -> bytes:
    """The whole 431 E105 response, ending the connection."""
    response = failure(HeadersTooLarge(f"request headers larger than {max_head_bytes} bytes"))
    head = [b"HTTP/1.1 431 Request Header Fields Too Large"]
    head += [name + b": " + value for name, value in response.raw_headers]
    head += [name.encode() + b": " + value.encode() for name, value in HARDENING_HEADERS.items()]
    head += [b"connection: close", b"", b""]
    return b"\r\n".join(head) + response.body


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol on a GatheringTransport, with a bounded request head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_head_bytes = _max_head_bytes
        self._awaiting_head = True  # no head since the last request ended (or ever)
        self._head_bytes = 0  # received for the head under way, in earlier reads
        self._read_bytes = 0  # the read being parsed now
        self._began_in_this_read = False  # whether the head under way began in it
        self._heads_done = 0
        self._refused = False

    def shutdown(self) -> None:
        # An event stream never ends by itself, and uvicorn waits for open responses:
        # end the streams so the server stops and their clients resume elsewhere.
        end_every_stream()
        super().shutdown()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # (uvloop's transports quack like asyncio.Transport without subclassing it.)
        super().connection_made(GatheringTransport(transport, self.loop))

    def data_received(self, data: bytes) -> None:
        """Parse `data`; refuse once the head under way passes the limit unfinished.

        A read that completes a head is not counted: the head's own size is checked
        when it completes, and what follows it is body. So a connection holds at most
        the limit plus one read before its head is complete.
        """
        if self._refused:
            return
        heads_done = self._heads_done
        awaiting_head = self._awaiting_head
        self._read_bytes = len(data)
        self._began_in_this_read = False
        super().data_received(data)
        if self._heads_done != heads_done:
            self._head_bytes = 0
        elif awaiting_head and not self._refused:
            self._head_bytes += len(data)
            self._refused = self._head_bytes > self.max_head_bytes
        if self._refused:
            self._refuse()

    def on_headers_complete(self) -> None:
        self._heads_done += 1
        self._awaiting_head = False
        # A head that began in this read and came in a read within the limit cannot be
        # larger: that spares every usual request (one small read) the exact sum.
        fits = self._began_in_this_read and self._read_bytes <= self.max_head_bytes
        if not fits and self._head_size() > self.max_head_bytes:
            self._refused = True  # answered once the parser returns; the app never sees it
            return
        super().on_headers_complete()

    def on_message_begin(self) -> None:
        self._began_in_this_read = True
        super().on_message_begin()

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._awaiting_head = True
        if not self._refused:
            super().on_message_complete()

    def _refuse(self) -> None:
        """Answer 431 E105, stop writing, and close after LINGER_S (what arrives is dropped)."""
        if self.transport.is_closing():
            return
        self.transport.write(too_large_answer(self.max_head_bytes))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()


class GatheringTransport(asyncio.Transport):
    """A transport whose writes within one event-loop turn reach the socket together."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes | bytearray | memoryview] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():  # the peer left: nothing can reach it
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    # The rest is the wrapped transport's.

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()
