"""The bench's pieces, without running the bench: its anchor apps, its MONITOR counting,
and its report."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
from starlette.testclient import TestClient

from service.bench.anchors import bare_app, naive_app
from service.bench.calls import REPORTED, CallsPerRequest
from service.bench.phases import PhaseResult
from service.bench.redis_probe import SlotMemory, segment_calls
from service.bench.report import BenchSetup, build_report, format_report, saturation_warning
from tests.redis_servers import RedisServer


@pytest.fixture(scope="module")
def redis_for_anchor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this module's own."""
    server = RedisServer.start_new(tmp_path_factory.mktemp("anchor-redis"))
    yield server
    server.stop()


def test_bare_anchor_answers_lock_and_unlock() -> None:
    """The ceiling app decodes the lock body and answers a slot envelope with a token."""
    with TestClient(bare_app()) as client:
        body = {"lock_key": "k", "lock_until": "2030-01-01T00:00:00Z"}
        locked = client.post("/slots/abc/lock", json=body)
        assert locked.status_code == 200
        assert locked.json()["meta"] == {"lock_token": 1}
        assert client.post("/slots/abc/unlock", json={"lock_key": "k"}).status_code == 200


def test_naive_anchor_keeps_locks_in_redis(
    redis_for_anchor: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The naive app refuses a second key (422 E045) until the first one unlocks."""
    monkeypatch.setenv("REDIS_URL", redis_for_anchor.url)
    with TestClient(naive_app()) as client:
        until = "2030-01-01T00:00:00Z"
        assert client.post("/slots/n1/lock", json={"lock_key": "a", "lock_until": until}).is_success
        second = client.post("/slots/n1/lock", json={"lock_key": "b", "lock_until": until})
        assert second.status_code == 422
        assert second.json()["error"]["code"] == "E045"
        assert client.post("/slots/n1/unlock", json={"lock_key": "a"}).is_success
        assert client.post("/slots/n1/lock", json={"lock_key": "b", "lock_until": until}).is_success


def test_monitor_segments_count_client_calls_only() -> None:
    """Script internals, markers, rate-limit flushes and key lookups are not request calls."""
    stream = [
        ("tcp", "GET sl:{rl:ab}:x:1:2"),
        ("tcp", "ECHO bench:lock"),
        ("tcp", "EVALSHA abc 4 sl:{t}:slot:1"),
        ("lua", "HMGET sl:{t}:slot:1 environment"),
        ("tcp", "INCRBY sl:{rl:ab}:x:1:2 5"),
        ("tcp", "HGETALL sl:{keys}:key:ff"),
        ("tcp", "ECHO bench:unlock"),
        ("tcp", "evalsha abc 4 sl:{t}:slot:1"),
        ("tcp", "GET sl:{t}:lock:1"),
    ]
    segments = segment_calls(stream)
    assert segments["lock"] == {"EVALSHA": 1}
    assert segments["unlock"] == {"EVALSHA": 1, "GET": 1}


def test_bench_report_prints_phases_ratios_and_targets() -> None:
    """The bench table shows each phase, the two ratios and every target's verdict."""

    def phase(name: str, rate: float, p99_ms: float) -> PhaseResult:
        return PhaseResult(
            name=name, requests=int(rate * 10), requests_per_s=rate, p50_ms=1.0, p95_ms=2.0,
            p99_ms=p99_ms, max_ms=9.0, non_2xx=0, server_cpu_us_per_request=62e6 / rate,
            server_cpu_percent=99.0,
            server_core_busy_percent=99.0, load_core_busy_percent=60.0,
            generator_cpu_percent=30.0, redis_cpu_percent=20.0,
            server_rss_mb=80.0,
            redis_commands={"evalsha": int(rate * 10), "get": int(rate * 10)},
        )  # fmt: skip

    calls = {name: CallsPerRequest(requests=100, calls=1.0, by_command={"EVALSHA": 1.0})
             for name in REPORTED}  # fmt: skip
    memory = SlotMemory(slot_hash=400, index_entries=100, resource_share=1, idle=501,
                        lock_string=100, holds_zset=150, locked=751, held_zset=120,
                        held=771)  # fmt: skip
    setup = BenchSetup(duration_s=10, warmup_s=2, connections=50, slots=1000, client="raw",
                       server_cores="core 0", load_cores="core 1", log_level="INFO")  # fmt: skip
    phases = [phase("ceiling", 16000, 4.0), phase("naive", 6000, 25.0), phase("slotlock", 9600, 8)]
    report = build_report("2030-01-01T00:00:00.000Z", setup, phases, calls, memory)
    assert report.ratios == {
        "slotlock/naive": 1.6,
        "slotlock/ceiling": 0.6,
        "slotlock/naive by CPU": 1.6,
        "slotlock/ceiling by CPU": 0.6,
    }
    assert [target.met for target in report.targets] == [True, False, True, True, True, True]
    assert report.commands_under_load == {"scripts": 1.0, "all": 2.0}
    text = format_report(report)
    assert "slotlock/naive 1.60x" in text
    assert "naive (1 EVALSHA/request)" in text
    assert "locked 751 B" in text
    assert "with a partial hold 771 B" in text
    assert "hold 1.00 (EVALSHA 1.00)" in text
    assert text.rstrip().endswith("ok")


def test_a_server_short_of_its_core_is_flagged() -> None:
    """Under 85% of its core, the report says whether others took the core or load was short."""
    phase = PhaseResult(
        name="slotlock", requests=1, requests_per_s=1.0, p50_ms=1.0, p95_ms=1.0, p99_ms=1.0,
        max_ms=1.0, non_2xx=0, server_cpu_us_per_request=100.0, server_cpu_percent=30.0,
        server_core_busy_percent=100.0, load_core_busy_percent=90.0,
        generator_cpu_percent=10.0, redis_cpu_percent=5.0, server_rss_mb=50.0,
    )  # fmt: skip
    crowded = saturation_warning(phase)
    assert crowded is not None
    assert "other processes took 70%" in crowded
    idle = saturation_warning(msgspec.structs.replace(phase, server_core_busy_percent=32.0))
    assert idle is not None
    assert "load core was 90% busy" in idle
    assert saturation_warning(msgspec.structs.replace(phase, server_cpu_percent=97.0)) is None
