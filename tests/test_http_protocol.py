"""The HTTP protocol `slotlock serve` runs: one write per answer, uvicorn's behaviour kept."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.config import Config
from uvicorn.server import ServerState

from service.http_protocol import DEFAULT_MAX_HEAD_BYTES, HttpProtocol


class SocketTransport(asyncio.Transport):
    """What the protocol would hand the socket: one entry per write (one send() each)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.reading = True

    def write(self, data: Any) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def abort(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return False

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello " + request.path_params["name"])


async def streamed(request: Request) -> Response:
    async def parts() -> Any:
        yield b"one,"
        await asyncio.sleep(0.01)
        yield b"two"

    return StreamingResponse(parts())


async def body_size(request: Request) -> Response:
    return PlainTextResponse(str(len(await request.body())))


APP = Starlette(
    routes=[
        Route("/hello/{name}", hello),
        Route("/stream", streamed),
        Route("/size", body_size, methods=["POST"]),
    ]
)


def connected(app: Any, socket: SocketTransport, **settings: Any) -> HttpProtocol:
    """An HttpProtocol on `socket` serving `app`, made as uvicorn makes one (`settings`:
    its Config's)."""
    config = Config(app, http=HttpProtocol, log_config=None, lifespan="off", **settings)
    config.load()
    protocol = HttpProtocol(
        config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
    )
    protocol.connection_made(socket)
    return protocol


async def serve(raw_requests: bytes, settle_s: float = 0.1) -> SocketTransport:
    """Feed raw HTTP to a OneWriteHttpToolsProtocol on APP in one read; the socket's writes."""
    return await serve_reads([raw_requests], settle_s)


def get(path: str, *extra: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "host: test", *extra, "", ""]).encode()


def test_a_response_leaves_in_one_write() -> None:
    """Head and body of an answer reach the socket together."""
    socket = asyncio.run(serve(get("/hello/ann")))
    assert len(socket.writes) == 1
    head, body = socket.writes[0].split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert body == b"hello ann"


def test_pipelined_requests_are_answered_in_order() -> None:
    """Two requests sent at once get both answers, in order, each whole."""
    socket = asyncio.run(serve(get("/hello/ann") + get("/hello/bob")))
    sent = b"".join(socket.writes)
    assert sent.count(b"HTTP/1.1 200 OK") == 2
    assert sent.index(b"hello ann") < sent.index(b"hello bob")
    assert not socket.closed


def test_connection_close_sends_the_answer_before_closing() -> None:
    """With `connection: close` the answer is written first, then the socket closes."""
    socket = asyncio.run(serve(get("/hello/ann", "connection: close")))
    assert socket.closed
    assert b"".join(socket.writes).endswith(b"hello ann")


def test_a_streamed_answer_goes_out_as_it_is_made() -> None:
    """Parts written in different loop turns are not held back for the end."""
    socket = asyncio.run(serve(get("/stream")))
    assert len(socket.writes) >= 2
    assert b"one," in b"".join(socket.writes)
    assert b"".join(socket.writes).endswith(b"0\r\n\r\n")  # the chunked stream's end


def test_a_malformed_request_is_answered_400_and_closed() -> None:
    """uvicorn's own error answer also gets out before the close."""
    socket = asyncio.run(serve(b"NOT HTTP\r\n\r\n"))
    assert socket.closed
    assert b"".join(socket.writes).startswith(b"HTTP/1.1 400")


# --- the request head limit (SLOTLOCK_MAX_HEADER_BYTES, 431 E105) ---


async def serve_reads(reads: list[bytes], settle_s: float = 0.1) -> SocketTransport:
    """Feed raw HTTP to the protocol one read at a time; the socket's writes."""
    socket = SocketTransport()
    protocol = connected(APP, socket)
    for data in reads:
        protocol.data_received(data)
        await asyncio.sleep(0)
    await asyncio.sleep(settle_s)
    return socket


def refused_with_431(socket: SocketTransport) -> bool:
    """Whether the socket got exactly one answer, 431 E105 as JSON, and was closed."""
    sent = b"".join(socket.writes)
    head, _, body = sent.partition(b"\r\n\r\n")
    return (
        socket.closed
        and head.startswith(b"HTTP/1.1 431 ")
        and sent.count(b"HTTP/1.1") == 1
        and b'"code":"E105"' in body
        and b"connection: close" in head
    )


def test_a_large_header_in_one_read_is_431_and_never_reaches_the_app() -> None:
    """A 100 KB header arriving whole is refused with 431 E105 and the connection closed."""
    socket = asyncio.run(serve_reads([get("/hello/ann", "x-big: " + "a" * 100_000)]))
    assert refused_with_431(socket)
    assert b"hello" not in b"".join(socket.writes)


def test_a_trickled_header_is_refused_once_past_the_limit() -> None:
    """A header sent 1 KiB at a time is refused as soon as the head passes the limit."""
    first = b"GET /hello/ann HTTP/1.1\r\nhost: test\r\nx-big: "
    reads = [first] + [b"a" * 1024] * 100
    socket = asyncio.run(serve_reads(reads))
    assert refused_with_431(socket)


def test_a_head_just_under_the_limit_is_served() -> None:
    """Headers that add up to just under the limit are served as usual."""
    filler = "a" * (DEFAULT_MAX_HEAD_BYTES - 200)
    socket = asyncio.run(serve_reads([get("/hello/ann", "x-fill: " + filler)]))
    assert b"".join(socket.writes).endswith(b"hello ann")


def test_a_large_body_after_a_small_head_in_one_read_is_not_refused() -> None:
    """The limit is the head's: a 60 KB body in the same read as its head is served."""
    body = b"b" * 60_000
    head = f"POST /size HTTP/1.1\r\nhost: test\r\ncontent-length: {len(body)}\r\n\r\n"
    socket = asyncio.run(serve_reads([head.encode() + body]))
    assert b"".join(socket.writes).endswith(b"60000")


def test_the_limit_is_per_request_on_a_kept_alive_connection() -> None:
    """Three requests of 10 KB headers each, in one connection, are all served."""
    one = get("/hello/ann", "x-fill: " + "a" * 10_000)
    socket = asyncio.run(serve_reads([one, one, one]))
    assert b"".join(socket.writes).count(b"hello ann") == 3


def test_a_large_head_begun_behind_another_request_is_refused() -> None:
    """A 30 KB head that starts in the read of a small request and ends in the next: 431."""
    second = get("/hello/bob", "x-big: " + "a" * 30_000)
    socket = asyncio.run(serve_reads([get("/hello/ann") + second[:15_000], second[15_000:]]))
    sent = b"".join(socket.writes)
    assert b"hello ann" in sent
    assert b"HTTP/1.1 431 " in sent
    assert b"hello bob" not in sent
    assert socket.closed


# --- what uvicorn's own protocol does, kept ---


async def serve_app(app: Any, raw_requests: bytes, settle_s: float = 0.05) -> SocketTransport:
    """Feed raw HTTP to an HttpProtocol serving `app`; the socket's writes."""
    socket = SocketTransport()
    connected(app, socket).data_received(raw_requests)
    await asyncio.sleep(settle_s)
    return socket


def post(path: str, body: bytes, *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "host: test", f"content-length: {len(body)}", *extra, "", ""]
    return "\r\n".join(head).encode() + body


def test_an_idle_connection_closes_after_the_keep_alive_timeout() -> None:
    """Kept alive while requests come; closed once idle for `timeout_keep_alive`."""

    async def scenario() -> tuple[bool, bool]:
        socket = SocketTransport()
        protocol = connected(APP, socket, timeout_keep_alive=0.2)
        for _ in range(3):  # busy for longer than the timeout in all
            protocol.data_received(get("/hello/ann"))
            await asyncio.sleep(0.1)
        open_while_used = not socket.closed
        await asyncio.sleep(0.35)
        return open_while_used, socket.closed

    assert asyncio.run(scenario()) == (True, True)


def test_http_1_0_closes_after_its_answer() -> None:
    """An HTTP/1.0 request gets `connection: close` and the connection ends."""
    socket = asyncio.run(serve(b"GET /hello/ann HTTP/1.0\r\nhost: test\r\n\r\n"))
    sent = b"".join(socket.writes)
    assert b"connection: close\r\n" in sent
    assert sent.endswith(b"hello ann")
    assert socket.closed


def test_head_gets_the_head_only() -> None:
    """HEAD answers with GET's headers and no body."""
    socket = asyncio.run(serve(b"HEAD /hello/ann HTTP/1.1\r\nhost: test\r\n\r\n"))
    sent = b"".join(socket.writes)
    assert sent.startswith(b"HTTP/1.1 200 OK")
    assert b"content-length: 9\r\n" in sent
    assert sent.endswith(b"\r\n\r\n")


def test_expect_100_continue_is_answered_when_the_body_is_read() -> None:
    """A client that waits for `100 Continue` gets it, then the answer."""
    request = post("/size", b"abc", "expect: 100-continue")
    sent = b"".join(asyncio.run(serve(request)).writes)
    assert sent.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")
    assert sent.endswith(b"3")


def test_a_chunked_request_body_reaches_the_app_whole() -> None:
    """A body sent in chunks, over several reads, is read to its end."""
    head = b"POST /size HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n"
    reads = [head + b"5\r\nhello\r\n", b"6\r\n world\r\n", b"0\r\n\r\n"]
    socket = asyncio.run(serve_reads(reads))
    assert b"".join(socket.writes).endswith(b"11")


def test_reading_pauses_while_a_large_body_waits_unread() -> None:
    """Past 64 KiB of unread body the socket stops reading; reading the body resumes it."""
    release = asyncio.Event()

    async def slow_reader(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()
        size, more = 0, True
        while more:
            message = await receive()
            size, more = size + len(message["body"]), message["more_body"]
        body = str(size).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    async def scenario() -> tuple[bool, bool, bytes]:
        socket = SocketTransport()
        protocol = connected(slow_reader, socket)
        head = b"POST /x HTTP/1.1\r\nhost: test\r\ncontent-length: 200000\r\n\r\n"
        protocol.data_received(head + b"a" * 100_000)
        await asyncio.sleep(0.01)
        paused = not socket.reading
        release.set()
        await asyncio.sleep(0.01)
        resumed = socket.reading
        protocol.data_received(b"a" * 100_000)
        await asyncio.sleep(0.01)
        return paused, resumed, b"".join(socket.writes)

    paused, resumed, sent = asyncio.run(scenario())
    assert paused
    assert resumed
    assert sent.endswith(b"200000")


def test_a_stream_s_head_leaves_before_its_first_part() -> None:
    """A streamed answer's head is written at once: an event stream opens before its first
    event."""
    release = asyncio.Event()

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await release.wait()
        await send({"type": "http.response.body", "body": b"first", "more_body": False})

    async def scenario() -> tuple[list[bytes], bytes]:
        socket = SocketTransport()
        connected(stream, socket).data_received(get("/events"))
        await asyncio.sleep(0.01)
        before = list(socket.writes)
        release.set()
        await asyncio.sleep(0.01)
        return before, b"".join(socket.writes)

    before, sent = asyncio.run(scenario())
    assert len(before) == 1
    assert before[0].endswith(b"transfer-encoding: chunked\r\n\r\n")
    assert sent.endswith(b"5\r\nfirst\r\n0\r\n\r\n")


def test_an_app_that_fails_before_answering_gets_a_500() -> None:
    """An exception before the answer began is a 500, and the connection closes."""

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("boom")

    socket = asyncio.run(serve_app(failing, get("/x")))
    assert b"".join(socket.writes).startswith(b"HTTP/1.1 500 Internal Server Error")
    assert socket.closed


@pytest.mark.parametrize(
    "header",
    [(b"x-echo", b"a\r\nset-cookie: x=1"), (b"set-cookie: x=1\r\nx-echo", b"a")],
    ids=["in a value", "in a name"],
)
def test_a_header_with_a_line_break_is_never_written(header: tuple[bytes, bytes]) -> None:
    """A header that would inject another fails the answer; nothing of it reaches the client."""

    async def injecting(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"2"), header]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    socket = asyncio.run(serve_app(injecting, get("/x")))
    assert b"set-cookie" not in b"".join(socket.writes)
    assert socket.closed


class HeldBackApp:
    """An ASGI app that answers `ok` once `release` is set; `finished` then."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.finished = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"ok"})
        self.finished.set()


def test_writes_after_the_client_left_are_dropped() -> None:
    """An answer finished after the connection was lost writes nothing, and raises nothing."""

    async def scenario() -> list[bytes]:
        slow = HeldBackApp()
        socket = SocketTransport()
        protocol = connected(slow, socket)
        protocol.data_received(get("/x"))
        await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        slow.release.set()
        await asyncio.wait_for(slow.finished.wait(), 1)
        return socket.writes

    assert asyncio.run(scenario()) == []


def test_a_request_still_reading_its_body_sees_the_client_leave() -> None:
    """An app waiting for body that never comes is told `http.disconnect`."""
    seen: list[str] = []

    async def reader(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                seen.append("disconnect")
                return

    async def scenario() -> None:
        socket = SocketTransport()
        protocol = connected(reader, socket)
        protocol.data_received(b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\nabc")
        await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert seen == ["disconnect"]


def test_shutdown_closes_an_idle_connection_and_a_busy_one_after_its_answer() -> None:
    """uvicorn's graceful stop: idle closes now; the answer under way is finished first."""

    async def scenario() -> tuple[bool, bool, bool, bytes]:
        slow = HeldBackApp()
        idle_socket, busy_socket = SocketTransport(), SocketTransport()
        idle, busy = connected(slow, idle_socket), connected(slow, busy_socket)
        busy.data_received(get("/x"))
        await asyncio.sleep(0.01)
        idle.shutdown()
        busy.shutdown()
        busy_open = not busy_socket.closed
        slow.release.set()
        await asyncio.sleep(0.01)
        return idle_socket.closed, busy_open, busy_socket.closed, b"".join(busy_socket.writes)

    idle_closed, busy_open, busy_closed, sent = asyncio.run(scenario())
    assert idle_closed
    assert busy_open
    assert busy_closed
    assert b"connection: close\r\n" in sent
    assert sent.endswith(b"ok")
