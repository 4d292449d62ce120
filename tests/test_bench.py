"""The bench's pieces: its anchor apps, its MONITOR counting, its report, and one short run
of every workload against the three servers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from starlette.testclient import TestClient

from service.bench.anchor_stores import seed_slots
from service.bench.anchors import bare_app, naive_app
from service.bench.calls import REPORTED, CallsPerRequest
from service.bench.phases import PhaseResult
from service.bench.redis_probe import SlotMemory, segment_calls
from service.bench.report import BenchSetup, build_report, saturation_warning, write_json
from service.bench.report_table import format_report
from service.bench.rounds import merged, rotated
from service.bench.runner import BenchOptions, run_bench
from service.bench.workloads import WORKLOADS, places_for, places_for_run
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


def test_bare_anchor_answers_a_slot_and_a_booking() -> None:
    """The ceiling answers GET /slots/:id with a whole slot and POST /bookings with a booking."""
    with TestClient(bare_app()) as client:
        slot = client.get("/slots/abc")
        assert slot.status_code == 200
        assert slot.json()["data"]["id"] == "abc"
        assert slot.json()["data"]["num_free_places"] == 1
        booked = client.post("/bookings", json={"slot_id": "abc"})
        assert booked.status_code == 200
        assert booked.json()["data"]["_object"] == "booking"
        assert booked.json()["data"]["created_at"].endswith("Z")


def test_naive_anchor_reads_and_books_the_slots_seeded_in_redis(
    redis_for_anchor: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A seeded slot reads back whole and takes bookings up to its capacity (then 422 E049);
    a slot nobody seeded is 404 E025 to both."""
    monkeypatch.setenv("REDIS_URL", redis_for_anchor.url)
    seed_slots(redis_for_anchor.client(), ["s1"], capacity=2)
    with TestClient(naive_app()) as client:
        slot = client.get("/slots/s1").json()["data"]
        assert (slot["capacity"], slot["lockable"], slot["available"]) == (2, True, True)
        for _ in range(2):
            assert client.post("/bookings", json={"slot_id": "s1"}).status_code == 200
        full = client.post("/bookings", json={"slot_id": "s1"})
        assert (full.status_code, full.json()["error"]["code"]) == (422, "E049")
        slot = client.get("/slots/s1").json()["data"]
        assert (slot["num_active_bookings"], slot["available"]) == (2, False)
        assert client.get("/slots/nobody").json()["error"]["code"] == "E025"
        missing = client.post("/bookings", json={"slot_id": "nobody"})
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "E025")


def test_slots_to_book_have_places_for_every_booking_of_the_run() -> None:
    """Bookings going round the slots never find one full: capacity covers them, and more."""
    assert places_for(1000, 10) == 101
    assert places_for(5, 10) == 2
    assert places_for_run(13, 1000) >= 13 * 50_000 // 1000
    assert places_for(10**12, 1) == 1_000_000  # the API's largest capacity


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


def phase(name: str, rate: float, p99_ms: float, workload: str = "lock") -> PhaseResult:
    """A phase whose server used 62 s of CPU over ten seconds' requests at `rate`."""
    return PhaseResult(
        name=name, requests=int(rate * 10), requests_per_s=rate, p50_ms=1.0, p95_ms=2.0,
        p99_ms=p99_ms, max_ms=9.0, non_2xx=0, server_cpu_us_per_request=62e6 / rate,
        server_cpu_percent=99.0,
        server_core_busy_percent=99.0, load_core_busy_percent=60.0,
        generator_cpu_percent=30.0, redis_cpu_percent=20.0,
        server_rss_mb=80.0,
        redis_commands={"evalsha": int(rate * 10), "get": int(rate * 10)}, workload=workload,
    )  # fmt: skip


CALLS = {name: CallsPerRequest(requests=100, calls=1.0, by_command={"EVALSHA": 1.0})
         for name in REPORTED}  # fmt: skip
MEMORY = SlotMemory(slot_hash=400, index_entries=100, resource_share=1, idle=501,
                    lock_string=100, holds_zset=150, locked=751, held_zset=120,
                    held=771)  # fmt: skip
SETUP = BenchSetup(duration_s=10, warmup_s=2, connections=50, slots=1000, client="raw",
                   server_cores="core 0", load_cores="core 1", log_level="INFO",
                   workloads=list(WORKLOADS))  # fmt: skip


def test_bench_report_prints_phases_ratios_and_targets(tmp_path: Path) -> None:
    """The bench table shows each workload's phases and two ratios, and every target's verdict;
    the JSON carries the same ratios by workload."""
    phases = [
        phase("ceiling", 16000, 4.0), phase("naive", 6000, 25.0), phase("slotlock", 9600, 8),
        phase("ceiling", 20000, 3.0, "read"), phase("naive", 8000, 9.0, "read"),
        phase("slotlock", 12000, 5.0, "read"),
        phase("ceiling", 15000, 3.0, "book"), phase("naive", 5000, 9.0, "book"),
        phase("slotlock", 4000, 5.0, "book"),
    ]  # fmt: skip
    report = build_report("2030-01-01T00:00:00.000Z", SETUP, phases, CALLS, MEMORY)
    assert report.ratios["lock"] == {
        "slotlock/naive": 1.6,
        "slotlock/ceiling": 0.6,
        "slotlock/naive by CPU": 1.6,
        "slotlock/ceiling by CPU": 0.6,
    }
    assert report.ratios["read"]["slotlock/naive"] == 1.5
    assert report.ratios["book"]["slotlock/ceiling by CPU"] == 0.27
    assert [target.met for target in report.targets] == [True, False, True, True, True, True]
    assert report.commands_under_load["book"] == {"scripts": 1.0, "all": 2.0}
    text = format_report(report)
    assert "lock: slotlock/naive 1.60x" in text
    assert "read: slotlock/naive 1.50x   slotlock/ceiling 0.60x" in text
    assert "book: slotlock/naive 0.80x   slotlock/ceiling 0.27x" in text
    for label in ("lock/unlock (POST /slots/:id/lock, /unlock):", "read (GET /slots/:id):",
                  "book (POST /bookings):"):  # fmt: skip
        assert label in text.splitlines()
    assert "naive (1 EVALSHA/request)" in text
    assert "locked 751 B" in text
    assert "with a partial hold 771 B" in text
    assert "hold 1.00 (EVALSHA 1.00)" in text
    assert "read 1.00 (EVALSHA 1.00)" in text
    assert "book 2.00 (script calls 1.00)" in text
    assert text.rstrip().endswith("ok")
    write_json(report, tmp_path / "bench.json")
    written = json.loads((tmp_path / "bench.json").read_text())
    assert written["ratios"]["book"]["slotlock/naive"] == 0.8
    assert [p["workload"] for p in written["phases"]] == ["lock"] * 3 + ["read"] * 3 + ["book"] * 3


def test_a_report_without_the_lock_workload_keeps_the_targets_it_can_judge() -> None:
    """With only reads measured, the lock targets are left out, not failed or crashed on."""
    phases = [phase(name, 9000, 5.0, "read") for name in ("ceiling", "naive", "slotlock")]
    setup = msgspec.structs.replace(SETUP, workloads=["read"])
    report = build_report("2030-01-01T00:00:00.000Z", setup, phases, CALLS, MEMORY)
    assert [target.name for target in report.targets] == [
        "Redis calls per request", "Redis memory per locked slot", "RSS per worker under load"
    ]  # fmt: skip
    assert "read: slotlock/naive 1.00x" in format_report(report)


@pytest.mark.timeout(300)
def test_every_workload_is_answered_2xx_by_all_three_servers() -> None:
    """A short run of the real bench: every workload's phase on every server made requests,
    and none was answered other than 2xx (no timing is judged)."""
    report = run_bench(BenchOptions(duration_s=1.0, warmup_s=0.3, connections=2, slots=20))
    seen = {(found.workload, found.name): found for found in report.phases}
    assert list(seen) == [(workload, name) for workload in WORKLOADS
                          for name in ("ceiling", "naive", "slotlock")]  # fmt: skip
    for found in seen.values():
        assert found.requests > 0, (found.workload, found.name)
        assert found.non_2xx == 0, (found.workload, found.name)
    assert set(report.ratios) == set(WORKLOADS)
    assert "read" in report.calls_per_request


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


def test_rounds_merge_into_one_phase_per_server() -> None:
    """A phase measured in rounds counts all their requests over all their measured time,
    reports the worst round's tail latency, and keeps each round's rate."""
    fast, slow = phase("slotlock", 10000, 4.0), phase("slotlock", 5000, 9.0)
    one = merged([fast, slow])
    # 100,000 requests in 10 s and 50,000 in 10 s: 7,500/s, not the mean of the rates.
    assert (one.requests, one.requests_per_s) == (150000, 7500.0)
    assert one.p99_ms == 9.0
    assert one.round_requests_per_s == [10000, 5000]
    assert one.redis_commands["evalsha"] == 150000
    assert one.server_cpu_us_per_request == round(
        (62e6 / 10000 * 100000 + 62e6 / 5000 * 50000) / 150000, 1
    )


def test_each_round_starts_with_another_server() -> None:
    """Rounds rotate the servers' order, so no server always runs first (or last)."""
    names = ["ceiling", "naive", "slotlock"]
    assert [rotated(names, index)[0] for index in range(4)] == [
        "ceiling", "naive", "slotlock", "ceiling"
    ]  # fmt: skip
    assert all(sorted(rotated(names, index)) == names for index in range(3))
