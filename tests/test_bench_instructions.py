"""`slotlock bench --instructions`: callgrind counts per request for the three servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.bench.callgrind import InstructionCount, read_totals
from service.bench.instructions import InstructionOptions, format_instructions, run_instructions


@pytest.mark.timeout(480)  # eleven counts under valgrind: about two minutes on a quiet machine
def test_counts_every_server_with_the_service_above_the_bare_ceiling() -> None:
    """A short count: every server answers each workload's requests (a refusal stops the
    count with an error); slotlock does more than bare at each, and its scripts make Redis
    do more than naive's one EVALSHA does."""
    options = InstructionOptions(requests=40, warmup_requests=8, connections=4, slots=20)
    counts = {count.name: count for count in run_instructions(options)}
    assert set(counts) == {
        "ceiling (bare, no Redis)", "ceiling, read", "ceiling, book",
        "naive (1 EVALSHA)", "naive, read", "naive, book",
        "slotlock", "slotlock, partial holds", "slotlock, locks again",
        "slotlock, read", "slotlock, book",
    }  # fmt: skip
    for count in counts.values():
        assert count.requests >= 40
        assert count.per_request > 10_000  # an HTTP request is never cheaper than this
    assert counts["slotlock"].per_request > counts["ceiling (bare, no Redis)"].per_request
    assert counts["slotlock"].redis_per_request > counts["naive (1 EVALSHA)"].redis_per_request
    for workload in ("read", "book"):
        slotlock, ceiling = counts[f"slotlock, {workload}"], counts[f"ceiling, {workload}"]
        assert (slotlock.server, slotlock.workload) == ("slotlock", workload)
        assert slotlock.per_request > ceiling.per_request


def test_totals_are_summed_over_the_dumps(tmp_path: Path) -> None:
    """Every `out.N` dump counts once; the file named `out` itself (the exit dump) does not."""
    out = tmp_path / "callgrind.out"
    out.write_text("totals: 999\n")
    (tmp_path / "callgrind.out.1").write_text("events: Ir\nsummary: 120\ntotals: 120\n")
    (tmp_path / "callgrind.out.2").write_text("totals: 30\n")
    assert read_totals(out) == 150
    (tmp_path / "callgrind.out.3").write_text("totals: 7\n")
    assert read_totals(out) == 7  # the next count reads only its own dumps


def test_the_table_gives_each_server_and_the_ratios() -> None:
    """One row per count and slotlock's ratio to each anchor, per workload."""
    counts = [
        InstructionCount("ceiling (bare, no Redis)", 100, 20_000_000, "ceiling"),
        InstructionCount("ceiling, read", 100, 10_000_000, "ceiling", "read"),
        InstructionCount("ceiling, book", 100, 20_000_000, "ceiling", "book"),
        InstructionCount("naive (1 EVALSHA)", 100, 60_000_000, "naive"),
        InstructionCount("naive, read", 100, 40_000_000, "naive", "read"),
        InstructionCount("naive, book", 100, 50_000_000, "naive", "book"),
        InstructionCount("slotlock", 100, 50_000_000, "slotlock", "lock", 22_000_000),
        InstructionCount("slotlock, partial holds", 100, 52_000_000, "slotlock", "hold"),
        InstructionCount("slotlock, locks again", 100, 40_000_000, "slotlock"),
        InstructionCount("slotlock, read", 100, 30_000_000, "slotlock", "read"),
        InstructionCount("slotlock, book", 100, 60_000_000, "slotlock", "book"),
    ]
    table = format_instructions(counts, InstructionOptions(requests=100))
    assert "partial holds (2 of 4 places) / whole-slot locks counted after them: 1.300" in table
    assert "slotlock / slotlock" not in table
    assert "slotlock                                   500,000        220,000" in table
    assert "slotlock / naive (1 EVALSHA): 0.83" in table
    assert "slotlock / ceiling (bare, no Redis): 2.50" in table
    assert "read (GET /slots/:id): slotlock / ceiling 3.00, slotlock / naive 0.75" in table
    assert "book (POST /bookings): slotlock / ceiling 3.00, slotlock / naive 1.20" in table
    assert "slotlock, book                             600,000" in table
