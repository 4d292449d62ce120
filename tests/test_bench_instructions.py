"""`slotlock bench --instructions`: callgrind counts per request for the three servers."""

from __future__ import annotations

from pathlib import Path

from service.bench.instructions import (
    InstructionCount,
    InstructionOptions,
    format_instructions,
    read_totals,
    run_instructions,
)


def test_counts_every_server_with_the_service_above_the_bare_ceiling() -> None:
    """A short count: every server answers its requests; slotlock does more than bare."""
    options = InstructionOptions(requests=40, warmup_requests=8, connections=4, slots=20)
    counts = {count.name: count for count in run_instructions(options)}
    assert set(counts) == {
        "ceiling (bare, no Redis)",
        "naive (1 EVALSHA)",
        "slotlock",
        "slotlock, partial holds",
        "slotlock, locks again",
    }
    for count in counts.values():
        assert count.requests >= 40
        assert count.per_request > 10_000  # an HTTP request is never cheaper than this
    assert counts["slotlock"].per_request > counts["ceiling (bare, no Redis)"].per_request


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
    """One row per server and slotlock's ratio to each anchor."""
    counts = [
        InstructionCount("ceiling (bare, no Redis)", 100, 20_000_000),
        InstructionCount("naive (1 EVALSHA)", 100, 60_000_000),
        InstructionCount("slotlock", 100, 50_000_000),
        InstructionCount("slotlock, partial holds", 100, 52_000_000),
        InstructionCount("slotlock, locks again", 100, 40_000_000),
    ]
    table = format_instructions(counts, InstructionOptions(requests=100))
    assert "partial holds (2 of 4 places) / whole-slot locks counted after them: 1.300" in table
    assert "slotlock / slotlock" not in table
    assert "slotlock                                   500,000" in table
    assert "slotlock / naive (1 EVALSHA): 0.83" in table
    assert "slotlock / ceiling (bare, no Redis): 2.50" in table
