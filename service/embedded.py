"""The embedded default Redis, used when REDIS_URL is not set.

A private `redis-server` child on a unix socket, with its data and AOF under
the data directory, stopped with the service. It never outlives the service:
the kernel sends it SIGTERM when the service dies, even by SIGKILL (Linux's
parent-death signal), and a server left answering on the socket by a service
that is gone (another OS, an older slotlock) is shut down when the next
service starts. Without `redis-server` on PATH, the caller falls back to an
in-process fakeredis (memory://).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 30.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class EmbeddedRedisError(RuntimeError):
    """The embedded server cannot be started; the message says why and what to do."""


class Owner(msgspec.Struct):
    """Who started the server on the socket: written next to it, read by the next start."""

    service_pid: int
    redis_pid: int


class EmbeddedRedis:
    """A redis-server child process serving a unix socket in `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.socket_path = self.data_dir / "redis.sock"
        self.owner_path = self.data_dir / "redis.owner.json"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The REDIS_URL that reaches it."""
        return f"unix://{self.socket_path}"

    @staticmethod
    def available() -> bool:
        """Whether a redis-server binary is on PATH."""
        return shutil.which("redis-server") is not None

    def running(self) -> bool:
        """Whether something answers PING on the socket."""
        return ping(self.socket_path)

    def start(self) -> None:
        """Start the server, shutting down a stale one first; wait until it answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.running():
            self._reap_stale()
        self.socket_path.unlink(missing_ok=True)
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                "0",
                "--unixsocket",
                str(self.socket_path),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--logfile",
                str(self.data_dir / "redis.log"),
            ],
            # A session of its own: Ctrl-C in a terminal must reach the service,
            # which drains its requests, and not Redis, which they still need.
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )
        owner = Owner(service_pid=os.getpid(), redis_pid=self._process.pid)
        self.owner_path.write_bytes(msgspec.json.encode(owner))
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self.running():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise EmbeddedRedisError(
                    f"redis-server did not start; see {self.data_dir / 'redis.log'}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server if this object started it (SIGTERM: Redis flushes its AOF)."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                self._process.wait(timeout=_STOP_TIMEOUT_S)
            self.owner_path.unlink(missing_ok=True)
        self._process = None

    def _reap_stale(self) -> None:
        """Shut down the server on the socket unless a live service owns it (then refuse)."""
        owner = self._owner()
        if owner is not None and _is_slotlock(owner.service_pid):
            raise EmbeddedRedisError(
                f"another `slotlock serve` (pid {owner.service_pid}) uses {self.data_dir}: "
                "stop it, or give this one its own SLOTLOCK_DATA_DIR"
            )
        # SHUTDOWN over the socket, not a signal to a recorded pid: a pid may have
        # been reused since, while the socket can only reach the server on it.
        _send(self.socket_path, b"SHUTDOWN\r\n")
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while self.running():
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(
                    f"a stale redis-server on {self.socket_path} does not shut down: stop it"
                )
            time.sleep(0.05)
        self.owner_path.unlink(missing_ok=True)

    def _owner(self) -> Owner | None:
        try:
            return msgspec.json.decode(self.owner_path.read_bytes(), type=Owner)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return None


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A pre-exec hook that has the kernel SIGTERM the child when its parent dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    # Resolved here, in the parent: the hook runs between fork and exec, where
    # importing or loading a library could deadlock on a lock another thread held.
    prctl = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the parent died before the hook ran
            os._exit(1)

    return hook


def _is_slotlock(pid: int) -> bool:
    """Whether `pid` is another live slotlock process (not a stranger that reused the pid)."""
    if pid == os.getpid():
        return False
    if not Path("/proc/self").exists():  # no procfs to ask: trust the pid
        return _alive(pid)
    try:
        return b"slotlock" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _send(socket_path: Path, command: bytes) -> None:
    """Send one command on the socket; SHUTDOWN answers by closing it."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(_STOP_TIMEOUT_S)
            client.connect(str(socket_path))
            client.sendall(command)
            client.recv(64)
    except OSError:
        pass  # it went away: that is what was asked


def ping(socket_path: Path) -> bool:
    """Whether a Redis server answers PING on a unix socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(0.5)
            client.connect(str(socket_path))
            client.sendall(b"PING\r\n")
            return client.recv(16).startswith(b"+PONG")
    except OSError:
        return False
