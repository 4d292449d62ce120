"""Answered requests reach the metrics and the access log: once per loop turn where the
process buffers its own log, at once where the log goes through the logging module."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.answered import AnsweredRequests
from service.logs import AccessLog
from service.metrics import RequestMetrics


class ListSink:
    """A LineSink that keeps each write apart."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write_line(self, line: bytes) -> None:
        self.writes.append(line)


def counted(metrics: RequestMetrics) -> float:
    """slotlock_requests_total over every label set."""
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "slotlock_requests_total"
    )


def test_a_turns_answers_are_recorded_after_that_turn_in_one_write() -> None:
    """Buffered: nothing is recorded while the turn runs; then every answer, in one write."""

    async def run() -> None:
        sink, metrics = ListSink(), RequestMetrics()
        answered = AnsweredRequests(AccessLog(sink), metrics)
        answered.add("r1", "POST", "/slots/a/lock", "/slots/{slot_id}/lock", 200, 0.0012)
        answered.add("r2", "POST", "/slots/b/lock", "/slots/{slot_id}/lock", 422, 0.0007)
        answered.add("r3", "GET", "/nowhere", "unmatched", 404, 0.0001)
        assert sink.writes == []
        assert counted(metrics) == 0

        await asyncio.sleep(0)  # the turn ends

        assert len(sink.writes) == 1
        lines = [json.loads(line) for line in sink.writes[0].splitlines()]
        assert [(line["request_id"], line["route"], line["status"]) for line in lines] == [
            ("r1", "/slots/{slot_id}/lock", 200),
            ("r2", "/slots/{slot_id}/lock", 422),
            ("r3", "unmatched", 404),
        ]
        assert lines[0]["path"] == "/slots/a/lock"
        assert lines[0]["duration_ms"] == 1.2
        assert {line["logger"] for line in lines} == {"slotlock.access"}
        assert counted(metrics) == 3

    asyncio.run(run())


def test_a_flush_records_what_is_pending_once() -> None:
    """flush() (the app's shutdown) writes what the turn has; the turn's own flush adds none."""

    async def run() -> None:
        sink, metrics = ListSink(), RequestMetrics()
        answered = AnsweredRequests(AccessLog(sink), metrics)
        answered.add("r1", "POST", "/slots/a/unlock", "/slots/{slot_id}/unlock", 200, 0.001)
        answered.flush()
        assert len(sink.writes) == 1
        assert counted(metrics) == 1

        await asyncio.sleep(0)

        assert len(sink.writes) == 1  # no second, empty write
        assert counted(metrics) == 1

    asyncio.run(run())


def test_later_turns_get_writes_of_their_own() -> None:
    """An answer of a later turn is recorded after that turn, not held for a batch."""

    async def run() -> None:
        sink = ListSink()
        answered = AnsweredRequests(AccessLog(sink), RequestMetrics())
        for request_id in ("r1", "r2"):
            answered.add(request_id, "GET", "/slots/a", "/slots/{slot_id}", 200, 0.001)
            await asyncio.sleep(0)
        assert [json.loads(write)["request_id"] for write in sink.writes] == ["r1", "r2"]

    asyncio.run(run())


def test_through_the_logging_module_each_answer_is_recorded_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Unbuffered: the line and the count are there as soon as add() returns (no loop runs)."""
    caplog.set_level(logging.INFO, logger="slotlock.access")
    metrics = RequestMetrics()
    answered = AnsweredRequests(AccessLog(None), metrics)
    answered.add("r9", "DELETE", "/bookings/b", "/bookings/{booking_id}", 200, 0.002)
    records = [record for record in caplog.records if record.name == "slotlock.access"]
    assert [(record.request_id, record.status) for record in records] == [("r9", 200)]  # type: ignore[attr-defined]
    assert counted(metrics) == 1
