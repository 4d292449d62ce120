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

from service.http_protocol import GatheringTransport, OneWriteHttpToolsProtocol


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


APP = Starlette(routes=[Route("/hello/{name}", hello), Route("/stream", streamed)])


async def serve(raw_requests: bytes, settle_s: float = 0.1) -> SocketTransport:
    """Feed raw HTTP to a OneWriteHttpToolsProtocol on APP; the socket's writes."""
    config = Config(APP, http=OneWriteHttpToolsProtocol, log_config=None, lifespan="off")
    config.load()
    protocol = OneWriteHttpToolsProtocol(
        config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
    )
    socket = SocketTransport()
    protocol.connection_made(socket)
    protocol.data_received(raw_requests)
    await asyncio.sleep(settle_s)
    return socket


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
