"""The real thing for end-to-end tests: `slotlock` as a subprocess, spoken to over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import msgspec

from service.store.api_keys import KeyPair
from tests.redis_servers import free_port

SLOTLOCK = str(Path(sys.executable).parent / "slotlock")


def environment(**variables: str) -> dict[str, str]:
    """This process's environment without any slotlock setting, plus `variables`."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("SLOTLOCK_") and name != "REDIS_URL"
    }
    return inherited | variables


def slotlock(*arguments: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """Run the `slotlock` command to completion with `variables` as its settings."""
    return subprocess.run(
        [SLOTLOCK, *arguments],
        env=environment(**variables),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def create_keys(redis_url: str, environment_name: str = "test") -> KeyPair:
    """A key pair from `slotlock keys create`, stored in the Redis at `redis_url`."""
    done = slotlock("keys", "create", "--environment", environment_name, REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr
    return msgspec.json.decode(done.stdout, type=KeyPair)


def wait_for(check: Callable[[], bool], timeout_s: float, step_s: float = 0.05) -> bool:
    """Poll `check` until it holds or `timeout_s` passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step_s)
    return check()


class LiveService:
    """`slotlock serve` on a free port, its output in `log_path`, stopped by pid."""

    def __init__(self, log_path: Path, **variables: str) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.variables = variables
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The base URL of the service."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the service and wait until /readyz is 200."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [SLOTLOCK, "serve", "--port", str(self.port), "--graceful-timeout", "5"],
                env=environment(SLOTLOCK_LOG_LEVEL="INFO", **self.variables),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if not wait_for(self.ready, timeout_s=20):
            self.stop()
            raise RuntimeError(f"slotlock did not get ready:\n{self.log()}")

    def ready(self) -> bool:
        """Whether /readyz answers 200 now."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"slotlock exited early:\n{self.log()}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        """Everything the service wrote so far."""
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        """Send `sig` to the service's pid."""
        assert self.process is not None
        os.kill(self.process.pid, sig)

    def stop(self) -> int | None:
        """SIGTERM by pid, SIGKILL if it lingers; the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(timeout=5)
        code = self.process.returncode
        self.process = None
        return code


class LiveApi:
    """A synchronous HTTP client of a LiveService with one key pair."""

    def __init__(self, service: LiveService, pair: KeyPair) -> None:
        self.service = service
        self.pair = pair
        self.client = httpx.Client(base_url=service.url, timeout=10)

    def headers(self, key: str = "secret") -> dict[str, str]:
        """The Authorization header for the secret or the public key."""
        token = self.pair.secret_key if key == "secret" else self.pair.public_key
        return {"authorization": f"Bearer {token}"}

    def call(
        self, method: str, path: str, json: Any = None, *, key: str = "secret", request_id: str = ""
    ) -> httpx.Response:
        """One request with the chosen key (and an `x-request-id`, if given)."""
        headers = self.headers(key) | ({"x-request-id": request_id} if request_id else {})
        return self.client.request(method, path, json=json, headers=headers)

    def ok(self, method: str, path: str, json: Any = None, *, key: str = "secret") -> Any:
        """The `data` of a call that must succeed."""
        response = self.call(method, path, json, key=key)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def published_slot(self) -> dict[str, Any]:
        """A new slot, a day ahead, of a new published resource."""
        resource = self.ok("POST", "/resources", {"name": "Live room"})
        self.ok("POST", f"/resources/{resource['id']}/publish")
        start = time.time() + 86_400
        body = {
            "resource_id": resource["id"],
            "start_date": _iso(start),
            "end_date": _iso(start + 1800),
            "capacity": 1,
        }
        return dict(self.ok("POST", "/slots", body))

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


def lock_body(lock_key: str, seconds: float) -> dict[str, str]:
    """A lock request body holding for `seconds` from now."""
    return {"lock_key": lock_key, "lock_until": _iso(time.time() + seconds)}


def _iso(epoch_s: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s))
        + f".{int(epoch_s * 1000) % 1000:03d}Z"
    )
