"""Real redis-server processes for tests: started on free loopback ports, stopped by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server child on 127.0.0.1:<port>, with its files in `directory`."""

    def __init__(self, directory: Path, port: int, extra_args: list[str] | None = None) -> None:
        self.directory = directory
        self.port = port
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start_new(cls, directory: Path, extra_args: list[str] | None = None) -> RedisServer:
        """Start a server on a free port and wait until it answers."""
        server = cls(directory, free_port(), extra_args)
        server.start()
        return server

    @property
    def url(self) -> str:
        """The REDIS_URL that reaches it."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """(Re)start the server on its port with its directory, and wait for PONG."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(self.directory / "redis.log"),
                *self.extra_args,
            ],
            start_new_session=True,
        )
        self.wait_until_up()

    def wait_until_up(self, timeout_s: float = 10.0) -> None:
        """Block until PING answers, or fail."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with self.client() as probe:
                    if probe.ping():
                        return
            except redis.exceptions.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def client(self) -> redis.Redis:
        """A synchronous client, for set-up and inspection from tests."""
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=2)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server by pid with `sig` (SIGKILL: no chance to save anything)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """Stop the server gracefully."""
        self.kill(signal.SIGTERM)
