"""The embedded default Redis, used when REDIS_URL is not set.

A private `redis-server` child on a unix socket, with its data and AOF under
the data directory, stopped with the service. Without `redis-server` on PATH,
the caller falls back to an in-process fakeredis (memory://).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

_START_TIMEOUT_S = 10.0


class EmbeddedRedis:
    """A redis-server child process serving a unix socket in `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.socket_path = self.data_dir / "redis.sock"
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
        """Whether something answers PING on the socket (ours, or one already started)."""
        return ping(self.socket_path)

    def start(self) -> None:
        """Start the server unless one already serves the socket; wait until it answers."""
        if self.running():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
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
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self.running():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {self.data_dir / 'redis.log'}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server if this object started it (SIGTERM: Redis flushes its AOF)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=30)
        self._process = None


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
