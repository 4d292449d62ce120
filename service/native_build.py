"""`python -m service.native_build`: compile the request path with mypyc (service/native.py).

`make native` runs it (and so `make run` and `make test` do), and so does the
Dockerfile's builder stage. It compiles in place: a `.so` beside each module of
native.COMPILED, their shared code in `service/_native__mypyc*.so`, mypyc's C
sources in `build/`, and the manifest that lets the package use them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sysconfig
from pathlib import Path

from service.native import (
    COMPILED,
    MANIFEST,
    PACKAGE_DIR,
    SHARED_LIBRARY,
    built_modules,
    is_fresh,
    source_digests,
    source_path,
)


def build(python_executable: str | None = None) -> None:
    """Compile COMPILED in place with mypyc, then write the manifest.

    `python_executable`: the interpreter whose packages the sources import, when mypy
    runs in another environment (the Dockerfile keeps the compiler out of the image's).
    """
    from mypyc.build import mypycify
    from setuptools import Distribution

    MANIFEST.unlink(missing_ok=True)
    for path in built_modules():
        path.unlink()
    root = PACKAGE_DIR.parent
    sources = [str(source_path(module).relative_to(root)) for module in COMPILED]
    if python_executable is not None:
        sources.append(f"--python-executable={python_executable}")
    digests = source_digests()
    previous = Path.cwd()
    os.chdir(root)  # mypyc and build_ext --inplace work relative to the project
    try:
        extensions = mypycify(sources, opt_level="3", group_name=SHARED_LIBRARY)
        distribution = Distribution({"name": "slotlock-native", "ext_modules": extensions})
        command = distribution.get_command_obj("build_ext")
        command.inplace = True
        command.build_temp = str(root / "build" / "native")
        distribution.run_command("build_ext")
    finally:
        os.chdir(previous)
    MANIFEST.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")


def missing_tools() -> list[str]:
    """What compiling needs and this machine lacks: a C compiler, Python's headers."""
    missing = []
    if shutil.which(os.environ.get("CC", "cc")) is None:
        missing.append("C compiler (cc)")
    if not Path(sysconfig.get_paths()["include"], "Python.h").exists():
        missing.append("Python headers (Python.h)")
    return missing


def main(argv: list[str] | None = None) -> int:
    """Compile unless the build already matches the sources.

    Without a C compiler or Python's headers it says so and leaves the modules to run as
    Python (a build would fail, and `make run` with it).
    """
    parser = argparse.ArgumentParser(prog="python -m service.native_build")
    parser.add_argument("--python-executable", help="the interpreter the service runs on")
    arguments = parser.parse_args(argv)
    if built_modules() and is_fresh():
        print("service.native: the compiled modules match their sources")
        return 0
    missing = missing_tools()
    if missing:
        print(
            f"service.native: no {' and no '.join(missing)}, so the request path runs as "
            "Python, some 8% more CPU per lock; install gcc and python3-dev (or your "
            "Python's headers) and run `make native` to compile it"
        )
        return 0
    build(arguments.python_executable)
    print(f"service.native: compiled {len(COMPILED)} modules")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
