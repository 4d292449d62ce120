"""The scale bench's printout and memory probe (its figures come from `slotlock bench --scale`)."""

from __future__ import annotations

from service import keyspace
from service.bench.phases import PhaseResult
from service.bench.redis_probe import SlotMemory, slot_memory
from service.bench.scale import ListFigure, ScaleReport
from service.bench.scale_report import format_scale
from service.ids import new_child_id, new_resource_id
from tests.redis_servers import RedisServer


def phase(name: str, p99_ms: float) -> PhaseResult:
    """A lock phase with the given p99."""
    return PhaseResult(
        name=name, requests=1000, requests_per_s=100.0, p50_ms=1.0, p95_ms=2.0, p99_ms=p99_ms,
        max_ms=9.0, non_2xx=0, server_cpu_us_per_request=80.0, server_cpu_percent=99.0,
        server_core_busy_percent=99.0, load_core_busy_percent=60.0, generator_cpu_percent=30.0,
        redis_cpu_percent=20.0, server_rss_mb=50.0,
    )  # fmt: skip


def test_scale_printout_names_the_worst_ratio_and_each_verdict() -> None:
    """Each filter's row, the worst ratio by name, and a verdict per target."""
    lists = [
        ListFigure(name="slots", small_ms=1.0, large_ms=1.1, small_p99_ms=2.0, large_p99_ms=2.0,
                   ratio=1.1),
        ListFigure(name="slots available=true", small_ms=1.0, large_ms=1.8, small_p99_ms=2.0,
                   large_p99_ms=3.0, ratio=1.8),
    ]  # fmt: skip
    memory = SlotMemory(
        slot_hash=488, index_entries=136, resource_share=1, idle=625, lock_string=152,
        holds_zset=168, lock_deadline=52, locked=997,
    )  # fmt: skip
    report = ScaleReport(
        sizes=(1000, 100_000), load_s=8.0, lists=lists, quiet=phase("quiet", 5.0),
        listing=phase("listing", 25.0), lists_during_load=300, memory=memory,
    )  # fmt: skip
    text = format_scale(report)
    assert "slots available=true" in text
    assert "1.80x (slots available=true)" in text
    verdicts = [line.split()[-1] for line in text.splitlines()[-3:]]
    assert verdicts == ["MISS", "MISS", "ok"]
    assert "lock deadline 52" in text


def test_a_locked_slot_owns_its_deadline_entry_and_a_share_of_the_set(
    redis_server: RedisServer,
) -> None:
    """With 40 locks in a resource of 1,000 slots, a deadline costs about one listpack entry."""
    client = redis_server.client()
    client.flushall()
    resource_id = new_resource_id()
    slot_ids = [new_child_id(resource_id) for _ in range(40)]
    client.zadd(keyspace.lock_ends(resource_id), {s: 1_800_000_000_000 for s in slot_ids})
    client.hset(keyspace.slot(slot_ids[0]), mapping={"id": slot_ids[0]})
    memory = slot_memory(client, slot_ids[0], 1000, "nobody")
    assert 30 <= memory.lock_deadline <= 70
    assert client.zcard(keyspace.lock_ends(resource_id)) == 40  # the probe's members left
