"""What /proc says about a process: resident memory and CPU time, sampled during a phase."""

from __future__ import annotations

import os
import threading
from pathlib import Path

SAMPLE_INTERVAL_S = 0.2
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """VmRSS of the process, in bytes (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds the process has used so far (0.0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def core_busy_s(core: int | None) -> float:
    """Seconds core `core` (every core when None) has spent not idle, from /proc/stat."""
    name = "cpu" if core is None else f"cpu{core}"
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == name:
            ticks = [int(value) for value in fields[1:8]]
            idle = ticks[3] + ticks[4]  # idle and iowait
            return (sum(ticks) - idle) / _TICKS_PER_S
    return 0.0


class RssSampler:
    """Samples a process's VmRSS in a background thread; keeps the largest value."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.max_bytes = 0

    def start(self) -> None:
        """Begin sampling."""
        self._thread.start()

    def stop(self) -> int:
        """Stop sampling; the largest RSS seen, in bytes."""
        self._stop.set()
        self._thread.join(timeout=5)
        return self.max_bytes

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.max_bytes = max(self.max_bytes, rss_bytes(self._pid))
            self._stop.wait(SAMPLE_INTERVAL_S)
