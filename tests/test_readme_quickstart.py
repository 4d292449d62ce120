"""The README's quick start, run as written against a live `slotlock serve`, so it never drifts.

Its shell blocks are taken from README.md in order and run as one bash script
(each step feeds the next through shell variables, as when pasted into one
terminal). Only what a reader's machine would differ in is replaced: the
service's address (a free port instead of 8000) and where `slotlock` lives.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import SLOTLOCK, LiveService, environment

README = Path(__file__).resolve().parent.parent / "README.md"
README_URL = "http://127.0.0.1:8000"
README_SLOTLOCK = ".venv/bin/slotlock"


def quick_start() -> list[str]:
    """The ```sh blocks of the README's `## Quick start` section, in order."""
    text = README.read_text()
    start = text.index("\n## Quick start\n")
    section = text[start : text.index("\n## ", start + 1)]
    return re.findall(r"```sh\n(.*?)```", section, re.DOTALL)


def documents(output: str) -> list[Any]:
    """The JSON values printed one after another."""
    decoder = json.JSONDecoder()
    found, position = [], 0
    while position < len(output.rstrip()):
        value, position = decoder.raw_decode(output, position)
        found.append(value)
        while position < len(output) and output[position].isspace():
            position += 1
    return found


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LiveService]:
    """`slotlock serve` as `make run` starts it: no REDIS_URL, its embedded redis-server."""
    live = LiveService(tmp_path / "serve.log", SLOTLOCK_DATA_DIR=str(tmp_path / "data"))
    live.start()
    yield live
    live.stop()


def test_readme_quick_start_runs_as_written(service: LiveService, tmp_path: Path) -> None:
    """Pasted in order against a live service, every step succeeds and the slot ends booked."""
    assert shutil.which("jq"), "the quick start uses jq: apt-get install jq"
    script = "\n".join(quick_start())
    script = script.replace(README_URL, service.url).replace(README_SLOTLOCK, SLOTLOCK)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=environment(SLOTLOCK_DATA_DIR=str(tmp_path / "data")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    published, locked, unlocked, booked = documents(done.stdout)
    assert published == "published"
    assert locked["available"] is False
    assert locked["locked_until"] is not None
    assert unlocked == {"available": True, "locked_until": None}
    assert booked == {"available": False, "num_active_bookings": 1}
