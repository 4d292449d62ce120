"""The load-test harness: short real runs against `slotlock serve`, and the figures,
tables and invariant checks they are built from."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from service.bench.processes import clean_environment, free_port, slotlock_serve
from service.bench.servers import create_pair
from service.loadtest import runner
from service.loadtest.client import ApiClient
from service.loadtest.fixture import Schedule
from service.loadtest.invariants import (
    InvariantResult,
    bookings_within_capacity,
    exclusive_holds,
    growing_tokens,
    kept_holds,
    places_within_capacity,
    verdict,
)
from service.loadtest.observations import BookingAck, Hold, Observations
from service.loadtest.options import LoadOptions
from service.loadtest.progress import progress_line
from service.loadtest.raw_http import _parse
from service.loadtest.report import endpoint_table, outcome_counts, rate_limit_hint
from service.loadtest.runner import run_async
from service.loadtest.stats import EndpointStats, Recorder, percentile, summarize
from service.loadtest.transport import TransportError
from service.loadtest.verify import check_all
from service.store.api_keys import KeyPair
from tests.redis_servers import RedisServer

UNLIMITED = "1000000/second"
Checker = Callable[[ApiClient, Schedule, Observations], Awaitable[list[InvariantResult]]]


SLOTLOCK = str(Path(sys.executable).parent / "slotlock")


@pytest.fixture(scope="module")
def redis_for_load(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this module's own."""
    server = RedisServer.start_new(tmp_path_factory.mktemp("load-redis"))
    yield server
    server.stop()


@dataclasses.dataclass(frozen=True)
class Service:
    """A running `slotlock serve` and a key pair of its Redis."""

    url: str
    keys: KeyPair


@pytest.fixture(scope="module")
def service(
    redis_for_load: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """`slotlock serve` on that Redis, with rate limits raised as a load test needs."""
    env = clean_environment(
        REDIS_URL=redis_for_load.url,
        SLOTLOCK_RATE_LIMIT_PUBLIC=UNLIMITED,
        SLOTLOCK_RATE_LIMIT_SECRET=UNLIMITED,
    )
    port = free_port()
    log_path = tmp_path_factory.mktemp("load") / "slotlock.log"
    server = slotlock_serve(port, None, log_path, env)
    try:
        yield Service(f"http://127.0.0.1:{port}", run_async(create_pair(redis_for_load.url)))
    finally:
        server.stop()


def options(service: Service, tmp_path: Path, **changes: Any) -> LoadOptions:
    """Short-run options against the test's service."""
    base = LoadOptions(
        url=service.url,
        secret_key=service.keys.secret_key,
        public_key=service.keys.public_key,
        users=10,
        duration_s=1.0,
        slots=10,
        think_ms=10,
        seed=3,
        json_path=tmp_path / "report.json",
        progress=False,
    )
    return dataclasses.replace(base, **changes)


def run_cli(service: Service, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`slotlock loadtest` as a subprocess, its keys in the environment."""
    return subprocess.run(
        [SLOTLOCK, "loadtest", "--url", service.url, "--no-progress", *arguments],
        env=clean_environment(
            SLOTLOCK_SECRET_KEY=service.keys.secret_key,
            SLOTLOCK_PUBLIC_KEY=service.keys.public_key,
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def read_report(path: Path) -> dict[str, Any]:
    """The JSON file a run wrote."""
    report: dict[str, Any] = msgspec.json.decode(path.read_bytes())
    return report


def test_checkout_run_reports_figures_and_passes_its_invariants(
    service: Service, tmp_path: Path
) -> None:
    """A 3 s checkout run on few slots: every endpoint has figures, every invariant holds."""
    path = tmp_path / "checkout.json"
    done = run_cli(service, "--users", "20", "--duration", "3", "--slots", "10",
                   "--think-ms", "20", "--seed", "7", "--json", str(path))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = read_report(path)
    rows = {row["endpoint"]: row for row in report["endpoints"]}
    assert {"GET /slots", "POST /slots/:id/lock", "POST /bookings", "total"} <= set(rows)
    assert rows["total"]["requests"] > 0
    for field in ("requests_per_s", "p50_ms", "p95_ms", "p99_ms", "statuses", "codes"):
        assert field in rows["POST /slots/:id/lock"]
    assert report["ok"] is True
    assert all(check["ok"] for check in report["invariants"])
    assert len(report["invariants"]) == 7
    assert "p99 ms" in done.stdout
    assert "secret_key" not in path.read_text()
    assert service.keys.secret_key not in path.read_text()


def test_hot_lock_run_only_locks_and_unlocks(service: Service, tmp_path: Path) -> None:
    """A 2 s hot-lock run (raw client): lock and unlock alternate, all answered 200."""
    path = tmp_path / "hot.json"
    done = run_cli(service, "--scenario", "hot-lock", "--users", "10", "--duration",
                   "2", "--slots", "10", "--client", "raw", "--json", str(path))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {row["endpoint"]: row for row in read_report(path)["endpoints"]}
    assert set(rows) == {"POST /slots/:id/lock", "POST /slots/:id/unlock", "total"}
    assert rows["POST /slots/:id/lock"]["requests"] == rows["POST /slots/:id/unlock"]["requests"]
    assert rows["total"]["statuses"] == {"200": rows["total"]["requests"]}
    holds = next(c for c in read_report(path)["invariants"] if "held one slot" in c["name"])
    assert holds["ok"]
    assert holds["checked"] == rows["POST /slots/:id/lock"]["requests"]


def test_group_run_holds_several_places_per_user_and_passes_its_invariants(
    service: Service, tmp_path: Path
) -> None:
    """A 3 s group run on 3 classes of 20: holds of 1 to 4 places, bookings, every check ok."""
    path = tmp_path / "group.json"
    done = run_cli(service, "--scenario", "group", "--users", "30", "--duration", "3",
                   "--slots", "3", "--think-ms", "20", "--seed", "5",
                   "--json", str(path))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = read_report(path)
    assert report["options"]["capacity"] == 20
    rows = {row["endpoint"]: row for row in report["endpoints"]}
    booked = rows["POST /bookings"]["statuses"]
    assert booked.get("201", 0) + booked.get("200", 0) > 20
    assert rows["POST /slots/:id/unlock"]["requests"] > 0
    checks = {check["name"]: check for check in report["invariants"]}
    assert all(check["ok"] for check in checks.values()), checks
    assert checks["bookings plus held places never exceed capacity"]["checked"] > 40
    assert checks["every acknowledged booking exists"]["checked"] > 20


def test_a_fabricated_hold_beyond_capacity_makes_the_group_run_fail(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partial hold of every place granted beside real bookings breaks the places check."""

    def overfull(seen: Observations) -> None:
        booked = seen.bookings[0]
        seen.holds.append(
            Hold(booked.slot_id, "intruder", 0, 0.0, booked.acked_s + 0.001,
                 booked.acked_s + 1000.0, quantity=20)
        )  # fmt: skip

    with_fabrication(monkeypatch, overfull)
    chosen = options(service, tmp_path, scenario="group", users=10, slots=3, duration_s=1.5)
    assert runner.run_command(chosen) == 1
    report = read_report(tmp_path / "report.json")
    broken = {check["name"]: check for check in report["invariants"] if not check["ok"]}
    name = "bookings plus held places never exceed capacity"
    assert set(broken) == {name}
    assert "capacity 20" in broken[name]["violations"][0]


def with_fabrication(
    monkeypatch: pytest.MonkeyPatch, fabricate: Callable[[Observations], None]
) -> None:
    """Make the run's checker see one fabricated observation besides the real ones."""
    real: Checker = check_all

    async def doctored(api: ApiClient, schedule: Schedule, seen: Observations) -> Any:
        fabricate(seen)
        return await real(api, schedule, seen)

    monkeypatch.setattr("service.loadtest.runner.check_all", doctored)


def test_a_fabricated_double_holder_makes_the_exit_non_zero(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second lock_key granted a slot while a real holder had it: the run exits 1."""

    def double_holder(seen: Observations) -> None:
        real = seen.holds[0]
        seen.holds.append(
            Hold(real.slot_id, "intruder", real.token + 1, real.sent_s, real.granted_s,
                 real.until_s, real.released_s)
        )  # fmt: skip

    with_fabrication(monkeypatch, double_holder)
    chosen = options(service, tmp_path, scenario="hot-lock", client="raw")
    assert runner.run_command(chosen) == 1
    report = read_report(tmp_path / "report.json")
    broken = {check["name"]: check for check in report["invariants"] if not check["ok"]}
    assert "intruder" not in (tmp_path / "report.json").read_text()
    held = broken["no two users held one slot's lock at once"]
    assert held["violation_count"] == 1
    assert "of another lock_key still held it" in held["violations"][0]
    assert report["ok"] is False


def test_an_acknowledged_booking_that_does_not_exist_makes_the_exit_non_zero(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checker asks the service for every acknowledged booking: a made-up one fails."""
    fabricated: list[str] = []

    def phantom_booking(seen: Observations) -> None:
        slot_id = seen.holds[0].slot_id
        booking_id = slot_id[:9] + "0000-4000-8000-000000000000"  # in the slot's home tag
        fabricated.append(booking_id)
        seen.bookings.append(BookingAck(booking_id, slot_id, acked_s=0.0, cancel_sent_s=0.0))

    with_fabrication(monkeypatch, phantom_booking)
    assert runner.run_command(options(service, tmp_path, duration_s=1.5)) == 1
    report = read_report(tmp_path / "report.json")
    exists = next(
        c for c in report["invariants"] if c["name"] == "every acknowledged booking exists"
    )
    assert not exists["ok"]
    assert exists["violations"] == [f"booking {fabricated[0]} was acknowledged but does not exist"]


def test_serve_never_imports_aiohttp() -> None:
    """Registering loadtest and bench keeps aiohttp out of `slotlock serve`."""
    code = "import sys, service.cli; service.cli._parser(); print('aiohttp' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_percentile_is_nearest_rank() -> None:
    """p50, p95 and p99 of 1..100 are 50, 95 and 99; of nothing, 0."""
    values = [float(n) for n in range(1, 101)]
    assert [percentile(values, q) for q in (0.5, 0.95, 0.99, 1.0)] == [50, 95, 99, 100]
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) == 0.0


def test_summary_counts_statuses_codes_and_errors() -> None:
    """Refusals (422) are not errors; no answer (0), 429 and 5xx are."""
    recorder = Recorder()
    for status, body in [(200, b"{}"), (422, b'{"error": {"code": "E045"}}'), (0, b""),
                         (429, b'{"error": {"code": "E062"}}'), (503, b"oops")]:  # fmt: skip
        recorder.record("POST /slots/:id/lock", status, 0.002, body)
    lock, total = recorder.summaries(elapsed_s=2.0)
    assert lock.requests == 5
    assert lock.requests_per_s == 2.5
    assert lock.statuses == {"0": 1, "200": 1, "422": 1, "429": 1, "503": 1}
    assert lock.codes == {"E045": 1, "E062": 1}
    assert lock.errors == 3
    assert recorder.errors == 3
    assert total.requests == 5
    assert total.p50_ms == 2.0


def test_table_has_one_row_per_endpoint_and_a_total() -> None:
    """The table lists percentiles in ms and the outcome counts of each endpoint."""
    stats = EndpointStats()
    for latency_ms in (1, 2, 3, 4, 100):
        stats.add(
            200 if latency_ms < 100 else 422,
            latency_ms / 1000,
            None if latency_ms < 100 else "E045",
        )
    row = summarize("POST /slots/:id/lock", stats, elapsed_s=1.0)
    assert (row.p50_ms, row.p95_ms, row.p99_ms, row.max_ms) == (3.0, 100.0, 100.0, 100.0)
    table = endpoint_table([row, summarize("total", stats, 1.0)]).splitlines()
    assert table[0].split()[:4] == ["endpoint", "requests", "req/s", "p50"]
    assert table[1].startswith("POST /slots/:id/lock")
    assert "3.00" in table[1]
    assert table[2].startswith("total")
    assert outcome_counts(row) == "200:4 422:1 | E045:1"


def test_progress_line_shows_elapsed_rate_and_errors() -> None:
    """The live line carries elapsed time, req/s and the error count."""
    recorder = Recorder()
    recorder.record("x", 500, 0.001, b"")
    line = progress_line(12.0, 30.0, 4812.4, recorder)
    assert "12.0/30 s" in line
    assert "4,812 req/s" in line
    assert "1 errors" in line


def hold(slot: str, holder: str, token: int, granted_s: float, released_s: float) -> Hold:
    """A hold granted at `granted_s` and let go at `released_s`, far from lock_until."""
    return Hold(slot, holder, token, granted_s - 0.001, granted_s, 1000.0, released_s)


def test_overlapping_holders_of_one_slot_are_reported() -> None:
    """Two keys holding one slot at once break exclusivity; one after the other does not."""
    apart = [hold("s", "a", 1, 1.0, 2.0), hold("s", "b", 2, 2.5, 3.0), hold("t", "c", 1, 1.5, 9)]
    assert exclusive_holds(apart).ok
    together = [*apart, hold("s", "d", 3, 1.5, 1.8)]
    found = exclusive_holds(together)
    assert not found.ok
    assert found.violation_count == 1
    assert "slot s" in found.violations[0]
    assert verdict([found]) == 1
    assert verdict([exclusive_holds(apart)]) == 0


def test_a_token_that_does_not_grow_is_reported() -> None:
    """A lock requested after another was granted must carry a larger token."""
    assert growing_tokens([hold("s", "a", 1, 1.0, 2.0), hold("s", "b", 2, 2.5, 3.0)]).ok
    assert not growing_tokens([hold("s", "a", 5, 1.0, 2.0), hold("s", "b", 5, 2.5, 3.0)]).ok
    assert not growing_tokens([hold("s", "a", 5, 1.0, 2.0), hold("s", "a", 4, 2.5, 3.0)]).ok
    # The same key again with the same token: its unlock may have been lost, the lock moved.
    assert growing_tokens([hold("s", "a", 5, 1.0, 2.0), hold("s", "a", 5, 2.5, 3.0)]).ok


def test_a_lost_lock_is_reported_only_before_lock_until() -> None:
    """A release refused as someone else's counts only if lock_until had not passed."""
    lost = hold("s", "a", 1, 1.0, 2.0)
    lost.lost_code = "E059"
    expired = Hold("s", "b", 2, 0.0, 0.1, until_s=1.0, released_s=5.0, lost_code="E059")
    assert not kept_holds([lost]).ok
    assert kept_holds([expired]).ok


def test_more_active_bookings_than_capacity_are_reported() -> None:
    """Two bookings of a one-place slot active at once break capacity; in turn they do not."""
    in_turn = [BookingAck("1", "s", 1.0, cancel_sent_s=2.0), BookingAck("2", "s", 2.0)]
    assert bookings_within_capacity(in_turn, capacity=1).ok
    at_once = [BookingAck("1", "s", 1.0, cancel_sent_s=3.0), BookingAck("2", "s", 2.0)]
    assert not bookings_within_capacity(at_once, capacity=1).ok
    assert bookings_within_capacity(at_once, capacity=2).ok


def test_booked_and_held_places_beyond_capacity_are_reported() -> None:
    """A hold of 2 on a 2-place slot while a booking is active breaks it; after it, not."""
    booking = BookingAck("1", "s", 1.0, cancel_sent_s=3.0)
    meanwhile = dataclasses.replace(hold("s", "a", 1, 2.0, 2.5), quantity=2)
    after = dataclasses.replace(hold("s", "b", 2, 3.0, 4.0), quantity=2)
    assert places_within_capacity([after], [booking], capacity=2).ok
    found = places_within_capacity([meanwhile, after], [booking], capacity=2)
    assert not found.ok
    assert found.violations == ["slot s: 3 places booked or held at once, capacity 2"]
    # A whole-slot lock is no partial hold: the check leaves it to the exclusivity check.
    assert places_within_capacity([hold("s", "c", 3, 2.0, 2.5)], [booking], capacity=1).ok


def test_partial_holds_of_several_keys_are_not_a_double_holder() -> None:
    """Two keys holding places of one slot at once is what partial holds are for."""
    together = [
        dataclasses.replace(hold("s", "a", 1, 1.0, 2.0), quantity=1),
        dataclasses.replace(hold("s", "b", 2, 1.5, 3.0), quantity=2),
    ]
    assert exclusive_holds(together).ok


def test_raw_client_frames_responses_by_content_length() -> None:
    """A response is taken only once whole; one without Content-Length is refused."""
    buffer = bytearray(b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\nab")
    assert _parse(buffer) is None
    buffer += b"cdHTTP/1.1"
    assert _parse(buffer) == (201, b"abcd", True)
    assert buffer == bytearray(b"HTTP/1.1")
    closing = bytearray(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
    assert _parse(closing) == (200, b"", False)
    with pytest.raises(TransportError):
        _parse(bytearray(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"))


def test_rate_limit_refusals_get_a_hint() -> None:
    """429 E062 answers point at the service's rate-limit settings."""
    recorder = Recorder()
    recorder.record("POST /slots/:id/lock", 200, 0.001, b"{}")
    assert rate_limit_hint(recorder.summaries(1.0)) is None
    recorder.record("POST /slots/:id/lock", 429, 0.001, b'{"error": {"code": "E062"}}')
    hint = rate_limit_hint(recorder.summaries(1.0))
    assert hint is not None
    assert "SLOTLOCK_RATE_LIMIT_PUBLIC" in hint
