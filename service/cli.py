"""The `slotlock` command: serve, and API key management (keys create/list/revoke/rotate)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import redis.exceptions

from service import logs, memory_mode
from service.clock import format_instant, system_clock_ms
from service.connect import MEMORY_URL, redacted_url, redis_from_settings
from service.embedded import EmbeddedRedis, EmbeddedRedisError
from service.keyfile import read_key_file
from service.settings import Settings, SettingsError
from service.store.api_keys import KeyStore

logger = logging.getLogger("slotlock")

# Tools that a source checkout has and the image leaves out: (command, module).
_TOOLS = (("loadtest", "service.loadtest.command"), ("bench", "service.bench.command"))


class CommandError(Exception):
    """A command cannot do its job; the message says what failed and what to do."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: every failure is one line on stderr."""
    parser = _parser()
    arguments, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(arguments, "absent_tool", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    name = f"slotlock {arguments.name}"
    try:
        settings = Settings.from_env()
        if settings.redis_url not in (None, MEMORY_URL):
            redis_from_settings(settings)  # checks the URL and TLS settings; connects to nothing
    except SettingsError as error:
        print(f"slotlock: {error}", file=sys.stderr)
        return 2
    # The keys commands print their result; a connection's INFO lines would only clutter it.
    quiet = arguments.name.startswith("keys") and settings.log_level == "INFO"
    logs.configure("WARNING" if quiet else settings.log_level)
    command: Callable[[argparse.Namespace, Settings], int] = arguments.command
    try:
        return command(arguments, settings)
    except (CommandError, SettingsError, EmbeddedRedisError) as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2
    except redis.exceptions.RedisError as error:
        print(f"{name}: {_redis_failure(error, settings)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if settings.log_level == "DEBUG":
            raise
        print(
            f"{name}: failed with {type(error).__name__}: {error} "
            "(SLOTLOCK_LOG_LEVEL=DEBUG shows where)",
            file=sys.stderr,
        )
        return 1


def _redis_failure(error: redis.exceptions.RedisError, settings: Settings) -> str:
    """What went wrong with Redis, and what to check, in one line."""
    where = "the embedded Redis" if settings.redis_url is None else "Redis"
    if settings.redis_url is not None:
        where += f" at {redacted_url(settings.redis_url)}"
    detail = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, redis.exceptions.AuthenticationError):
        return f"{where} refused the credentials ({detail}): check the user and password"
    if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return f"cannot reach {where} ({detail}): is it running? Check REDIS_URL"
    return f"{where} answered an error ({detail})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slotlock", description=__doc__)
    commands = parser.add_subparsers(required=True)

    serve = commands.add_parser("serve", help="run the HTTP service under uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--graceful-timeout",
        type=float,
        default=20.0,
        help="seconds to finish in-flight requests after SIGTERM",
    )
    serve.set_defaults(command=serve_command, name="serve")

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(required=True)
    create = keys.add_parser("create", help="issue a key pair; prints it as JSON")
    create.add_argument("--environment", required=True)
    create.set_defaults(command=_keys(_create_keys), name="keys create")
    listing = keys.add_parser("list", help="every key: id, environment, scope, state")
    listing.set_defaults(command=_keys(_list_keys), name="keys list")
    rotate = keys.add_parser(
        "rotate", help="issue a new pair; the environment's old pairs keep working for a while"
    )
    rotate.add_argument("--environment", required=True)
    rotate.add_argument(
        "--overlap-s",
        type=int,
        default=3600,
        help="seconds the old pairs keep working, so clients can switch (default 3600)",
    )
    rotate.set_defaults(command=_keys(_rotate_keys), name="keys rotate")
    revoke = keys.add_parser("revoke", help="revoke a key (the key itself, or its pair id)")
    revoke.add_argument("key")
    revoke.set_defaults(command=_keys(_revoke_keys), name="keys revoke")
    for name, module in _TOOLS:
        _register_tool(commands, name, module)
    return parser


def _register_tool(commands: Any, name: str, module: str) -> None:
    """Add a tool's subcommand; where it is not installed, one that says so."""
    try:
        register = importlib.import_module(module).register
    except ModuleNotFoundError as error:
        if error.name is None or not module.startswith(error.name):
            raise  # the tool is there but broken: not the case to explain away
        # Whatever options follow, the answer is the same one line.
        absent = commands.add_parser(name, help="(not in this installation)", add_help=False)
        absent.set_defaults(command=_absent_tool(name), name=name, absent_tool=True)
    else:
        register(commands)
        commands.choices[name].set_defaults(name=name)


def _absent_tool(name: str) -> Callable[[argparse.Namespace, Settings], int]:
    def run(arguments: argparse.Namespace, settings: Settings) -> int:
        raise CommandError(
            "not in this image, which holds only the service: run it from a source checkout "
            "(make run installs it)"
        )

    return run


def serve_command(arguments: argparse.Namespace, settings: Settings) -> int:
    """Run uvicorn (uvloop, httptools) on REDIS_URL, or on the embedded default."""
    import uvicorn

    if settings.keys_file is not None:
        _check_key_file(settings)
    embedded: EmbeddedRedis | None = None
    dev_keys = None
    workers = arguments.workers
    if settings.redis_url is None:
        if EmbeddedRedis.available():
            embedded = EmbeddedRedis(settings.data_dir)
            embedded.start()
            os.environ["REDIS_URL"] = embedded.url
            logger.info("no REDIS_URL: using an embedded redis-server", extra={"url": embedded.url})
        else:
            os.environ["REDIS_URL"] = MEMORY_URL
    if os.environ["REDIS_URL"] == MEMORY_URL:
        dev_keys = _start_in_memory(settings)
        workers = 1
    # uvicorn re-raises SIGTERM after its graceful shutdown; with the default action
    # that kills the process at once: no `finally` (the embedded Redis, in a session
    # of its own, would live on) and no exit-time flush of the buffered log. As
    # KeyboardInterrupt, which uvicorn.run absorbs, it returns here instead.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        uvicorn.run(
            "service.asgi:create_app_from_env",
            factory=True,
            host=arguments.host,
            port=arguments.port,
            workers=workers,
            loop="uvloop",
            # httptools, each answer written in one go, heads bounded: service/http_protocol.py
            http="service.http_protocol:HttpProtocol",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=arguments.graceful_timeout,
            # Nothing reads the client address, so uvicorn's proxy-header layer is pure cost.
            proxy_headers=False,
            # No `server: uvicorn` on every answer: it tells a scanner what to try, and
            # costs a header line each time. (`date` stays: HTTP asks an origin for it.)
            server_header=False,
        )
    finally:
        if embedded is not None:
            embedded.stop()
        if dev_keys is not None:
            dev_keys.unlink(missing_ok=True)
    return 0


def _check_key_file(settings: Settings) -> None:
    """Read SLOTLOCK_KEYS_FILE now, so a bad one stops start-up with one line."""
    assert settings.keys_file is not None
    try:
        read_key_file(settings.keys_file)
    except ValueError as error:
        raise CommandError(f"{error}; fix the file or unset SLOTLOCK_KEYS_FILE") from None


def _start_in_memory(settings: Settings) -> Path | None:
    """Warn that the data dies with the process; mint its dev key pair unless a key file is set."""
    why = "REDIS_URL=memory://"
    if settings.redis_url is None:
        why = "no REDIS_URL and no redis-server on PATH"
    if not memory_mode.available():
        raise CommandError(f"{why}, and {memory_mode.NEEDS_EXTRA}")
    dev_keys = None
    if settings.keys_file is None:
        dev_keys = memory_mode.write_dev_keys(settings.data_dir)
        os.environ["SLOTLOCK_KEYS_FILE"] = str(dev_keys)
        keys = f"API keys: the dev pair in {dev_keys} (`slotlock keys` cannot reach this memory)"
    else:
        keys = f"API keys: those of {settings.keys_file} (`slotlock keys` cannot reach this memory)"
    logger.warning(
        f"{why}: data lives in this process's memory only and is lost when it stops "
        f"(one worker). {keys}"
    )
    return dev_keys


def _keys(
    action: Callable[[KeyStore, argparse.Namespace], Awaitable[int]],
) -> Callable[[argparse.Namespace, Settings], int]:
    """Run a keys subcommand against REDIS_URL, or the running embedded server."""

    def run(arguments: argparse.Namespace, settings: Settings) -> int:
        dev_keys = memory_mode.dev_keys_path(settings.data_dir)
        if settings.redis_url == MEMORY_URL:
            raise CommandError(
                "with REDIS_URL=memory:// the keys live inside the serving process, out of "
                f"this command's reach: use the dev pair `slotlock serve` wrote to {dev_keys}"
            )
        if settings.redis_url is None:
            embedded = EmbeddedRedis(settings.data_dir)
            if not embedded.running():
                raise CommandError(_no_embedded_redis(settings, dev_keys))
            settings = dataclasses.replace(settings, redis_url=embedded.url)

        async def go() -> int:
            redis = redis_from_settings(settings)
            try:
                return await action(KeyStore(redis, system_clock_ms), arguments)
            finally:
                await redis.aclose()

        return asyncio.run(go())

    return run


def _no_embedded_redis(settings: Settings, dev_keys: Path) -> str:
    if dev_keys.exists():
        return (
            "the running `slotlock serve` keeps its data in its own memory (no redis-server "
            f"on PATH), out of this command's reach: use the dev pair it wrote to {dev_keys}"
        )
    return (
        f"no embedded Redis answers in {settings.data_dir}: start `slotlock serve` "
        "(or `make run`) first, or set REDIS_URL"
    )


async def _create_keys(store: KeyStore, arguments: argparse.Namespace) -> int:
    pair = await store.create_pair(arguments.environment)
    sys.stdout.write(msgspec.json.encode(pair).decode() + "\n")
    return 0


async def _rotate_keys(store: KeyStore, arguments: argparse.Namespace) -> int:
    now_ms = system_clock_ms()
    current = [
        record
        for record in await store.all()
        if record.environment == arguments.environment
        and not record.revoked
        and (not record.expires_ms or record.expires_ms > now_ms)
    ]
    pair = await store.create_pair(arguments.environment)
    await store.retire(current, after_ms=max(0, arguments.overlap_s) * 1000)
    sys.stdout.write(msgspec.json.encode(pair).decode() + "\n")
    print(f"{len(current)} older key(s) stop working in {arguments.overlap_s} s", file=sys.stderr)
    return 0


async def _list_keys(store: KeyStore, arguments: argparse.Namespace) -> int:
    now_ms = system_clock_ms()
    for record in await store.all():
        state = "active"
        if record.revoked:
            state = "revoked"
        elif record.expires_ms:
            state = "expired" if record.expires_ms <= now_ms else "expiring"
        row: dict[str, Any] = {
            "id": record.key_hash[:16],
            "pair_id": record.pair_id,
            "environment": record.environment,
            "scope": record.scope,
            "created_at": format_instant(record.created_ms),
            "state": state,
        }
        if record.expires_ms:
            row["expires_at"] = format_instant(record.expires_ms)
        sys.stdout.write(msgspec.json.encode(row).decode() + "\n")
    return 0


async def _revoke_keys(store: KeyStore, arguments: argparse.Namespace) -> int:
    records = await store.find(arguments.key)
    if not records:
        raise CommandError("no such key (give the key itself, or its pair id from `keys list`)")
    await store.retire(records)
    print(f"revoked {len(records)} key(s)", file=sys.stderr)
    return 0
