"""`slotlock bench --in-process N` measures the service's own CPU per lock and unlock."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from service.bench.in_process import InProcessFigures, format_in_process

FIGURE = re.compile(
    r"^lock/unlock in one process: (\d+\.\d) us of CPU per request \(best of 5 samples of "
    r"([\d,]+) requests, 2 connections; samples: ((?:\d+\.\d ?){5})\)$"
)


@pytest.mark.timeout(120)
def test_the_in_process_figure_is_the_best_of_five_samples_of_answered_locks() -> None:
    """Run as a command (it configures the process's logging and GC as a worker does): it
    prints one figure, the least of its five samples, each over every lock and unlock it
    sent answered 200 (it fails otherwise), and writes no access lines to the terminal."""
    run = subprocess.run(
        [sys.executable, "-c", "from service.cli import main; raise SystemExit(main())",
         "bench", "--in-process", "200", "--connections", "2"],
        capture_output=True, text=True, timeout=100, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    first = run.stdout.splitlines()[0]
    found = FIGURE.match(first)
    assert found is not None, first
    best, requests, samples = float(found[1]), found[2], [float(s) for s in found[3].split()]
    assert requests == "200"
    assert best == min(samples) > 0


def test_the_printed_figure_says_what_it_leaves_out() -> None:
    """The report names what the figure does not include, so nobody reads it as req/s."""
    text = format_in_process(InProcessFigures(50, 4000, [31.7, 32.0, 34.3, 32.2, 32.3]))
    assert text.startswith("lock/unlock in one process: 31.7 us of CPU per request")
    assert "no network, Redis or load generator" in text
