"""slotlock's HTTP/1.1 connection for uvicorn: httptools parsing, each answer in one write.

uvicorn runs the process (workers, signals, lifespan, graceful shutdown) and
takes its per-connection protocol as a class (`http=` in cli.py). Its own
httptools protocol cost some 6 us of CPU per request more than this one (an
asyncio.Event and a cycle object per request, a timer per answer, two regex
searches per response header, the head and the body in separate writes): one
answer driven through each in one process took 16.3 and 10.0 us, and a lock
request in the bench 61 and 55 us (README, "How it got here").

What it keeps of uvicorn's behaviour:
- keep-alive for `timeout_keep_alive` seconds after an answer (HTTP/1.0 and
  `connection: close` end the connection after it); pipelined requests are
  answered in order, reading paused while one waits;
- a malformed request is answered 400 and closed; an upgrade request (no
  route takes a websocket) is answered as plain HTTP;
- reading pauses while a request body waits unread past 64 KiB, and an answer
  waits while the socket's write buffer is full;
- on shutdown an idle connection closes, a busy one closes after its answer,
  and open event streams are ended (service/event_hub.py), since uvicorn waits
  for every connection before the app's lifespan ends.

What it adds: a bound on what a connection may send before its request's head
is complete (SLOTLOCK_MAX_HEADER_BYTES, 16 KiB): past that it answers 431 E105
and closes, instead of letting the parser gather a head of any size (three
connections trickling 50 MB headers grew a worker by 146 MB).

What it takes from uvicorn is the protocol class convention (the constructor's
config, server_state, app_state and _loop; server_state's connections, tasks,
default_headers and total_requests); pyproject pins uvicorn's upper bound, and
tests/test_private_names.py checks those names.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections import deque
from typing import Any, cast

import httptools
from uvicorn.config import Config
from uvicorn.server import ServerState

from service.errors import HeadersTooLarge
from service.event_hub import end_every_stream
from service.http_exchange import STATUS_LINES, Exchange
from service.responses import HARDENING_HEADERS, failure

DEFAULT_MAX_HEAD_BYTES = 16384
HIGH_WATER_BYTES = 65536  # unread request body past which reading pauses (uvicorn's)
# After a 431 the connection reads and drops what the client still sends, for this
# long, before it closes: closing with unread bytes makes the kernel send a reset,
# which can destroy the answer before the client reads it.
LINGER_S = 1.0
_max_head_bytes = DEFAULT_MAX_HEAD_BYTES
_ASGI = {"version": "3.0", "spec_version": "2.3"}  # one for every scope: nothing changes it


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


def bad_request_answer(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's answer to a request the parser refused, ending the connection."""
    message = b"Invalid HTTP request received."
    head = [STATUS_LINES[400]]
    head += [name + b": " + value + b"\r\n" for name, value in default_headers]
    head += [
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(message),
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + message


class HttpProtocol(asyncio.Protocol):
    """One client connection: its requests parsed into Exchanges, answered one at a time."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.root_path = config.root_path
        # Seconds, read untyped: uvicorn's annotation says int, but any number serves (tests
        # use 0.2), and compiled code (service/native.py) would refuse a float typed int.
        self.keep_alive_s: float = cast(Any, config).timeout_keep_alive
        self.server_state = server_state
        self.app_state = app_state
        self.max_head_bytes = _max_head_bytes
        self.parser = httptools.HttpRequestParser(self)
        # Answer the requests before a `connection: close` even when more bytes follow.
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # connection_made
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        # The exchanges: the one answering, the ones parsed behind it, the one parsing.
        self.answering: Exchange | None = None
        self.waiting: deque[Exchange] = deque()
        self.parsing: Exchange | None = None
        # The request head being parsed.
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._expect_continue = False
        # The head limit: whether the next bytes start a head, what the head under way
        # took in earlier reads, the read being parsed, whether that head began in it.
        self._awaiting_head = True
        self._head_bytes = 0
        self._read_bytes = 0
        self._began_in_this_read = False
        self._heads_done = 0
        self._refused = False
        # Flow control.
        self.reading_paused = False
        self.writing_paused = False
        self._drained: asyncio.Future[None] | None = None
        # Keep-alive: one timer per connection, not one per answer; it closes the
        # connection once it has been idle since `_idle_since` for keep_alive_s.
        self._idle_since: float | None = None
        self._keep_alive_timer: asyncio.TimerHandle | None = None

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers uvicorn puts on every answer (`date`, refreshed each second)."""
        return self.server_state.default_headers

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports quack like asyncio.Transport without subclassing it.)
        self.transport = transport  # type: ignore[assignment]
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        self.server = _address(transport.get_extra_info("sockname"))
        self.client = _address(transport.get_extra_info("peername"))
        if transport.get_extra_info("sslcontext"):
            self.scheme = "https"

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        self._stop_keep_alive()
        for exchange in (self.answering, *self.waiting):
            if exchange is not None:
                exchange.lost()
        self.waiting.clear()
        self._set_drained()
        if exc is None:
            self.transport.close()

    def eof_received(self) -> None:
        pass  # the client may still read: the transport closes after the answer

    def data_received(self, data: bytes) -> None:
        """Parse `data`; refuse once the head under way passes the limit unfinished.

        A read that completes a head is not counted: the head's own size is checked
        when it completes, and what follows it is body. So a connection holds at most
        the limit plus one read before its head is complete.
        """
        if self._refused:
            return
        self._idle_since = None
        heads_done = self._heads_done
        awaiting_head = self._awaiting_head
        self._read_bytes = len(data)
        self._began_in_this_read = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no route takes a websocket: the request was answered as plain HTTP
        except httptools.HttpParserError:
            if not self._refused:
                self.transport.write(bad_request_answer(self.default_headers))
                self.transport.close()
                return
        if self._heads_done != heads_done:
            self._head_bytes = 0
        elif awaiting_head and not self._refused:
            self._head_bytes += len(data)
            self._refused = self._head_bytes > self.max_head_bytes
        if self._refused:
            self._refuse()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._set_drained()

    # --- httptools' parser callbacks ---

    def on_message_begin(self) -> None:
        self._began_in_this_read = True
        self.parsing = None
        self._url = b""
        self._headers = []
        self._expect_continue = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._heads_done += 1
        self._awaiting_head = False
        # A head that began in this read and came in a read within the limit cannot be
        # larger: that spares every usual request (one small read) the exact sum.
        fits = self._began_in_this_read and self._read_bytes <= self.max_head_bytes
        if not fits and self._head_size() > self.max_head_bytes:
            self._refused = True  # answered once the parser returns; the app never sees it
            return
        scope = self._scope()
        keep_alive = scope["http_version"] != "1.0" and self.parser.should_keep_alive()
        exchange = Exchange(
            self, scope, keep_alive=keep_alive, expect_continue=self._expect_continue
        )
        self.parsing = exchange
        if self.answering is None:
            self._start(exchange)
        else:  # pipelined: answered in turn, and no more is read meanwhile
            self.waiting.append(exchange)
            self._pause_reading()

    def on_body(self, body: bytes) -> None:
        exchange = self.parsing
        if self._refused or exchange is None or exchange.complete:
            return
        if exchange.body_received(body) > HIGH_WATER_BYTES:
            self._pause_reading()

    def on_message_complete(self) -> None:
        self._awaiting_head = True
        exchange, self.parsing = self.parsing, None
        if not self._refused and exchange is not None:
            exchange.body_ended()

    # --- what an Exchange asks of its connection ---

    def resume_reading(self) -> None:
        """Read on (an app waits for more body, or an answer is done), unless a pipelined
        request is parked: its body would have to be held without bound."""
        if self.reading_paused and not self.waiting:
            self.reading_paused = False
            self.transport.resume_reading()

    async def drained(self) -> None:
        """Wait until the socket takes writes again (or the client left)."""
        if self._drained is None:
            self._drained = self.loop.create_future()
        await self._drained

    def answered(self, exchange: Exchange) -> None:
        """`exchange`'s answer is complete: start the next one, or wait idle for one."""
        self.server_state.total_requests += 1
        if self.answering is exchange:
            self.answering = None
        if self.transport.is_closing():
            return
        if self.waiting:
            self._start(self.waiting.popleft())
        self.resume_reading()
        if self.answering is None:
            self._idle_since = self.loop.time()
            if self._keep_alive_timer is None:
                self._keep_alive_timer = self.loop.call_at(
                    self._idle_since + self.keep_alive_s, self._keep_alive_expired
                )

    # --- uvicorn's server ---

    def shutdown(self) -> None:
        """The server is stopping: close now if idle, else after the answer under way."""
        # An event stream never ends by itself, and uvicorn waits for open responses:
        # end the streams so the server stops and their clients resume elsewhere.
        end_every_stream()
        if self.answering is None:
            self.transport.close()
        else:
            self.answering.keep_alive = False
            for exchange in self.waiting:
                exchange.keep_alive = False

    # --- inside ---

    def _scope(self) -> dict[str, Any]:
        parser = self.parser
        # Any: httptools' stub types `query` as bytes, but it is None without a query, and
        # compiled code (service/native.py) checks each attribute against its stub type.
        url = cast(Any, httptools.parse_url(self._url))
        raw_path: bytes = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        root_path = self.root_path
        if root_path:
            path, raw_path = root_path + path, root_path.encode("ascii") + raw_path
        return {
            "type": "http",
            "asgi": _ASGI,
            "http_version": parser.get_http_version(),
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": parser.get_method().decode("ascii"),
            "root_path": root_path,
            "path": path,
            "raw_path": raw_path,
            "query_string": url.query or b"",
            "headers": self._headers,
            "state": self.app_state.copy(),
        }

    def _start(self, exchange: Exchange) -> None:
        self.answering = exchange
        tasks = self.server_state.tasks
        task = self.loop.create_task(exchange.run(self.app))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _pause_reading(self) -> None:
        if not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    def _set_drained(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _keep_alive_expired(self) -> None:
        self._keep_alive_timer = None
        idle_since = self._idle_since
        if idle_since is None or self.transport.is_closing():
            return  # a request came meanwhile: its answer sets the timer again
        idle_until = idle_since + self.keep_alive_s
        if self.loop.time() >= idle_until:
            self.transport.close()
        else:
            self._keep_alive_timer = self.loop.call_at(idle_until, self._keep_alive_expired)

    def _stop_keep_alive(self) -> None:
        if self._keep_alive_timer is not None:
            self._keep_alive_timer.cancel()
            self._keep_alive_timer = None

    def _head_size(self) -> int:
        return len(self._url) + sum(len(name) + len(value) + 4 for name, value in self._headers)

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


def _address(found: Any) -> tuple[str, int] | None:
    """A socket address as ASGI gives it: (host, port); None for a Unix socket's path."""
    if isinstance(found, (list, tuple)) and len(found) >= 2:
        return str(found[0]), int(found[1])
    return None
