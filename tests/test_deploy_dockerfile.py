"""The Dockerfile, tested without a Docker engine: its stages, its context, and its CMD run.

No image can be built in CI, so the runtime stage is rebuilt here as a directory
tree: every context file its COPY lines carry (followed through the builder
stage), with this test run's virtual environment standing in for /app/.venv.
The image's exact CMD runs in that tree, with only the listen address added
(a container's own network namespace is what keeps 0.0.0.0:8000 private), and
unable to import any package the image does not install (the dev tools).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from service.cli import _parser as cli_parser
from tests.redis_servers import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
VENV_IN_IMAGE = PurePosixPath("/app/.venv")
TEST_VENV = Path(sys.prefix)
START_TIMEOUT_S = 15.0


# --- Reading the Dockerfile -------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One logical Dockerfile line: its keyword, its --flags and the rest."""

    keyword: str
    flags: dict[str, str]
    arguments: str


@dataclass(frozen=True)
class Copy:
    """One source of a COPY (a context path, or a path in another stage) and where it lands."""

    source: str
    destination: PurePosixPath
    from_stage: str | None


@dataclass(frozen=True)
class Stage:
    """A build stage: its name, its base image and its instructions in order."""

    name: str
    base: str
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        """Every instruction with this keyword."""
        return [each for each in self.instructions if each.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        """The instruction with this keyword that takes effect (the last one)."""
        found = self.all(keyword)
        assert found, f"stage {self.name} has no {keyword}"
        return found[-1]

    def copies(self) -> list[Copy]:
        """Every COPY source, its destination resolved against the WORKDIR in force."""
        workdir = PurePosixPath("/")
        found = []
        for each in self.instructions:
            if each.keyword == "WORKDIR":
                workdir = workdir / each.arguments
            elif each.keyword == "COPY":
                *sources, destination = _words(each.arguments)
                from_stage = each.flags.get("from")
                # A file copied into a directory (a trailing "/", or several sources)
                # keeps its name; a directory's contents land in the destination itself.
                into = destination.endswith("/") or len(sources) > 1
                for source in sources:
                    landing = workdir / destination
                    if into and not _is_directory(source, from_stage):
                        landing = landing / PurePosixPath(source).name
                    found.append(Copy(source, landing, from_stage))
        return found

    def env(self) -> dict[str, str]:
        """The variables its ENV lines set (the key=value form)."""
        variables = {}
        for each in self.all("ENV"):
            for word in shlex.split(each.arguments):
                name, separator, value = word.partition("=")
                assert separator, f"ENV {each.arguments!r}: use the NAME=value form"
                variables[name] = value
        return variables

    def cmd(self) -> list[str]:
        """The exec-form CMD."""
        return _exec_form(self.last("CMD").arguments)


def _is_directory(source: str, from_stage: str | None) -> bool:
    """Whether a COPY source is a directory (one a RUN made in another stage counts as one)."""
    origin = _origin(from_stage, source)
    return origin is None or (ROOT / origin).is_dir()


def _words(text: str) -> list[str]:
    return list(json.loads(text)) if text.startswith("[") else shlex.split(text)


def _exec_form(text: str) -> list[str]:
    assert text.startswith("["), f"{text!r} is not exec form: signals would go to a shell"
    words = json.loads(text)
    assert all(isinstance(word, str) for word in words)
    return list(words)


def _logical_lines(text: str) -> Iterator[str]:
    """Lines with continuations joined; comments (also inside a continuation) dropped."""
    pending = ""
    for line in text.splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield (pending + line).strip()
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation"


def _split_flags(text: str) -> tuple[dict[str, str], str]:
    flags = {}
    while match := re.match(r"--([a-z-]+)(?:=(\S*))?\s+", text):
        flags[match.group(1)] = match.group(2) or ""
        text = text[match.end() :]
    return flags, text


def parse_dockerfile(path: Path = DOCKERFILE) -> list[Stage]:
    """The stages of a Dockerfile, with global ARG defaults substituted into FROM."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        flags, arguments = _split_flags(rest.strip())
        if keyword == "ARG" and not stages:
            name, _, default = arguments.partition("=")
            global_args[name] = default
        elif keyword == "FROM":
            base, _, name = re.sub(
                r"\$\{?(\w+)\}?", lambda match: global_args[match.group(1)], arguments
            ).partition(" AS ")
            stages.append(Stage(name.strip() or str(len(stages)), base.strip(), []))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append(Instruction(keyword, flags, arguments))
    return stages


def runtime_stage() -> Stage:
    """The stage the image ends with: what runs."""
    return parse_dockerfile()[-1]


def stage_named(name: str) -> Stage:
    """A stage by its AS name."""
    found = [stage for stage in parse_dockerfile() if stage.name == name]
    assert found, f"no stage {name}"
    return found[0]


def exposed_port() -> int:
    """The one port the runtime stage EXPOSEs."""
    (port,) = runtime_stage().last("EXPOSE").arguments.split()
    return int(port.removesuffix("/tcp"))


def image_uid() -> int:
    """The numeric uid of the runtime stage's USER."""
    return int(runtime_stage().last("USER").arguments.partition(":")[0])


def serve_arguments() -> dict[str, object]:
    """The CMD's `slotlock serve` options, as the real command line parser reads them."""
    command = runtime_stage().cmd()
    assert command[:2] == ["slotlock", "serve"], command
    return vars(cli_parser().parse_args(command[1:]))


# --- What the build context holds -------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex over slash-separated paths."""
    parts = []
    for piece in re.split(r"(\*\*/?|\*|\?)", pattern.strip("/")):
        if piece.startswith("**"):
            parts.append("(?:.*/)?" if piece.endswith("/") else ".*")
        elif piece == "*":
            parts.append("[^/]*")
        elif piece == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


def in_context(relative: str) -> bool:
    """Whether .dockerignore lets this path into the build context (last match wins)."""
    rules = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    included = True
    segments = relative.split("/")
    prefixes = ["/".join(segments[: end + 1]) for end in range(len(segments))]
    for rule in rules:
        regex = _pattern_regex(rule.removeprefix("!"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            included = rule.startswith("!")
    return included


def context_files(directory: str) -> list[str]:
    """Files of a top-level directory that the build context holds."""
    return sorted(
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / directory).rglob("*")
        if path.is_file() and in_context(path.relative_to(ROOT).as_posix())
    )


def needed_at_run_time() -> list[str]:
    """What the service reads when it runs: its modules and every Lua script."""
    return [
        path
        for path in context_files("service") + context_files("lua")
        if path.endswith((".py", ".lua"))
    ]


# --- Following COPY through the stages --------------------------------------


def _origin(stage_name: str | None, source: str) -> str | None:
    """The context path a COPY source comes from; None when a RUN made it in that stage."""
    if stage_name is None:
        return source.strip("/")
    wanted = PurePosixPath(source)
    for copy in reversed(stage_named(stage_name).copies()):
        if wanted == copy.destination or copy.destination in wanted.parents:
            rest = wanted.relative_to(copy.destination).as_posix()
            inner = copy.source if rest == "." else f"{copy.source}/{rest}"
            return _origin(copy.from_stage, inner)
    return None


def runtime_tree() -> dict[PurePosixPath, str | None]:
    """Each runtime COPY destination and the context path it carries (None: built by RUN)."""
    tree = {}
    for copy in runtime_stage().copies():
        tree[copy.destination] = _origin(copy.from_stage, copy.source)
    return tree


def carried_files() -> set[str]:
    """Every context file that ends up in the runtime image."""
    carried = set()
    for origin in runtime_tree().values():
        if origin is None:
            continue
        if (ROOT / origin).is_dir():
            carried.update(context_files(origin))
        elif in_context(origin):
            carried.add(origin)
    return carried


def materialise(root: Path, skip: str | None = None) -> Path:
    """Lay the runtime image's files out under root; returns where /app is (its WORKDIR)."""
    for destination, origin in runtime_tree().items():
        if origin is None:
            assert destination == VENV_IN_IMAGE, f"{destination} is built, not copied"
            continue
        files = context_files(origin) if (ROOT / origin).is_dir() else [origin]
        for relative in files:
            if skip is not None and relative.startswith(skip):
                continue
            inside = destination / PurePosixPath(relative).relative_to(origin)
            target = root / inside.relative_to("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / relative, target)
    return root / PurePosixPath(runtime_stage().last("WORKDIR").arguments).relative_to("/")


# --- The stand-in for /app/.venv --------------------------------------------


def runtime_distributions() -> set[str]:
    """What the builder installs: [project].dependencies and theirs, extras and markers applied."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pending = [Requirement(text) for text in project["dependencies"]]
    seen: set[tuple[str, str]] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        for extra in {"", *requirement.extras} - {extra for known, extra in seen if known == name}:
            seen.add((name, extra))
            for text in metadata.distribution(name).requires or []:
                child = Requirement(text)
                if child.marker is None or child.marker.evaluate({"extra": extra}):
                    pending.append(child)
    return {name for name, _ in seen}


def not_in_image() -> set[str]:
    """Top-level modules this test's venv has and the image's venv does not (the dev tools)."""
    in_image = runtime_distributions() | {"slotlock", "pip", "setuptools"}
    return {
        module
        for module, distributions in metadata.packages_distributions().items()
        if not {canonicalize_name(each) for each in distributions} & in_image
    } - set(sys.stdlib_module_names)


SITECUSTOMIZE = """\
\"\"\"Test only: what the image does not install cannot be imported here either.\"\"\"
import importlib.abc
import sys

NOT_IN_IMAGE = frozenset({modules!r})


class NotInImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in NOT_IN_IMAGE:
            raise ModuleNotFoundError(f"No module named {{name!r}} in the image", name=name)
        return None


sys.meta_path.insert(0, NotInImage())
"""


def image_environment(app_dir: Path, redis_url: str) -> dict[str, str]:
    """The runtime stage's ENV, with this test's venv, minus the dev tools, for /app/.venv."""
    environment = {
        name: value.replace(f"{VENV_IN_IMAGE}/bin", str(TEST_VENV / "bin")).replace(
            "$PATH", os.defpath
        )
        for name, value in runtime_stage().env().items()
    }
    site = app_dir.parent / "test-site"
    if not site.is_dir():
        site.mkdir()
        modules = sorted(not_in_image())
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE.format(modules=modules))
    # In the image an editable install's .pth puts /app on sys.path; here, PYTHONPATH.
    environment |= {
        "PYTHONPATH": f"{site}{os.pathsep}{app_dir}",
        "HOME": str(app_dir),
        "REDIS_URL": redis_url,
    }
    return environment


def http_status(url: str, timeout_s: float = 2.0) -> int | None:
    """The status of a GET, or None when nothing answers (never through a proxy)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        error.close()  # it holds the connection
        return error.code
    except OSError:
        return None


def wait_for_status(url: str, wanted: int, process: subprocess.Popen[bytes]) -> None:
    """Poll until `url` answers `wanted`; fail if the process exits or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while http_status(url) != wanted:
        assert process.poll() is None, f"the service exited with {process.returncode}"
        assert time.monotonic() < deadline, f"{url} never answered {wanted}"
        time.sleep(0.05)


def start_image_cmd(
    app_dir: Path,
    redis_url: str,
    port: int,
    extra_env: dict[str, str] | None = None,
    extra_arguments: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """The image's exact CMD, plus a loopback listen address, in the runtime tree."""
    command = [*runtime_stage().cmd(), "--host", "127.0.0.1", "--port", str(port)]
    command += extra_arguments  # later options win: argparse keeps the last value
    with (app_dir.parent / "service.log").open("wb") as log:
        return subprocess.Popen(
            command,
            cwd=app_dir,
            env=image_environment(app_dir, redis_url) | (extra_env or {}),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


# uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
CLEAN_EXITS = (0, -signal.SIGTERM)


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM by pid, then wait (SIGKILL if it hangs); the exit code."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return process.returncode


# --- The tests --------------------------------------------------------------


def test_two_stages_on_one_pinned_python_image() -> None:
    """A builder and a runtime stage share one tagged Python 3.11 slim image (the venv needs it)."""
    stages = parse_dockerfile()
    assert [stage.name for stage in stages] == ["builder", "runtime"]
    assert stages[0].base == stages[1].base
    assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*", stages[1].base), stages[1].base


def test_runtime_stage_carries_only_venv_service_and_lua() -> None:
    """The runtime stage copies the builder's venv, service/ and lua/, and nothing else."""
    tree = runtime_tree()
    assert tree == {
        VENV_IN_IMAGE: None,
        PurePosixPath("/app/service"): "service",
        PurePosixPath("/app/lua"): "lua",
    }
    assert all(copy.from_stage == "builder" for copy in runtime_stage().copies())


def test_runtime_stage_copies_every_file_the_service_needs() -> None:
    """Every service module and every lua/**/*.lua script reaches the runtime image."""
    needed = needed_at_run_time()
    assert "lua/lock_slot.lua" in needed
    assert any(path.startswith("lua/lib/") for path in needed)
    assert not set(needed) - carried_files()


def test_build_context_holds_the_build_inputs_and_nothing_else() -> None:
    """.dockerignore lets in what the builder copies and keeps out .venv, .git, tests and caches."""
    for copy in stage_named("builder").copies():
        assert in_context(copy.source), f"COPY {copy.source} is not in the build context"
    for kept_out in (".venv/bin/python", ".git/HEAD", "tests/api.py", "k8s/base/deployment.yaml"):
        assert not in_context(kept_out), kept_out
    assert not in_context("service/__pycache__/cli.cpython-311.pyc")


def test_build_context_leaves_out_the_bench_and_load_test_tools() -> None:
    """The bench and load-test harness never reach the image; the CLI that names them does."""
    assert in_context("service/cli.py")
    assert not in_context("service/bench/command.py")
    assert not in_context("service/loadtest/runner.py")
    tools = ("service/bench/", "service/loadtest/")
    assert not any(path.startswith(tools) for path in carried_files())


def test_mount_targets_are_absolute() -> None:
    """Every RUN --mount target is an absolute path: buildah and podman refuse relative ones."""
    targets = re.findall(r"--mount=\S*?\btarget=([^,\s]+)", DOCKERFILE.read_text())
    assert targets, "no RUN --mount left: drop this test"
    assert all(target.startswith("/") for target in targets), targets


def test_bytecode_is_compiled_at_build_time() -> None:
    """The builder compiles the package's bytecode, which the runtime stage copies."""
    runs = " ".join(each.arguments for each in stage_named("builder").all("RUN"))
    assert re.search(r"-m compileall\b[^&]*\bservice\b", runs)
    assert "PYTHONDONTWRITEBYTECODE" in runtime_stage().env()


def test_runs_as_a_fixed_non_root_uid() -> None:
    """USER is a numeric uid:gid other than root, and the stage creates that user."""
    user = runtime_stage().last("USER").arguments
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), user
    creates = " ".join(each.arguments for each in runtime_stage().all("RUN"))
    assert f"--uid {image_uid()}" in creates


def test_cmd_serves_on_all_interfaces_with_one_worker() -> None:
    """The exec-form CMD runs `slotlock serve` on 0.0.0.0 at the EXPOSEd port, one worker."""
    arguments = serve_arguments()
    assert arguments["host"] == "0.0.0.0"
    assert arguments["port"] == exposed_port() == 8000
    assert arguments["workers"] == 1
    assert isinstance(arguments["graceful_timeout"], float)


def test_environment_is_unbuffered_with_the_venv_first_on_path() -> None:
    """PYTHONUNBUFFERED is set and PATH finds the venv's `slotlock` first."""
    env = runtime_stage().env()
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith(f"{VENV_IN_IMAGE}/bin:")


def test_healthcheck_asks_healthz_on_the_exposed_port() -> None:
    """HEALTHCHECK is exec form and asks /healthz (never Redis) on the EXPOSEd port."""
    healthcheck = runtime_stage().last("HEALTHCHECK")
    assert {"interval", "timeout", "retries"} <= set(healthcheck.flags)
    kind, _, command = healthcheck.arguments.partition(" ")
    assert kind == "CMD"
    assert f"http://127.0.0.1:{exposed_port()}/healthz" in " ".join(_exec_form(command))


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """The runtime image's files, laid out under a temporary root."""
    return materialise(tmp_path / "image")


def test_stand_in_venv_has_the_runtime_and_not_the_dev_tools(app_dir: Path) -> None:
    """Control: in the runtime tree uvicorn and redis import, while pytest and aiohttp do not."""
    blocked = not_in_image()
    assert {"pytest", "aiohttp", "mypy", "hypothesis", "fakeredis"} <= blocked
    assert not {"uvicorn", "uvloop", "httptools", "redis", "hiredis", "msgspec"} & blocked
    environment = image_environment(app_dir, "redis://127.0.0.1:1/0")
    for module, importable in (("uvicorn", True), ("service.cli", True), ("aiohttp", False)):
        probe = [str(TEST_VENV / "bin" / "python"), "-c", f"import {module}"]
        done = subprocess.run(probe, cwd=app_dir, env=environment, capture_output=True, timeout=30)
        assert (done.returncode == 0) is importable, (module, done.stderr)


def test_image_cmd_turns_ready_once_redis_answers(app_dir: Path, tmp_path: Path) -> None:
    """The exact CMD starts before Redis (/readyz 503), turns ready once Redis is up, and stops."""
    redis_port, port = free_port(), free_port()
    base_url = f"http://127.0.0.1:{port}"
    process = start_image_cmd(app_dir, f"redis://127.0.0.1:{redis_port}/0", port)
    server = RedisServer(tmp_path / "redis", redis_port)
    try:
        wait_for_status(f"{base_url}/healthz", 200, process)
        assert http_status(f"{base_url}/readyz") == 503
        server.start()
        wait_for_status(f"{base_url}/readyz", 200, process)
        assert stop(process) in CLEAN_EXITS
        assert "Application shutdown complete" in (app_dir.parent / "service.log").read_text()
    finally:
        stop(process)
        server.stop()


def test_image_healthcheck_passes_on_a_live_service_only(app_dir: Path, tmp_path: Path) -> None:
    """The HEALTHCHECK command exits 0 against the running CMD and non-zero once it is gone."""
    server = RedisServer.start_new(tmp_path / "redis")
    port = free_port()
    process = start_image_cmd(app_dir, server.url, port)
    _, _, command = runtime_stage().last("HEALTHCHECK").arguments.partition(" ")
    healthcheck = [
        word.replace(f"127.0.0.1:{exposed_port()}", f"127.0.0.1:{port}")
        for word in _exec_form(command)
    ]
    environment = image_environment(app_dir, server.url)
    try:
        wait_for_status(f"http://127.0.0.1:{port}/healthz", 200, process)
        assert subprocess.run(healthcheck, env=environment, timeout=10).returncode == 0
        stop(process)
        failed = subprocess.run(healthcheck, env=environment, timeout=10, capture_output=True)
        assert failed.returncode != 0
    finally:
        stop(process)
        server.stop()


def test_runtime_tree_without_lua_does_not_start(tmp_path: Path) -> None:
    """Control: without lua/ the same tree fails, so the test above ran the copied files."""
    app_dir = materialise(tmp_path / "image", skip="lua/")
    server = RedisServer.start_new(tmp_path / "redis")
    process = start_image_cmd(app_dir, server.url, free_port())
    try:
        assert process.wait(timeout=START_TIMEOUT_S) != 0
        assert f"{app_dir / 'lua'}/" in (app_dir.parent / "service.log").read_text()
    finally:
        stop(process)
        server.stop()


@pytest.mark.parametrize(
    ("arguments", "variables", "says"),
    [
        (("bench", "--duration", "1"), {}, "not in this image"),
        (("loadtest",), {}, "not in this image"),
        (("serve",), {"REDIS_URL": "memory://"}, "slotlock[memory]"),
        (("serve",), {"REDIS_URL": ""}, "slotlock[memory]"),
    ],
)
def test_what_the_image_leaves_out_is_refused_in_one_line(
    app_dir: Path, arguments: tuple[str, ...], variables: dict[str, str], says: str
) -> None:
    """In the runtime tree, the bench, the load test and the in-memory store each say why not."""
    environment = image_environment(app_dir, "redis://127.0.0.1:1/0") | variables
    environment["PATH"] = str(TEST_VENV / "bin")  # no redis-server: the image has none
    done = subprocess.run(
        [str(TEST_VENV / "bin" / "slotlock"), *arguments],
        cwd=app_dir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert says in done.stderr
