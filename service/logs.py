"""One JSON object per log line, on stderr."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import msgspec

# Attributes every LogRecord has; anything else was passed through `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


_encoder = msgspec.json.Encoder(enc_hook=str)  # anything unusual in `extra` logs as its str()


class JsonFormatter(logging.Formatter):
    """Formats a record as a JSON object, with its `extra` fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


class BufferedStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes lines into a 64 KiB buffer that a daemon thread flushes 4 times a second.

    Python's stderr writes every line with a syscall of its own; at thousands of
    requests a second that was a visible share of a worker's CPU. A line reaches
    the log at most 0.25 s late, and everything is flushed at exit.
    """

    FLUSH_INTERVAL_S = 0.25

    def __init__(self) -> None:
        super().__init__(open(sys.stderr.fileno(), "w", buffering=1 << 16, closefd=False))  # noqa: SIM115
        self._flusher = threading.Thread(target=self._flush_forever, daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        """Format and buffer the line; the flusher writes it out."""
        try:
            self.stream.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.FLUSH_INTERVAL_S)
            self.flush()


def configure(level: str) -> None:
    """Send every logger's records, as JSON lines, to stderr."""
    # What the logging HOWTO's "Optimization" section suggests for hot paths: none
    # of these appear in our lines, and finding the caller walks the stack per line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BufferedStderrHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # uvicorn's own access log would repeat our per-request line without a request id.
    logging.getLogger("uvicorn.access").disabled = True
