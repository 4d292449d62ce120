"""The end of a run: a table per endpoint, the invariants, and the same figures as JSON."""

from __future__ import annotations

from pathlib import Path

import msgspec

from service.loadtest.invariants import InvariantResult
from service.loadtest.stats import EndpointSummary

_COLUMNS = ("endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors")
_WIDTHS = (25, 9, 9, 8, 8, 8, 8, 7)


class LoadReport(msgspec.Struct, kw_only=True):
    """Everything a run reports; written as the JSON file."""

    scenario: str
    options: dict[str, object]
    started_at: str
    elapsed_s: float
    resource_id: str
    slots: int
    endpoints: list[EndpointSummary]
    invariants: list[InvariantResult]
    ok: bool


def endpoint_table(rows: list[EndpointSummary]) -> str:
    """The per-endpoint table: throughput, latency percentiles, statuses and error codes."""
    lines = [_row(_COLUMNS) + "  statuses / codes"]
    for row in rows:
        cells = (
            row.endpoint,
            f"{row.requests:,}",
            f"{row.requests_per_s:,.1f}",
            f"{row.p50_ms:.2f}",
            f"{row.p95_ms:.2f}",
            f"{row.p99_ms:.2f}",
            f"{row.max_ms:.2f}",
            f"{row.errors:,}",
        )
        lines.append(_row(cells) + "  " + outcome_counts(row))
    return "\n".join(lines)


def outcome_counts(row: EndpointSummary) -> str:
    """`200:812 422:40 | E045:38 E049:2` (status 0 is a request that got no answer)."""
    statuses = " ".join(f"{status}:{count}" for status, count in row.statuses.items())
    codes = " ".join(f"{code}:{count}" for code, count in row.codes.items())
    return f"{statuses} | {codes}" if codes else statuses


def _row(cells: tuple[str, ...]) -> str:
    first = cells[0].ljust(_WIDTHS[0])
    rest = (cell.rjust(width) for cell, width in zip(cells[1:], _WIDTHS[1:], strict=True))
    return " ".join([first, *rest])


def invariant_lines(results: list[InvariantResult]) -> str:
    """One line per invariant (`ok` or `BROKEN`), each broken one followed by its examples."""
    lines: list[str] = []
    for found in results:
        state = "ok    " if found.ok else "BROKEN"
        lines.append(f"  {state} {found.name} ({found.checked:,} checked)")
        lines += [f"           - {violation}" for violation in found.violations]
        hidden = found.violation_count - len(found.violations)
        if hidden > 0:
            lines.append(f"           - ... and {hidden} more")
    return "\n".join(lines)


def rate_limit_hint(rows: list[EndpointSummary]) -> str | None:
    """Advice when the service's per-key rate limit, not its capacity, shaped the run."""
    limited = sum(row.codes.get("E062", 0) for row in rows if row.endpoint == "total")
    if not limited:
        return None
    return (
        f"note: {limited:,} requests were refused by the per-key rate limit (429 E062); start "
        "the service with higher SLOTLOCK_RATE_LIMIT_PUBLIC / SLOTLOCK_RATE_LIMIT_SECRET"
    )


def write_json(report: LoadReport, path: Path) -> None:
    """Write the report as indented JSON."""
    path.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
