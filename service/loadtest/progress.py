"""The live progress line: elapsed time, requests per second, errors."""

from __future__ import annotations

import asyncio
import time
from typing import TextIO

from service.loadtest.stats import Recorder

INTERVAL_S = 1.0


def progress_line(elapsed_s: float, duration_s: float, rate: float, recorder: Recorder) -> str:
    """One line of progress, e.g. `  12.0/30 s   4,812 req/s   57,744 requests   0 errors`."""
    return (
        f"{elapsed_s:6.1f}/{duration_s:g} s  {rate:9,.0f} req/s  "
        f"{recorder.requests:11,} requests  {recorder.errors:,} errors"
    )


async def show_progress(recorder: Recorder, duration_s: float, stream: TextIO) -> None:
    """Rewrite the line every second (a new line each time when `stream` is not a terminal)."""
    started_s = last_s = time.monotonic()
    last_count = recorder.requests
    ending = "\r" if stream.isatty() else "\n"
    try:
        while True:
            await asyncio.sleep(INTERVAL_S)
            now_s = time.monotonic()
            rate = (recorder.requests - last_count) / (now_s - last_s)
            line = progress_line(now_s - started_s, duration_s, rate, recorder)
            stream.write(f"\r{line}" if ending == "\r" else f"{line}\n")
            stream.flush()
            last_s, last_count = now_s, recorder.requests
    finally:
        if ending == "\r":
            stream.write("\n")
            stream.flush()
