"""The uvicorn protocol `slotlock serve` runs: every response leaves in one write."""

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

from service.http_protocol import (
    DEFAULT_MAX_HEAD_BYTES,
    GatheringTransport,
    OneWriteHttpToolsProtocol,
)


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


@pytest.mark.parametrize("peer_left", [False, True])
def test_gathered_writes_after_an_abort_or_a_lost_peer_are_dropped(peer_left: bool) -> None:
    """Nothing is written to a socket that is aborted or already closing."""

    async def scenario() -> SocketTransport:
        socket = SocketTransport()
        gathering = GatheringTransport(socket, asyncio.get_running_loop())
        gathering.write(b"head")
        assert gathering.get_write_buffer_size() == 4
        if peer_left:
            socket.closed = True
        else:
            gathering.abort()
        await asyncio.sleep(0)
        return socket

    assert asyncio.run(scenario()).writes == []


# --- the request head limit (SLOTLOCK_MAX_HEADER_BYTES, 431 E105) ---


async def serve_reads(reads: list[bytes], settle_s: float = 0.1) -> SocketTransport:
    """Feed raw HTTP to the protocol one read at a time; the socket's writes."""
    config = Config(APP, http=OneWriteHttpToolsProtocol, log_config=None, lifespan="off")
    config.load()
    protocol = OneWriteHttpToolsProtocol(
        config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
    )
    socket = SocketTransport()
    protocol.connection_made(socket)
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


def test_the_uvicorn_attributes_the_protocol_reads_are_still_there() -> None:
    """uvicorn's protocol still keeps the URL, headers and loop http_protocol.py reads (its
    callbacks: tests/test_private_names.py); if not, revisit uvicorn's pin in pyproject."""

    async def begun() -> OneWriteHttpToolsProtocol:
        config = Config(APP, http=OneWriteHttpToolsProtocol, log_config=None, lifespan="off")
        config.load()
        protocol = OneWriteHttpToolsProtocol(
            config=config,
            server_state=ServerState(),
            app_state={},
            _loop=asyncio.get_running_loop(),
        )
        protocol.connection_made(SocketTransport())
        protocol.on_message_begin()
        return protocol

    protocol = asyncio.run(begun())
    assert protocol.url == b""
    assert protocol.headers == []
    assert callable(protocol.loop.call_later)
