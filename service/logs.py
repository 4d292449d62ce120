"""One JSON object per log line, on stderr."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Protocol

import msgspec

# Attributes every LogRecord has; anything else was passed through `extra=`. uvicorn
# adds `color_message`, its message with ANSI colour escapes, for its own terminal
# formatter: in a JSON line it would only repeat `message` with escapes in it.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


_encoder = msgspec.json.Encoder(enc_hook=str)  # anything unusual in `extra` logs as its str()
ACCESS_LOGGER = "slotlock.access"
_sink: BufferedStderrHandler | None = None  # set by configure(): the process's own log sink
_stamp_second = -1
_stamp_prefix = ""
_stamp_ms = -1
_stamp_text = ""


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
        # Binary: lines arrive encoded (msgspec writes UTF-8), so no text layer encodes them again.
        super().__init__(open(sys.stderr.fileno(), "wb", buffering=1 << 16, closefd=False))  # noqa: SIM115
        self._flusher = threading.Thread(target=self._flush_forever, daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        """Format and buffer the line; the flusher writes it out."""
        try:
            self.write_line((self.format(record) + "\n").encode())
        except Exception:
            self.handleError(record)

    def write_line(self, line: bytes) -> None:
        """Buffer one finished line, UTF-8 with its newline (the access log's way in, past
        the logging machinery)."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self.stream.write(line)

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.FLUSH_INTERVAL_S)
            self.flush()


class AccessLine(msgspec.Struct, kw_only=True):
    """The per-request line; the same keys, in the same order, as JsonFormatter writes."""

    time: str
    level: str = "info"
    logger: str = ACCESS_LOGGER
    message: str = "request"
    request_id: str
    method: str
    path: str
    route: str
    status: int
    duration_ms: float


class LineSink(Protocol):
    """Where finished lines go (BufferedStderrHandler; a list in tests)."""

    def write_line(self, line: bytes) -> None: ...


class AccessLog:
    """Writes one line per request.

    Through the logging module a line cost about 14 us of a worker's CPU, as much
    as everything else the service adds to a lock request. So when the process
    logs through its own sink (see `configure`), the lines are encoded by msgspec
    and buffered there directly. Otherwise (the app inside tests or another
    program) each goes through the `slotlock.access` logger like any other record.
    """

    def __init__(self, sink: LineSink | None) -> None:
        self._sink = sink
        self._logger = logging.getLogger(ACCESS_LOGGER)
        self._encoder = msgspec.json.Encoder()

    @classmethod
    def for_this_process(cls) -> AccessLog:
        """The fast path when `configure` installed the sink and INFO is on."""
        enabled = _sink is not None and logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)
        return cls(_sink if enabled else None)

    @property
    def buffered(self) -> bool:
        """Whether lines go to the process's own sink, which writes them out up to 0.25 s later."""
        return self._sink is not None

    def write(self, entries: list[AccessLine]) -> None:
        """Log these requests (to the sink: in one write)."""
        if self._sink is not None:
            if entries:
                self._sink.write_line(self._encoder.encode_lines(entries))
        elif self._logger.isEnabledFor(logging.INFO):
            for entry in entries:
                fields = msgspec.structs.asdict(entry)
                for name in ("time", "level", "logger", "message"):
                    del fields[name]
                self._logger.info("request", extra=fields)


def utc_now_text() -> str:
    """Now, as the log's `time` field writes it.

    Under load many lines share a millisecond, so the text is made once per millisecond
    (and its date and time of day once per second).
    """
    global _stamp_second, _stamp_prefix, _stamp_ms, _stamp_text
    now_ms = time.time_ns() // 1_000_000
    if now_ms != _stamp_ms:
        second, millisecond = divmod(now_ms, 1000)
        if second != _stamp_second:
            _stamp_second = second
            _stamp_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _stamp_ms, _stamp_text = now_ms, f"{_stamp_prefix}.{millisecond:03d}Z"
    return _stamp_text


def configure(level: str) -> None:
    """Send every logger's records, as JSON lines, to stderr."""
    global _sink
    # What the logging HOWTO's "Optimization" section suggests for hot paths: none
    # of these appear in our lines, and finding the caller walks the stack per line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # Called by the CLI and again by the app factory in the same process: one sink (and
    # one flusher thread) serves both, so lines keep their order.
    if _sink is None:
        _sink = BufferedStderrHandler()
        _sink.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [_sink]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # uvicorn's own access log would repeat our per-request line without a request id.
    logging.getLogger("uvicorn.access").disabled = True
