"""The compiled request path (service/native.py): in use when it matches its sources, and
bypassed, all of it, when it does not.

The build is `make native`'s (`make test` runs it first). Each test but the first
works on a copy of the package, imported by a fresh interpreter from that copy.
"""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service import native
from service.native_build import missing_tools

ROOT = Path(__file__).resolve().parent.parent
needs_build = pytest.mark.skipif(
    bool(missing_tools()), reason="`make native` cannot compile here: the modules run as Python"
)


def package_copy(tmp_path: Path, *, with_build: bool) -> Path:
    """A copy of service/ under tmp_path (with or without the compiled files); its root."""
    ignored = ["__pycache__"]
    if not with_build:
        ignored += ["*.so", native.MANIFEST.name]
    shutil.copytree(ROOT / "service", tmp_path / "service", ignore=shutil.ignore_patterns(*ignored))
    return tmp_path


def python_in(
    root: Path, *arguments: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter run in `root`, so that it finds the package copy there first."""
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def imported_from(root: Path, module: str) -> subprocess.CompletedProcess[str]:
    """Import `module` from the package at `root`; its stdout is the file it came from."""
    return python_in(root, "-c", f"import {module} as m; print(m.__file__)")


@needs_build
def test_this_checkout_runs_the_request_path_compiled() -> None:
    """Every module of the list is imported as a C extension, built from today's sources."""
    assert native.is_fresh(), "the compiled modules are stale or missing: run `make native`"
    for module in native.COMPILED:
        loaded = importlib.import_module(module).__file__
        assert loaded is not None
        assert loaded.endswith(".so"), f"{module} runs as Python"


@needs_build
def test_a_build_that_matches_its_sources_is_used(tmp_path: Path) -> None:
    """A copy of the built package imports the compiled dispatcher, and warns of nothing."""
    root = package_copy(tmp_path, with_build=True)
    done = imported_from(root, "service.dispatch")
    assert done.stdout.strip().endswith(".so")
    assert "StaleNativeBuild" not in done.stderr


@needs_build
def test_an_edited_module_sends_the_whole_build_back_to_python(tmp_path: Path) -> None:
    """One compiled module edited: that one and the others it was compiled with run as
    Python (its edit takes effect), with a warning that says how to compile again."""
    root = package_copy(tmp_path, with_build=True)
    edited = root / "service" / "scope.py"
    edited.write_text(edited.read_text() + "\nEDITED = True\n")
    for module in ("service.scope", "service.dispatch"):
        done = imported_from(root, module)
        assert done.stdout.strip() == str(root / Path(*module.split("."))) + ".py"
        assert "StaleNativeBuild" in done.stderr
        assert "make native" in done.stderr
    shows_edit = python_in(root, "-W", "ignore", "-c", "import service.scope as s; print(s.EDITED)")
    assert shows_edit.stdout.strip() == "True"


@needs_build
def test_a_module_left_off_the_list_is_bypassed_with_the_rest(tmp_path: Path) -> None:
    """A compiled file left by a module that is no longer compiled (its source since
    edited) is not imported either once the build is stale."""
    root = package_copy(tmp_path, with_build=True)
    compiled_ids = next((root / "service").glob("ids.*.so"))
    compiled_ids.rename(root / "service" / compiled_ids.name.replace("ids.", "views.", 1))
    edited = root / "service" / "ids.py"
    edited.write_text(edited.read_text() + "\n")
    done = imported_from(root, "service.views")
    assert done.stdout.strip() == str(root / "service" / "views.py")


def test_a_checkout_without_a_build_runs_as_python(tmp_path: Path) -> None:
    """No compiled files (a fresh clone): the modules load from source, without a warning."""
    root = package_copy(tmp_path, with_build=False)
    done = imported_from(root, "service.dispatch")
    assert done.stdout.strip() == str(root / "service" / "dispatch.py")
    assert done.stderr == ""


def test_no_compiler_leaves_the_modules_as_python_and_says_so(tmp_path: Path) -> None:
    """`python -m service.native_build` without a C compiler exits 0, builds nothing, and
    says what it costs."""
    root = package_copy(tmp_path, with_build=False)
    no_compiler = {"PATH": "/usr/bin:/bin", "CC": "no-such-compiler"}
    done = python_in(root, "-m", "service.native_build", env=no_compiler)
    assert "no C compiler" in done.stdout
    assert "runs as Python" in done.stdout
    assert not list((root / "service").rglob("*.so"))
    assert not (root / "service" / native.MANIFEST.name).exists()


def awaits_while_handling(tree: ast.AST) -> list[int]:
    """Lines that await (await, async with, async for) inside an `except` or `finally` block."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Try | ast.TryStar):
            blocks = [handler.body for handler in node.handlers] + [node.finalbody]
            for statement in (statement for block in blocks for statement in block):
                found += [
                    inner.lineno
                    for inner in ast.walk(statement)
                    if isinstance(inner, ast.Await | ast.AsyncWith | ast.AsyncFor)
                ]
    return sorted(found)


@pytest.mark.parametrize("module", native.COMPILED)
def test_no_compiled_module_awaits_while_handling_an_exception(module: str) -> None:
    """mypyc loses the exception being handled when an `except` block awaits before `raise`:
    compiled that way, an idempotent POST that met a Redis outage left the error pending,
    and the next log line raised it (a dropped connection, then a dead worker). So compiled
    code handles a failure after its `try`, never awaiting inside the handler."""
    tree = ast.parse(native.source_path(module).read_text())
    assert awaits_while_handling(tree) == [], f"{module} awaits in an except/finally block"


def test_the_await_check_finds_an_await_in_a_handler() -> None:
    """The check above sees an await in `except` and in `finally`, and none in a `try` body."""
    source = (
        "async def f():\n"
        "    try:\n"
        "        await g()\n"
        "    except E:\n"
        "        await h()\n"
        "        raise\n"
        "    finally:\n"
        "        async with lock:\n"
        "            pass\n"
    )
    assert awaits_while_handling(ast.parse(source)) == [5, 8]
