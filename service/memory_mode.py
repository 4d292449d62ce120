"""memory://, the in-process store for trying the service: its extra and its dev key pair.

The data, API keys included, lives inside the serving process, where no other
process (`slotlock keys`) can reach it. So the service mints a dev key pair at
start and writes it, as `slotlock keys create` prints one, to a file in the
data directory that it imports as its key file; the file goes when it stops.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import msgspec

from service.store.api_keys import new_pair

DEV_ENVIRONMENT = "dev"
NEEDS_EXTRA = (
    "the in-memory store (memory://) needs fakeredis, which this installation lacks (the "
    "image never has it): set REDIS_URL to a Redis, or pip install 'slotlock[memory]'"
)


def available() -> bool:
    """Whether fakeredis, which memory:// runs on, is installed."""
    try:
        return importlib.util.find_spec("fakeredis") is not None
    except ImportError:  # an import hook that forbids it (tests/test_deploy_dockerfile.py)
        return False


def dev_keys_path(data_dir: Path) -> Path:
    """Where a memory:// service keeps the dev key pair of its run."""
    return data_dir / "memory-keys.json"


def write_dev_keys(data_dir: Path) -> Path:
    """Mint a pair and write it, readable by this user only; the file's path."""
    path = dev_keys_path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a previous run's: its keys died with it
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(msgspec.json.encode(new_pair(DEV_ENVIRONMENT)) + b"\n")
    return path
