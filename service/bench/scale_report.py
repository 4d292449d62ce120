"""The scale mode's printout and JSON."""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
from pathlib import Path

import msgspec

from service.bench.processes import BenchError, can_pin
from service.bench.runner import pinned_to
from service.bench.scale import (
    TARGET_LOCK_P99_MS,
    TARGET_RATIO,
    TARGET_SLOT_BYTES,
    ScaleOptions,
    ScaleReport,
    run_scale,
)


def run_scale_command(options: ScaleOptions, json_path: Path | None, keep_files: bool) -> int:
    """Run the scale mode, print its table (and write its JSON); 1 if it could not run."""
    if not can_pin():
        options = dataclasses.replace(options, server_core=None, load_core=None)
    directory = Path(tempfile.mkdtemp(prefix="slotlock-scale-"))
    try:
        with pinned_to(options.load_core):
            report = run_scale(options, directory)
    except BenchError as error:
        print(f"slotlock bench --scale: {error}; logs kept in {directory}", file=sys.stderr)
        return 1
    if keep_files:
        print(f"slotlock bench --scale: logs kept in {directory}", file=sys.stderr)
    else:
        shutil.rmtree(directory, ignore_errors=True)
    print(format_scale(report))
    if json_path is not None:
        json_path.write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    return 0


def format_scale(report: ScaleReport) -> str:
    """The printed table: list latencies and ratios, lock p99 with and without a lister, memory."""
    small, large = report.sizes
    lines = [
        f"one environment: a resource of {small:,} slots and one of {large:,} "
        f"(every 7th booked, every 13th disabled, 50 locked); loaded in {report.load_s:.1f} s",
        "",
        f"{'list (page of 20)':<28}{f'{small:,} ms':>10}{f'{large:,} ms':>12}"
        f"{'p99 small':>11}{'p99 large':>11}{'ratio':>8}",
    ]
    for figure in report.lists:
        lines.append(
            f"{figure.name:<28}{figure.small_ms:>10.2f}{figure.large_ms:>12.2f}"
            f"{figure.small_p99_ms:>11.2f}{figure.large_p99_ms:>11.2f}{figure.ratio:>7.2f}x"
        )
    lines += ["", f"{'lock and unlock, 50 connections':<40}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}"]
    for phase in (report.quiet, report.listing):
        lines.append(
            f"{phase.name:<40}{phase.requests_per_s:>9,.0f}{phase.p50_ms:>8.2f}{phase.p99_ms:>8.2f}"
        )
    memory = report.memory
    lines += [
        f"lists answered meanwhile: {report.lists_during_load:,}",
        "",
        f"Redis memory per slot of the {large:,}-slot resource: idle {memory.idle} B = slot hash "
        f"{memory.slot_hash} + index entries {memory.index_entries} + resource share "
        f"{memory.resource_share}; locked {memory.locked} B (+ lock string {memory.lock_string} "
        f"+ holds zset {memory.holds_zset} + lock deadline {memory.lock_deadline})",
        "",
    ]
    worst = max(report.lists, key=lambda figure: figure.ratio)
    targets = [
        ("worst list ratio", f"{worst.ratio:.2f}x ({worst.name})", f"<= {TARGET_RATIO}x",
         worst.ratio <= TARGET_RATIO),
        ("lock p99 while listing", f"{report.listing.p99_ms:.1f} ms",
         f"<= {TARGET_LOCK_P99_MS:g} ms", report.listing.p99_ms <= TARGET_LOCK_P99_MS),
        ("Redis memory per locked slot", f"{memory.locked} B", f"<= {TARGET_SLOT_BYTES} B",
         memory.locked <= TARGET_SLOT_BYTES),
    ]  # fmt: skip
    lines.append(f"{'target':<32}{'measured':>28}  {'goal':<12}")
    for name, measured, goal, met in targets:
        lines.append(f"{name:<32}{measured:>28}  {goal:<12}{'ok' if met else 'MISS'}")
    return "\n".join(lines)
