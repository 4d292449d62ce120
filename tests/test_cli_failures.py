"""A failing `slotlock` command says in one line what failed and what to do, and exits non-zero."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.store.api_keys import KeyPair
from tests.live import SLOTLOCK, LiveApi, LiveService, environment, slotlock, wait_for
from tests.redis_servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (and no traceback)."""
    assert done.returncode != 0, done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["keys", "create", "--environment", "dev"], ["keys", "list"]])
def test_keys_with_redis_unreachable_fail_in_one_line(command: list[str]) -> None:
    """With nothing listening at REDIS_URL, a keys command names Redis and what to check."""
    url = f"redis://user:hunter2@127.0.0.1:{free_port()}/0"
    line = one_line(slotlock(*command, REDIS_URL=url))
    assert line.startswith(f"slotlock {' '.join(command[:2])}: cannot reach Redis at ")
    assert "REDIS_URL" in line
    assert "hunter2" not in line


def test_keys_on_memory_url_refuse_in_one_line(tmp_path: Path) -> None:
    """memory:// lives inside the serving process: keys refuse, pointing at its dev pair."""
    variables = {"REDIS_URL": "memory://", "SLOTLOCK_DATA_DIR": str(tmp_path)}
    line = one_line(slotlock("keys", "create", "--environment", "dev", **variables))
    assert "memory-keys.json" in line


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("missing", lambda path: None),
        ("directory", lambda path: path.mkdir()),
        ("not json", lambda path: path.write_text("[{")),
        ("wrong shape", lambda path: path.write_text('[{"environment": "x", "public_key": 5}]')),
    ],
)
def test_serve_with_an_unreadable_keys_file_fails_in_one_line(
    name: str, make: Callable[[Path], object], tmp_path: Path
) -> None:
    """A bad SLOTLOCK_KEYS_FILE stops `serve` before it starts, naming the variable and file."""
    path = tmp_path / "keys.json"
    make(path)
    variables = {"SLOTLOCK_KEYS_FILE": str(path), "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    done = slotlock("serve", "--port", str(free_port()), **variables)
    line = one_line(done)
    assert done.returncode == 2
    assert f"SLOTLOCK_KEYS_FILE {path}" in line


@pytest.fixture
def memory_service(tmp_path: Path) -> Iterator[LiveService]:
    """`slotlock serve` with REDIS_URL=memory://, its data directory in tmp_path."""
    service = LiveService(
        tmp_path / "serve.log", REDIS_URL="memory://", SLOTLOCK_DATA_DIR=str(tmp_path / "data")
    )
    service.start()
    yield service
    service.stop()


def test_memory_url_warns_and_its_dev_pair_works(
    memory_service: LiveService, tmp_path: Path
) -> None:
    """On memory:// the service warns, and the dev pair it wrote authenticates against it."""
    dev_keys = tmp_path / "data" / "memory-keys.json"
    assert wait_for(lambda: '"level":"warning"' in memory_service.log(), timeout_s=3)
    assert str(dev_keys) in memory_service.log()
    assert dev_keys.stat().st_mode & 0o077 == 0
    live = LiveApi(memory_service, KeyPair(**json.loads(dev_keys.read_text())))
    try:
        assert live.call("POST", "/resources", {"name": "Room"}).status_code in (200, 201)
    finally:
        live.close()
    memory_service.stop()
    assert not dev_keys.exists()


def test_without_redis_server_the_fallback_warns_and_keys_point_at_its_pair(
    tmp_path: Path,
) -> None:
    """With no redis-server on PATH, serve warns and `keys create` points at the dev pair."""
    no_redis = tmp_path / "bin"
    no_redis.mkdir()
    data_dir = str(tmp_path / "data")
    service = LiveService(tmp_path / "serve.log", PATH=str(no_redis), SLOTLOCK_DATA_DIR=data_dir)
    service.start()
    try:
        assert wait_for(lambda: "no redis-server on PATH" in service.log(), timeout_s=3)
        done = slotlock("keys", "create", "--environment", "dev", SLOTLOCK_DATA_DIR=data_dir)
        assert "memory-keys.json" in one_line(done)
        pair = KeyPair(**json.loads((tmp_path / "data" / "memory-keys.json").read_text()))
        live = LiveApi(service, pair)
        try:
            assert live.call("GET", "/resources", key="public").status_code == 200
        finally:
            live.close()
    finally:
        service.stop()


def test_make_run_listens_on_the_port_it_is_given(tmp_path: Path) -> None:
    """`make run PORT=N` serves on port N."""
    port = free_port()
    venv_bin = str(Path(SLOTLOCK).parent)
    with (tmp_path / "make.log").open("wb") as log:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"PORT={port}", f"BIN={venv_bin}"],
            cwd=ROOT,
            env=environment(SLOTLOCK_DATA_DIR=str(tmp_path / "data")),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = LiveService(tmp_path / "unused.log")
    service.port = port
    service.process = process
    try:
        assert wait_for(service.ready, timeout_s=20), (tmp_path / "make.log").read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # make and the service it started
        process.wait(timeout=20)
