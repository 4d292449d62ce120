"""Redis at its own limits, with a real redis-server per test: full, evicting, busy, a replica.

Each test starts the server with the limit in place, runs `slotlock serve` on it,
and checks what a client sees (status, code, Retry-After), what the log says
(once), and that nothing refused was applied.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import redis

from tests.api import error_of
from tests.live import LiveApi, LiveService, create_keys, lock_body, wait_for
from tests.redis_servers import RedisServer
from tests.test_events import run, stream


class StartedService(LiveService):
    """`slotlock serve` that counts as started once it answers /healthz (it may not be ready)."""

    def ready(self) -> bool:
        """Whether /healthz answers 200 now."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"slotlock exited early:\n{self.log()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False


@contextlib.contextmanager
def serving(server_url: str, keys_url: str, log_path: Path, **variables: str) -> Iterator[LiveApi]:
    """`slotlock serve` on `server_url`, with a key pair made through `keys_url`."""
    pair = create_keys(keys_url)
    service = StartedService(log_path, REDIS_URL=server_url, **variables)
    service.start()
    client = LiveApi(service, pair)
    try:
        yield client
    finally:
        client.close()
        service.stop()


def assert_refused(response: httpx.Response) -> None:
    """503 E103 with a Retry-After of at least 1 s."""
    assert error_of(response) == (503, "E103"), response.text
    assert int(response.headers["retry-after"]) >= 1


def new_slots(live: LiveApi, count: int) -> list[str]:
    """`count` slots of one new published resource, an hour apart."""
    resource = live.ok("POST", "/resources", {"name": "Full room"})
    live.ok("POST", f"/resources/{resource['id']}/publish")
    ids = []
    for index in range(count):
        start = time.time() + 86_400 + index * 3600
        body = {
            "resource_id": resource["id"],
            "start_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
            "end_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 1800)),
            "capacity": 1,
        }
        ids.append(live.ok("POST", "/slots", body)["id"])
    return ids


def log_count(live: LiveApi, text: str) -> int:
    """How often `text` is in the service's log so far."""
    return live.service.log().count(text)


# --- out of memory (maxmemory, noeviction) ---


def fill_past_maxmemory(client: redis.Redis) -> None:
    """Fill Redis with 2 MB of filler, then set maxmemory 1 MB below what it uses."""
    pipe = client.pipeline(transaction=False)
    for index in range(2000):
        pipe.set(f"filler:{index}", "x" * 1000)
    pipe.execute()
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used - 1_000_000)


def test_out_of_memory_refuses_every_write_before_it_writes_and_reads_go_on(
    tmp_path: Path,
) -> None:
    """On a full Redis 2,000 new locks and every create are 503 E103, none written; reads 200."""
    server = RedisServer.start_new(tmp_path / "redis", ["--maxmemory-policy", "noeviction"])
    try:
        # 2,000 locks from one key in a few seconds: above the default public rate limit.
        unlimited = {"SLOTLOCK_RATE_LIMIT_PUBLIC": "100000/second"}
        with serving(server.url, server.url, tmp_path / "slotlock.log", **unlimited) as live:
            slot_ids = new_slots(live, 40)
            with server.client() as client:
                fill_past_maxmemory(client)
                keys_before = client.dbsize()
                memory_before = int(client.info("memory")["used_memory"])
                statuses = []
                for lock_key in range(50):
                    for slot_id in slot_ids:
                        path = f"/slots/{slot_id}/lock"
                        response = live.call(
                            "POST", path, lock_body(f"k{lock_key}", 300), key="public"
                        )
                        statuses.append(error_of(response))
                assert_refused(response)
                assert set(statuses) == {(503, "E103")}
                assert len(statuses) == 2000
                assert_refused(live.call("POST", "/resources", {"name": "More"}))
                assert_refused(
                    live.call("POST", "/bookings", {"slot_id": slot_ids[0]}, key="public")
                )
                assert live.call("GET", f"/slots/{slot_ids[0]}").status_code == 200
                assert live.call("GET", "/resources").status_code == 200
                assert live.call("GET", "/readyz").status_code == 200  # reads are served
                assert client.dbsize() == keys_before
                assert not list(client.scan_iter(match="sl:*lock*"))
                assert int(client.info("memory")["used_memory"]) < memory_before + 200_000
            assert wait_for(lambda: log_count(live, "OutOfMemoryError") >= 1, timeout_s=3)
            assert log_count(live, "redis unreachable:") == 1
            assert "Traceback" not in live.service.log()
    finally:
        server.stop()


def test_reads_on_a_full_redis_go_on_with_locks_that_ran_out(tmp_path: Path) -> None:
    """Lists and a stream's replay sweep ended locks first; a full Redis refuses that
    write, and the list answers and the stream replays all the same."""
    server = RedisServer.start_new(tmp_path / "redis", ["--maxmemory-policy", "noeviction"])
    try:
        with serving(server.url, server.url, tmp_path / "slotlock.log") as live:
            slot_ids = new_slots(live, 3)
            resource_id = live.ok("GET", f"/slots/{slot_ids[0]}")["resource_id"]
            listed = live.call("GET", f"/slots?resource_id={resource_id}").json()
            before_lock = listed["meta"]["event_id"]
            live.ok("POST", f"/slots/{slot_ids[0]}/lock", lock_body("short", 1), key="public")
            time.sleep(1.5)  # the lock runs out; nothing has swept it yet
            with server.client() as client:
                fill_past_maxmemory(client)
                for query in (f"resource_id={resource_id}&available=true", "available=true"):
                    response = live.call("GET", f"/slots?{query}")
                    assert response.status_code == 200, response.text
                    assert response.json()["meta"]["total"] == 3

                async def replay() -> None:
                    resumed = {"last-event-id": before_lock}
                    async with stream(live, resource_id, **resumed) as reader:
                        assert reader.response.status == 200
                        assert [e.type for e in await reader.wait_for(1)] == ["slot.locked"]
                        assert not reader.ended.is_set()  # the stream goes on, live

                run(replay)
        assert "Traceback" not in live.service.log()
    finally:
        server.stop()


# --- an evicting maxmemory-policy ---


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru"])
def test_an_evicting_policy_is_not_ready_and_logged_once(tmp_path: Path, policy: str) -> None:
    """An evicting policy: /readyz 503 E103, the policy named in the log once; noeviction heals."""
    server = RedisServer.start_new(tmp_path / "redis", ["--maxmemory-policy", policy])
    try:
        with serving(server.url, server.url, tmp_path / "slotlock.log") as live:
            for _ in range(3):
                assert_refused(live.call("GET", "/readyz"))
            assert wait_for(lambda: log_count(live, f"maxmemory-policy {policy}") >= 1, 3)
            with server.client() as client:
                client.config_set("maxmemory-policy", "noeviction")
            assert live.call("GET", "/readyz").status_code == 200
            assert wait_for(lambda: log_count(live, "redis problem resolved") == 1, 3)
            assert log_count(live, f"maxmemory-policy {policy}") == 2  # appeared, resolved
    finally:
        server.stop()


def test_a_policy_changed_at_run_time_is_logged_without_a_probe(tmp_path: Path) -> None:
    """A policy set to allkeys-lru at run time is logged within 30 s, with no probe asking."""
    server = RedisServer.start_new(tmp_path / "redis")
    try:
        with serving(server.url, server.url, tmp_path / "slotlock.log") as live:
            assert live.call("GET", "/readyz").status_code == 200
            with server.client() as client:
                client.config_set("maxmemory-policy", "allkeys-lru")
            changed_s = time.monotonic()
            assert wait_for(lambda: log_count(live, "maxmemory-policy allkeys-lru") == 1, 30, 0.2)
            assert time.monotonic() - changed_s < 30
            assert_refused(live.call("GET", "/readyz"))
            time.sleep(0.5)
            assert log_count(live, "maxmemory-policy allkeys-lru") == 1
    finally:
        server.stop()


# --- BUSY: someone else's long script ---


def busy_script(server: RedisServer) -> threading.Thread:
    """Another client running a Lua loop that holds Redis until SCRIPT KILL."""

    def run() -> None:
        client = redis.Redis(port=server.port, socket_timeout=60)
        with contextlib.suppress(redis.exceptions.ResponseError):
            client.eval("local n = 0 while true do n = n + 1 end", 0)
        client.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def kill_script(server: RedisServer) -> None:
    """SCRIPT KILL, until Redis takes it (the script may not have started yet)."""

    def killed() -> bool:
        with server.client() as client:
            client.script_kill()
        return True

    assert wait_for(lambda: _quietly(killed), timeout_s=10, step_s=0.1)


def _quietly(check: Any) -> bool:
    try:
        return bool(check())
    except redis.exceptions.RedisError:
        return False


def test_busy_redis_is_503_for_every_request_and_one_log_line(tmp_path: Path) -> None:
    """While another client's script holds Redis, reads, writes and /readyz are fast 503 E103s."""
    server = RedisServer.start_new(tmp_path / "redis", ["--busy-reply-threshold", "100"])
    try:
        with serving(server.url, server.url, tmp_path / "slotlock.log") as live:
            slot = live.published_slot()
            live.call("GET", f"/slots/{slot['id']}")  # warm the key cache: BUSY meets the read
            thread = busy_script(server)
            time.sleep(0.3)
            for _ in range(3):
                started = time.monotonic()
                assert_refused(live.call("GET", f"/slots/{slot['id']}"))
                assert_refused(live.call("POST", f"/slots/{slot['id']}/lock", lock_body("k", 60)))
                assert_refused(live.call("GET", "/readyz"))
                assert time.monotonic() - started < 3
            time.sleep(0.5)  # rate-limit flushes (every 0.1 s) meet BUSY too
            kill_script(server)
            thread.join(timeout=10)
            assert wait_for(lambda: live.call("GET", "/readyz").status_code == 200, 10, 0.2)
            assert (
                live.call("POST", f"/slots/{slot['id']}/lock", lock_body("k", 60)).status_code
                == 200
            )
            assert wait_for(lambda: log_count(live, "redis reachable again") == 1, 8, 0.2)
            log = live.service.log()
            assert log.count("redis unreachable: BusyScriptError") == 1
            assert "Traceback" not in log
    finally:
        server.stop()


# --- a read-only replica behind REDIS_URL ---


def test_a_replica_is_not_ready_and_refuses_changes(tmp_path: Path) -> None:
    """REDIS_URL at a replica: /readyz 503 E103, the log says so once, writes 503, reads 200."""
    primary = RedisServer.start_new(tmp_path / "primary")
    replica = RedisServer.start_new(
        tmp_path / "replica", ["--replicaof", "127.0.0.1", str(primary.port)]
    )
    try:
        with serving(primary.url, primary.url, tmp_path / "setup.log") as setup:
            slot = setup.published_slot()
        with primary.client() as client:
            assert client.execute_command("WAIT", 1, 5000) == 1
        with serving(replica.url, primary.url, tmp_path / "slotlock.log") as live:
            live.pair = setup.pair
            for _ in range(3):
                assert_refused(live.call("GET", "/readyz"))
            assert live.call("GET", f"/slots/{slot['id']}").status_code == 200
            assert_refused(live.call("POST", f"/slots/{slot['id']}/lock", lock_body("k", 60)))
            assert_refused(live.call("POST", "/resources", {"name": "On a replica"}))
            assert wait_for(lambda: log_count(live, "read-only replica") >= 1, 3)
            assert log_count(live, "read-only replica") == 1
        with primary.client() as client:
            assert not list(client.scan_iter(match="sl:*lock*"))
    finally:
        replica.stop()
        primary.stop()


# --- Idempotency-Key on a cut-off upload ---


def test_a_cut_off_upload_keeps_nothing_under_its_idempotency_key(tmp_path: Path) -> None:
    """A body cut off mid-way (400) keeps nothing: the whole retry with the same key creates."""
    import socket

    server = RedisServer.start_new(tmp_path / "redis")
    try:
        with serving(server.url, server.url, tmp_path / "slotlock.log") as live:
            body = b'{"name": "Room 12", "metadata": {"floor": "3"}}'
            head = (
                "POST /resources HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
                f"authorization: Bearer {live.pair.secret_key}\r\n"
                f"idempotency-key: upload-1\r\ncontent-length: {len(body)}\r\n\r\n"
            )
            with socket.create_connection(("127.0.0.1", live.service.port), timeout=5) as raw:
                raw.sendall(head.encode() + body[:20])
                raw.shutdown(socket.SHUT_WR)  # the upload is cut off here
                raw.recv(65536)
            headers = live.headers() | {"idempotency-key": "upload-1"}
            retried = live.client.post("/resources", content=body, headers=headers)
            assert retried.status_code in (200, 201), retried.text
            assert [item["name"] for item in live.ok("GET", "/resources")] == ["Room 12"]
    finally:
        server.stop()
