"""Oversized request heads against `slotlock serve`, over raw sockets: 431 E105, then closed."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.live import LiveService

pytestmark = pytest.mark.slow

LIMIT = 16384
START = b"GET /healthz HTTP/1.1\r\nhost: test\r\nx-big: "


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """`slotlock serve` on the in-memory store (the head limit needs no Redis)."""
    live = LiveService(tmp_path_factory.mktemp("headers") / "slotlock.log", REDIS_URL="memory://")
    live.start()
    yield live
    live.stop()


@dataclass
class Outcome:
    """What one connection saw: the answer, the bytes it sent, and whether it was closed."""

    answer: bytes
    sent: int
    closed: bool

    def status_and_code(self) -> tuple[int, str]:
        """The status line's code and the envelope's error code."""
        head, _, body = self.answer.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        return status, json.loads(body)["error"]["code"]


def send_header(port: int, header_bytes: int, chunk: int, pause_s: float = 0.0) -> Outcome:
    """Send a GET with one `header_bytes` long header in `chunk`s; stop once the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(START)
        sent = len(START)
        while sent - len(START) < header_bytes:
            if select.select([client], [], [], 0)[0]:
                break  # answered (or closed) before the head was complete
            try:
                sent += client.send(b"a" * min(chunk, header_bytes - (sent - len(START))))
            except (BrokenPipeError, ConnectionResetError):
                break
            if pause_s:
                time.sleep(pause_s)
        else:
            client.sendall(b"\r\n\r\n")
        answer, closed = read_until_closed(client)
    return Outcome(answer, sent, closed)


def read_until_closed(client: socket.socket, timeout_s: float = 5.0) -> tuple[bytes, bool]:
    """Everything the server sends, and whether it closed the connection within timeout_s."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            data = client.recv(65536)
        except ConnectionResetError:
            return b"".join(chunks), True
        except TimeoutError:
            break
        if not data:
            return b"".join(chunks), True
        chunks.append(data)
    return b"".join(chunks), False


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError("no VmRSS")


@pytest.mark.parametrize("header_bytes", [100_000, 1_000_000, 20_000_000])
def test_an_oversized_header_is_431_e105_and_the_connection_closed(
    service: LiveService, header_bytes: int
) -> None:
    """A 100 KB, 1 MB or 20 MB header gets 431 E105 long before it is all sent, then a close."""
    outcome = send_header(service.port, header_bytes, chunk=64 * 1024)
    assert outcome.status_and_code() == (431, "E105")
    assert outcome.closed
    if header_bytes > 8_000_000:
        # Answered long before the end: what was sent past the limit sat in the
        # kernel's socket buffers (a few MB on loopback) or was dropped unread.
        assert outcome.sent < 8_000_000


def test_a_header_under_the_limit_is_served(service: LiveService) -> None:
    """A 10 KB header is no reason to refuse: /healthz answers 200."""
    outcome = send_header(service.port, 10_000, chunk=4096)
    assert outcome.answer.startswith(b"HTTP/1.1 200")


def test_trickled_headers_are_cut_off_at_the_limit_without_growing_the_worker(
    service: LiveService,
) -> None:
    """Three connections trickling 50 MB headers are each answered 431 just past the limit."""
    assert service.process is not None
    rss_before = rss_kib(service.process.pid)
    outcomes: list[Outcome] = []

    def trickle() -> None:
        outcomes.append(send_header(service.port, 50_000_000, chunk=1024, pause_s=0.001))

    threads = [threading.Thread(target=trickle) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == 3
    for outcome in outcomes:
        assert outcome.status_and_code() == (431, "E105")
        assert outcome.closed
        assert outcome.sent < LIMIT + 64 * 1024
    # A loose bound only (the issue saw +146 MB): the worker held no head past the limit.
    assert rss_kib(service.process.pid) - rss_before < 20_000
