"""The `slotlock` command: serve, and API key management (keys create/list/revoke/rotate)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from service import logs
from service.bench.command import register as register_bench
from service.clock import format_instant, system_clock_ms
from service.connect import MEMORY_URL, redis_from_settings
from service.embedded import EmbeddedRedis
from service.loadtest.command import register as register_loadtest
from service.settings import Settings, SettingsError
from service.store.api_keys import KeyStore

logger = logging.getLogger("slotlock")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if settings.redis_url is not None:
            redis_from_settings(settings)  # checks the URL and TLS settings; connects to nothing
    except SettingsError as error:
        print(f"slotlock: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    command: Callable[[argparse.Namespace, Settings], int] = arguments.command
    return command(arguments, settings)


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
    serve.set_defaults(command=serve_command)

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(required=True)
    create = keys.add_parser("create", help="issue a key pair; prints it as JSON")
    create.add_argument("--environment", required=True)
    create.set_defaults(command=_keys(_create_keys))
    listing = keys.add_parser("list", help="every key: id, environment, scope, state")
    listing.set_defaults(command=_keys(_list_keys))
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
    rotate.set_defaults(command=_keys(_rotate_keys))
    revoke = keys.add_parser("revoke", help="revoke a key (the key itself, or its pair id)")
    revoke.add_argument("key")
    revoke.set_defaults(command=_keys(_revoke_keys))
    register_loadtest(commands)
    register_bench(commands)
    return parser


def serve_command(arguments: argparse.Namespace, settings: Settings) -> int:
    """Run uvicorn (uvloop, httptools) on REDIS_URL, or on the embedded default."""
    import uvicorn

    embedded: EmbeddedRedis | None = None
    workers = arguments.workers
    if settings.redis_url is None:
        if EmbeddedRedis.available():
            embedded = EmbeddedRedis(settings.data_dir)
            embedded.start()
            os.environ["REDIS_URL"] = embedded.url
            logger.info("no REDIS_URL: using an embedded redis-server", extra={"url": embedded.url})
        else:
            os.environ["REDIS_URL"] = MEMORY_URL
            workers = 1
            logger.warning(
                "no REDIS_URL and no redis-server on PATH: data lives in this process's "
                "memory only and is lost when it stops (one worker)"
            )
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
            # httptools, with each response written to its socket at once: service/http_protocol.py
            http="service.http_protocol:OneWriteHttpToolsProtocol",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=arguments.graceful_timeout,
            # Nothing reads the client address, so uvicorn's proxy-header layer is pure cost.
            proxy_headers=False,
        )
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _keys(
    action: Callable[[KeyStore, argparse.Namespace], Awaitable[int]],
) -> Callable[[argparse.Namespace, Settings], int]:
    """Run a keys subcommand against REDIS_URL, or the running embedded server."""

    def run(arguments: argparse.Namespace, settings: Settings) -> int:
        if settings.redis_url is None:
            embedded = EmbeddedRedis(settings.data_dir)
            if not embedded.running():
                print("slotlock: set REDIS_URL, or start `slotlock serve` first", file=sys.stderr)
                return 2
            settings = dataclasses.replace(settings, redis_url=embedded.url)

        async def go() -> int:
            redis = redis_from_settings(settings)
            try:
                return await action(KeyStore(redis, system_clock_ms), arguments)
            finally:
                await redis.aclose()

        return asyncio.run(go())

    return run


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
        print("slotlock: no such key", file=sys.stderr)
        return 1
    await store.retire(records)
    print(f"revoked {len(records)} key(s)", file=sys.stderr)
    return 0
