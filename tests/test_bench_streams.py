"""`slotlock bench --streams N` runs end to end and prints every figure it promises."""

from __future__ import annotations

import pytest

from service.bench.streams import StreamBenchOptions, run_streams


@pytest.mark.slow
def test_a_short_stream_bench_measures_throughput_latency_and_memory() -> None:
    """With 20 streams for a second per phase, every figure is there and events were received."""
    figures = run_streams(StreamBenchOptions(streams=20, duration_s=1.0))
    assert figures.locks_per_s_without > 0
    assert figures.locks_per_s_idle > 0
    assert figures.locks_per_s_busy > 0
    assert figures.events_received > 0
    assert figures.rss_after_bytes > 0
    report = figures.report()
    for label in ("no streams", "idle streams", "watching", "per open stream", "p50 / p99"):
        assert label in report
