"""The bench's child processes: pinned to a core with taskset, logged to files, stopped by pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


class BenchError(RuntimeError):
    """The bench could not run: a server did not start, a phase did not finish."""


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def can_pin() -> bool:
    """Whether taskset exists and there are two cores to pin to."""
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def pinned(argv: list[str], core: int | None) -> list[str]:
    """`argv` run on `core` only (taskset execs it, so the pid stays the program's)."""
    return argv if core is None else ["taskset", "-c", str(core), *argv]


def clean_environment(**variables: str) -> dict[str, str]:
    """This process's environment without slotlock settings, plus `variables`."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("SLOTLOCK_") and name != "REDIS_URL"
    }
    return inherited | variables


class Child:
    """One child process, its output in `log_path`."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The running process's id."""
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        """Start it in a session of its own."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                start_new_session=True,
            )  # fmt: skip

    def wait_until(
        self, check: Callable[[], bool], what: str, timeout_s: float = START_TIMEOUT_S
    ) -> None:
        """Poll `check` until it holds; BenchError (with the log's tail) if the child dies."""
        deadline = time.monotonic() + timeout_s
        while not check():
            if self.process is None or self.process.poll() is not None:
                raise BenchError(f"{what} exited early:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"{what} did not get ready:\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the child wrote."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM by pid, SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)


def port_open(port: int) -> bool:
    """Whether something accepts connections on the loopback port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def ready(url: str) -> bool:
    """Whether GET `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback URL)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def redis_server(
    directory: Path,
    port: int,
    core: int | None,
    wrapper: tuple[str, ...] = (),
    timeout_s: float = START_TIMEOUT_S,
) -> Child:
    """A started redis-server on the loopback port, without persistence; run by `wrapper`
    (valgrind, say) when one is given, and waited for as long as `timeout_s`."""
    argv = [
        *wrapper, "redis-server", "--port", str(port), "--bind", "127.0.0.1",
        "--dir", str(directory), "--save", "", "--appendonly", "no",
        "--logfile", str(directory / "redis.log"),
    ]  # fmt: skip
    child = Child(pinned(argv, core), directory / "redis-stdout.log")
    child.start()
    child.wait_until(lambda: port_open(port), "redis-server", timeout_s=timeout_s)
    return child


def uvicorn_argv(factory: str, port: int) -> list[str]:
    """A single-worker uvicorn (uvloop, httptools) serving an app factory."""
    return [
        sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def slotlock_argv(port: int) -> list[str]:
    """`slotlock serve --workers 1` on the loopback port."""
    return [
        sys.executable, "-c", "from service.cli import main; raise SystemExit(main())",
        "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--graceful-timeout", "5",
    ]  # fmt: skip


def uvicorn_app(factory: str, port: int, core: int | None, log: Path, env: dict[str, str]) -> Child:
    """A started single-worker uvicorn serving an app factory."""
    child = Child(pinned(uvicorn_argv(factory, port), core), log, env)
    child.start()
    child.wait_until(lambda: port_open(port), factory)
    return child


def slotlock_serve(port: int, core: int | None, log: Path, env: dict[str, str]) -> Child:
    """A started `slotlock serve --workers 1`, ready (GET /readyz is 200)."""
    child = Child(pinned(slotlock_argv(port), core), log, env)
    child.start()
    child.wait_until(lambda: ready(f"http://127.0.0.1:{port}/readyz"), "slotlock serve")
    return child
