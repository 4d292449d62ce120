"""The embedded redis-server never outlives its service, and a stale one never serves a new one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from service.embedded import EmbeddedRedis, ping
from tests.live import LiveService, slotlock, wait_for


def redis_pid(data_dir: Path) -> int:
    """The pid of the redis-server answering on the data directory's socket."""
    with redis.Redis(unix_socket_path=str(data_dir / "redis.sock"), socket_timeout=2) as client:
        return int(client.info("server")["process_id"])


def gone(pid: int) -> bool:
    """Whether the process has exited (a zombie nobody reaped yet counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return status.rpartition(")")[2].split()[0] in ("Z", "X")


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The services' data directory."""
    return tmp_path / "data"


@pytest.fixture
def services() -> Iterator[list[LiveService]]:
    """The services a test starts (like `make run` with no REDIS_URL); stopped by pid after it."""
    started: list[LiveService] = []
    yield started
    for service in started:
        service.stop()


def serve(services: list[LiveService], tmp_path: Path, data_dir: Path) -> LiveService:
    """Start one more service on the data directory and wait until it is ready."""
    service = LiveService(tmp_path / f"serve-{len(services)}.log", SLOTLOCK_DATA_DIR=str(data_dir))
    services.append(service)
    service.start()
    return service


def test_kill_9_of_the_service_takes_its_redis_down(
    services: list[LiveService], tmp_path: Path, data_dir: Path
) -> None:
    """After SIGKILL of the service, its redis-server exits too and the socket stops answering."""
    service = serve(services, tmp_path, data_dir)
    pid = redis_pid(data_dir)
    service.signal(signal.SIGKILL)
    assert service.process is not None
    service.process.wait(timeout=10)
    try:
        assert wait_for(lambda: gone(pid), timeout_s=10)
        assert not ping(data_dir / "redis.sock")
    finally:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)  # left behind by a failure: do not leak it


def test_the_next_start_after_kill_9_gets_a_redis_of_its_own(
    services: list[LiveService], tmp_path: Path, data_dir: Path
) -> None:
    """A service started after a killed one runs its own redis-server and keeps the data."""
    first = serve(services, tmp_path, data_dir)
    created = slotlock("keys", "create", "--environment", "dev", SLOTLOCK_DATA_DIR=str(data_dir))
    assert created.returncode == 0, created.stderr
    old_pid = redis_pid(data_dir)
    first.signal(signal.SIGKILL)
    serve(services, tmp_path, data_dir)
    assert redis_pid(data_dir) != old_pid
    listed = slotlock("keys", "list", SLOTLOCK_DATA_DIR=str(data_dir))
    assert len(listed.stdout.splitlines()) == 2, listed.stderr  # the AOF kept the pair


def test_a_stale_redis_left_on_the_socket_is_shut_down_at_start(
    services: list[LiveService], tmp_path: Path, data_dir: Path
) -> None:
    """A redis-server whose service is gone (recorded owner dead) is stopped, not reused."""
    stale = EmbeddedRedis(data_dir)
    stale.start()  # this test process is its parent: it cannot die with a service
    assert stale._process is not None
    orphan = stale._process
    record = json.loads(stale.owner_path.read_text())
    stale.owner_path.write_text(json.dumps(record | {"service_pid": dead_pid()}))
    try:
        serve(services, tmp_path, data_dir)
        assert orphan.wait(timeout=10) == 0  # SHUTDOWN: a clean exit
        assert redis_pid(data_dir) != orphan.pid
    finally:
        stale.stop()


def test_a_second_service_on_a_busy_data_dir_refuses_in_one_line(
    services: list[LiveService], tmp_path: Path, data_dir: Path
) -> None:
    """While a service owns the data directory, another exits 2 saying so; the first serves on."""
    serve(services, tmp_path, data_dir)
    pid = redis_pid(data_dir)
    done = slotlock("serve", "--port", "1", SLOTLOCK_DATA_DIR=str(data_dir))
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "SLOTLOCK_DATA_DIR" in done.stderr
    assert redis_pid(data_dir) == pid
