"""SIGTERM to `slotlock serve` (the image's exact CMD) while clients keep calling it.

What Kubernetes needs from a pod being stopped: every request the process
accepted gets its whole answer (never a 5xx, never a cut connection), new
connections are refused, and the process exits well within the grace period.
"Accepted" is decided by the server itself: every request carries an
X-Request-Id, and the access log names each request the service handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.redis_servers import RedisServer, free_port
from tests.test_deploy_dockerfile import (
    CLEAN_EXITS,
    http_status,
    materialise,
    serve_arguments,
    start_image_cmd,
    stop,
    wait_for_status,
)

CLIENTS = 8
MAX_REQUESTS_PER_CLIENT = 2000
LOAD_BEFORE_SIGTERM = 300  # answered requests before the signal
SLOW_BODY_DELAY_S = 1.0  # how long after SIGTERM the in-flight request finishes its body
BOUND_S = 15.0  # no wait in this module lasts longer
# No 429s in the way: the load is one client per key, far above a frontend's rate.
UNLIMITED = {
    "SLOTLOCK_RATE_LIMIT_PUBLIC": "1000000/second",
    "SLOTLOCK_RATE_LIMIT_SECRET": "1000000/second",
}


@dataclass(frozen=True)
class Outcome:
    """One client request: its id, the status it got (None: no answer) and when it ended."""

    request_id: str
    status: int | None
    ended_s: float
    error: str = ""


@dataclass
class Service:
    """A running `slotlock serve` and what a test needs to call it."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    public_key: str
    secret_key: str

    @property
    def base_url(self) -> str:
        """Where it listens."""
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 80) -> str:
        """The end of its log."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def handled(self) -> dict[str, int]:
        """request id -> status of every request its access log records."""
        handled = {}
        for line in self.log.read_text().splitlines():
            entry = json.loads(line) if line.startswith("{") else {}
            if entry.get("logger") == "slotlock.access":
                handled[entry["request_id"]] = entry["status"]
        return handled


@contextlib.contextmanager
def running_service(directory: Path, extra_arguments: tuple[str, ...] = ()) -> Iterator[Service]:
    """The image's CMD on a loopback port, a fresh Redis, and a key pair from a keys file."""
    redis = RedisServer.start_new(directory / "redis")
    public_key, secret_key = "pk_" + secrets.token_hex(32), "sk_" + secrets.token_hex(32)
    keys_file = directory / "keys.json"
    pair = {"environment": "test", "public_key": public_key, "secret_key": secret_key}
    keys_file.write_text(json.dumps([pair]))
    app_dir = materialise(directory / "image")
    port = free_port()
    # faulthandler: a process that hangs can be made to print every thread's stack.
    extra_env = UNLIMITED | {"SLOTLOCK_KEYS_FILE": str(keys_file), "PYTHONFAULTHANDLER": "1"}
    process = start_image_cmd(app_dir, redis.url, port, extra_env, extra_arguments)
    try:
        wait_for_status(f"http://127.0.0.1:{port}/readyz", 200, process)
        yield Service(process, port, app_dir.parent / "service.log", public_key, secret_key)
    finally:
        stop(process)
        redis.stop()


def iso_in(**delta: float) -> str:
    """An ISO 8601 instant `delta` from now."""
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def request_head(service: Service, path: str, body: bytes, request_id: str) -> bytes:
    """The request line and headers of a keyed JSON POST."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {service.secret_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Request-Id: {request_id}\r\n\r\n"
    ).encode()


def parse_http(raw: bytes) -> tuple[int, dict[str, str], Any]:
    """Status, lower-cased headers and JSON body of one raw HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    assert len(body) == int(headers["content-length"]), "the answer was cut short"
    return int(status_line.split()[1]), headers, json.loads(body)


# --- The load ---------------------------------------------------------------


async def create_slots(session: aiohttp.ClientSession, service: Service, count: int) -> list[str]:
    """A published resource with `count` future slots; their ids."""
    headers = {"Authorization": f"Bearer {service.secret_key}"}

    async def post(path: str, body: dict[str, Any]) -> Any:
        async with session.post(service.base_url + path, json=body, headers=headers) as answer:
            assert answer.status == 200, await answer.text()
            return (await answer.json())["data"]

    resource = await post("/resources", {"name": "Room 1"})
    await post(f"/resources/{resource['id']}/publish", {})
    slots = [
        {
            "start_date": iso_in(days=1, hours=hour),
            "end_date": iso_in(days=1, hours=hour + 0.5),
            "capacity": 1,
        }
        for hour in range(count)
    ]
    created = await post("/slots", {"resource_id": resource["id"], "slots": slots})
    return [slot["id"] for slot in created]


async def call(
    session: aiohttp.ClientSession, method: str, url: str, request_id: str, **kwargs: Any
) -> Outcome:
    """One request, read to the end of its body; an answer must be a JSON envelope."""
    headers = {"X-Request-Id": request_id, **kwargs.pop("headers", {})}
    try:
        async with session.request(method, url, headers=headers, **kwargs) as answer:
            body = await answer.json(content_type=None)
            assert isinstance(body, dict), body
            return Outcome(request_id, answer.status, time.monotonic())
    except (aiohttp.ClientError, TimeoutError) as error:
        return Outcome(request_id, None, time.monotonic(), type(error).__name__)


async def client_loop(
    session: aiohttp.ClientSession,
    service: Service,
    index: int,
    slot_id: str,
    stopping: asyncio.Event,
    outcomes: list[Outcome],
) -> None:
    """What one frontend does, over and over: health, read, lock and unlock its slot."""
    auth = {"Authorization": f"Bearer {service.public_key}"}
    slot_url = f"{service.base_url}/slots/{slot_id}"
    lock = {"lock_key": f"client-{index}", "lock_until": iso_in(minutes=10)}
    plan: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"{service.base_url}/healthz", {}),
        ("GET", slot_url, {"headers": auth}),
        ("POST", f"{slot_url}/lock", {"headers": auth, "json": lock}),
        ("POST", f"{slot_url}/unlock", {"headers": auth, "json": {"lock_key": lock["lock_key"]}}),
    ]
    for number in range(MAX_REQUESTS_PER_CLIENT):
        if stopping.is_set():
            return
        method, url, kwargs = plan[number % len(plan)]
        outcome = await call(session, method, url, f"load-{index}-{number}", **kwargs)
        outcomes.append(outcome)
        if outcome.status is None:
            await asyncio.sleep(0.01)  # refused: do not spin


async def slow_lock(service: Service, slot_id: str, sigterm_sent: asyncio.Event) -> bytes:
    """A lock whose body is half sent before SIGTERM and finished after it; the raw answer."""
    body = json.dumps({"lock_key": "slow", "lock_until": iso_in(minutes=10)}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    try:
        writer.write(request_head(service, f"/slots/{slot_id}/lock", body, "slow-1") + body[:10])
        await writer.drain()
        await sigterm_sent.wait()
        await asyncio.sleep(SLOW_BODY_DELAY_S)
        writer.write(body[10:])
        await writer.drain()
        # The server closes the connection after answering: it is shutting down.
        return await asyncio.wait_for(reader.read(), timeout=BOUND_S)
    finally:
        writer.close()


def exits_within(service: Service, timeout_s: float) -> bool:
    """Whether it exits in time; if not, its log ends with the stack of every thread."""
    try:
        service.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.kill(service.process.pid, signal.SIGABRT)  # faulthandler dumps, then it dies
        service.process.wait(timeout=BOUND_S)
        return False
    return True


async def wait_for_exit(service: Service) -> float:
    """Seconds until the process exits (waiting in a thread, so the load keeps running)."""
    started = time.monotonic()
    await asyncio.to_thread(exits_within, service, BOUND_S)
    return time.monotonic() - started


@dataclass
class ShutdownRun:
    """What one SIGTERM under load showed."""

    outcomes: list[Outcome] = field(default_factory=list)
    sigterm_s: float = 0.0
    exit_after_s: float = 0.0
    slow_answer: bytes = b""
    handled: dict[str, int] = field(default_factory=dict)
    log: str = ""
    exit_code: int | None = None


async def shut_down_under_load(service: Service) -> ShutdownRun:
    """Load and a half-sent request, then SIGTERM; observe until the process is gone."""
    run = ShutdownRun()
    stopping, sigterm_sent = asyncio.Event(), asyncio.Event()
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=BOUND_S)
    ) as session:
        slot_ids = await create_slots(session, service, CLIENTS + 1)
        slow = asyncio.create_task(slow_lock(service, slot_ids[-1], sigterm_sent))
        clients = [
            asyncio.create_task(
                client_loop(session, service, i, slot_ids[i], stopping, run.outcomes)
            )
            for i in range(CLIENTS)
        ]
        deadline = time.monotonic() + BOUND_S
        while sum(o.status is not None for o in run.outcomes) < LOAD_BEFORE_SIGTERM:
            assert time.monotonic() < deadline, "the load never got going"
            await asyncio.sleep(0.01)
        os.kill(service.process.pid, signal.SIGTERM)
        run.sigterm_s = time.monotonic()
        sigterm_sent.set()
        run.exit_after_s = await wait_for_exit(service)
        stopping.set()
        await asyncio.gather(*clients)
        run.slow_answer = await slow
    run.exit_code = service.process.returncode
    run.handled = service.handled()
    run.log = service.log.read_text()
    return run


@pytest.fixture(scope="module")
def shutdown(tmp_path_factory: pytest.TempPathFactory) -> ShutdownRun:
    """One SIGTERM under load, observed (the tests below each check one side of it)."""
    with running_service(tmp_path_factory.mktemp("shutdown")) as service:
        return asyncio.run(shut_down_under_load(service))


# --- The tests --------------------------------------------------------------


def test_every_request_the_server_accepted_got_its_full_answer(shutdown: ShutdownRun) -> None:
    """The requests the access log records are exactly those answered, each with that status."""
    answered = {o.request_id: o.status for o in shutdown.outcomes if o.status is not None}
    handled = {rid: status for rid, status in shutdown.handled.items() if rid.startswith("load-")}
    assert len(answered) >= LOAD_BEFORE_SIGTERM
    assert handled == answered


def test_no_request_got_a_server_error(shutdown: ShutdownRun) -> None:
    """Not one answer, before or after SIGTERM, is a 5xx."""
    statuses = [o.status for o in shutdown.outcomes if o.status is not None]
    assert statuses
    assert max(statuses) < 500
    assert all(status < 500 for status in shutdown.handled.values())


def test_requests_after_sigterm_are_refused_not_cut(shutdown: ShutdownRun) -> None:
    """The load ran past the signal; what found no answer was sent after it, and never handled."""
    unanswered = [o for o in shutdown.outcomes if o.status is None]
    assert unanswered, "the load stopped before the process did"
    assert all(o.ended_s > shutdown.sigterm_s for o in unanswered)
    assert not {o.request_id for o in unanswered} & set(shutdown.handled)


def test_the_request_in_flight_at_sigterm_is_answered_in_full(shutdown: ShutdownRun) -> None:
    """A lock half-received at SIGTERM is finished and answered 200, then the connection closes."""
    status, headers, body = parse_http(shutdown.slow_answer)
    assert status == 200
    assert body["success"] is True
    assert headers["connection"] == "close"
    assert shutdown.handled["slow-1"] == 200


def test_the_process_exits_cleanly_within_the_grace_period(shutdown: ShutdownRun) -> None:
    """It exits once the last request is answered, well inside the graceful timeout."""
    graceful_timeout_s = serve_arguments()["graceful_timeout"]
    assert isinstance(graceful_timeout_s, float)
    assert shutdown.exit_code in CLEAN_EXITS, shutdown.log[-8000:]  # with stacks if it hung
    assert SLOW_BODY_DELAY_S <= shutdown.exit_after_s < SLOW_BODY_DELAY_S + 3
    assert shutdown.exit_after_s < graceful_timeout_s


def test_the_log_is_complete_when_the_process_is_gone(shutdown: ShutdownRun) -> None:
    """Every line up to uvicorn's last reaches the log, so no drained request goes unrecorded."""
    assert "Application shutdown complete" in shutdown.log
    assert "Finished server process" in shutdown.log


def test_a_stalled_client_cannot_hold_the_process_past_the_timeout(tmp_path: Path) -> None:
    """A request whose body never arrives is dropped at the graceful timeout, and it exits."""
    timeout_s = 1.0
    with running_service(tmp_path, ("--graceful-timeout", str(timeout_s))) as service:
        body = json.dumps({"name": "never finished"}).encode()
        with socket.create_connection(("127.0.0.1", service.port), timeout=BOUND_S) as client:
            client.sendall(request_head(service, "/resources", body, "stalled-1") + body[:5])
            # A round trip after it: the server has read those headers, the request is in flight.
            assert http_status(f"{service.base_url}/healthz") == 200
            started = time.monotonic()
            os.kill(service.process.pid, signal.SIGTERM)
            exited = exits_within(service, BOUND_S)
            elapsed_s = time.monotonic() - started
            assert exited, f"still running {BOUND_S} s after SIGTERM:\n{service.log_tail()}"
    assert timeout_s <= elapsed_s < timeout_s + 3
    assert service.process.returncode in CLEAN_EXITS
    assert "timeout graceful shutdown exceeded" in service.log.read_text()
