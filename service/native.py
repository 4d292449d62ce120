"""The request path compiled to C with mypyc, and the guard that keeps a stale build unused.

Every request passes through the same few modules: the HTTP connection and
exchange, the dispatcher, CORS, routing, the slot routes, their gate and request
validation, the rate limiter, metrics, the access-log bookkeeping, the helpers
they call for ids, keys and instants, the idempotency wrapper, the slot store and
its refusals, the script batcher and the raw Redis connection.
They are plain, strictly typed Python; mypyc (part of mypy) compiles them into C
extensions as they are, and a lock request then costs the worker some 15% fewer
instructions and some 7% less CPU (README, "Performance").

`python -m service.native_build` (run by `make` and by the Dockerfile) compiles
them in place: each `service/<module>.py` gets a `.so` beside it, which Python imports
instead, and `service/_native__mypyc*.so` holds the code they share. A manifest
records the SHA-256 of every source compiled. On import, `service/__init__.py`
compares it with the sources: if any of them changed since, or the manifest is
missing, the whole build is bypassed (all or nothing: compiled modules call each
other directly, so one stale module could not be swapped out alone), the modules
run as Python, and a warning says to run `make native`. So an edit always takes
effect, compiled or not.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

PACKAGE_DIR = Path(__file__).resolve().parent
MANIFEST = PACKAGE_DIR / "_native_build.json"
SHARED_LIBRARY = "service._native"  # mypyc names the shared module service._native__mypyc

# The modules every lock, unlock, read and booking runs through, compiled: from the
# HTTP connection down to the raw Redis connection. Left out: modules that define
# msgspec Structs with class options (mypyc drops the options) or classes extending a
# class with __slots__ (mypyc refuses them). What compiled code must not do:
# - read a value whose stub type is wrong as that type (each read is checked against
#   it): such values are read as Any (http_protocol.py);
# - give an interpreted base class-attribute defaults (the instance would not see
#   them: validation.py raises Unprocessable instead);
# - await inside an `except` or `finally` block, where mypyc loses the exception
#   being handled (tests/test_native.py checks every module).
# And compiled objects' methods cannot be replaced at run time: tests inject faults
# at the Transport instead (tests/script_faults.py).
COMPILED = (
    "service.answered",
    "service.clock",
    "service.cors",
    "service.dispatch",
    "service.http_exchange",
    "service.http_protocol",
    "service.idempotency",
    "service.ids",
    "service.keyspace",
    "service.metrics",
    "service.operation",
    "service.ratelimit",
    "service.responses",
    "service.routes.common",
    "service.routes.slots",
    "service.routing",
    "service.scope",
    "service.store.batching",
    "service.store.raw_redis",
    "service.store.refusals",
    "service.store.slots",
    "service.validation",
)


class StaleNativeBuild(UserWarning):
    """The compiled modules do not match their sources: they run as Python instead."""


def source_path(module: str) -> Path:
    """The .py file of one of `service`'s modules."""
    return PACKAGE_DIR.parent.joinpath(*module.split(".")).with_suffix(".py")


def source_digests() -> dict[str, str]:
    """SHA-256 of each compiled module's source, by module name."""
    return {
        module: hashlib.sha256(source_path(module).read_bytes()).hexdigest() for module in COMPILED
    }


def built_modules() -> list[Path]:
    """The compiled files present in the package (none in a fresh checkout)."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return [
        path for path in PACKAGE_DIR.rglob("*") if path.name.endswith(suffixes) and path.is_file()
    ]


def is_fresh() -> bool:
    """Whether the manifest matches every source: the compiled modules may be used."""
    try:
        recorded = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        return False
    return bool(recorded == source_digests())


def built_module_names() -> set[str]:
    """The modules that have a compiled file beside their source (the shared library,
    which has none, is left out): whatever a stale build would have Python import."""
    names = set()
    for path in built_modules():
        module = path.name.partition(".")[0]
        source = path.with_name(module + ".py")
        if source.exists():
            names.add(".".join(source.relative_to(PACKAGE_DIR.parent).with_suffix("").parts))
    return names


class _SourcesOnly(importlib.abc.MetaPathFinder):
    """Imports the given modules from their .py files, past their stale compiled files."""

    def __init__(self, modules: set[str]) -> None:
        self.modules = modules

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.modules:
            return None
        return importlib.util.spec_from_file_location(fullname, source_path(fullname))


def guard() -> None:
    """Run the modules as Python when a build exists but no longer matches its sources.

    Every module with a compiled file is bypassed, not only those of COMPILED: one that
    left the list keeps the file of its last build until the next build removes it.
    """
    if not built_modules() or is_fresh():
        return
    sys.meta_path.insert(0, _SourcesOnly(built_module_names()))
    warnings.warn(
        "service/ changed since its modules were compiled: running them as Python "
        "(run `make native` to compile them again)",
        StaleNativeBuild,
        stacklevel=2,
    )
