"""`slotlock loadtest`: its arguments. The run itself (and aiohttp) is imported only when used."""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.loadtest.options import SCENARIOS, LoadOptions
from service.loadtest.transport import CLIENTS

SECRET_KEY_VARIABLE = "SLOTLOCK_SECRET_KEY"  # noqa: S105 (a variable name)
PUBLIC_KEY_VARIABLE = "SLOTLOCK_PUBLIC_KEY"


def register(commands: Any) -> None:
    """Add the `loadtest` subcommand to the `slotlock` parser's subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "loadtest",
        help="drive a running service like real frontends do; check invariants at the end",
        description="Drive a running slotlock like booking frontends do, report throughput and "
        "latency per endpoint, and check the invariants from outside (exit 1 if one broke).",
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the service's base URL")
    parser.add_argument("--scenario", choices=SCENARIOS, default="checkout")
    parser.add_argument("--users", type=at_least(1, int), default=50, help="virtual users")
    parser.add_argument("--duration", type=at_least(0.1, float), default=30.0, help="seconds")
    parser.add_argument(
        "--slots", type=at_least(1, int), default=1000, help="slots to create (contention)"
    )
    parser.add_argument(
        "--capacity", type=at_least(1, int), default=None, help="places per slot (1; group: 20)"
    )
    parser.add_argument(
        "--think-ms", type=at_least(0.0, float), default=200.0, help="a user's pause, +-50%%"
    )
    parser.add_argument("--book-ratio", type=_ratio, default=0.7, help="book, else unlock")
    parser.add_argument(
        "--cancel-ratio", type=_ratio, default=0.5, help="booked users that later cancel"
    )
    parser.add_argument(
        "--lock-hold-s", type=at_least(2, int), default=180, help="lock_until this far ahead"
    )
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--client", choices=CLIENTS, default="aiohttp", help="HTTP client")
    parser.add_argument(
        "--json", type=Path, default=Path("loadtest-report.json"), help="the figures as JSON"
    )
    parser.add_argument("--no-progress", action="store_true", help="no live progress line")
    parser.add_argument(
        "--secret-key", help=f"creates the resource; default ${SECRET_KEY_VARIABLE}"
    )
    parser.add_argument("--public-key", help=f"sent by users; default ${PUBLIC_KEY_VARIABLE}")
    parser.set_defaults(command=run)


def run(arguments: argparse.Namespace, settings: object) -> int:
    """Build the options and run the load test."""
    secret_key = arguments.secret_key or os.environ.get(SECRET_KEY_VARIABLE)
    if not secret_key:
        print(f"slotlock loadtest: give --secret-key or set {SECRET_KEY_VARIABLE}", file=sys.stderr)
        return 2
    if arguments.client == "aiohttp" and importlib.util.find_spec("aiohttp") is None:
        print("slotlock loadtest: aiohttp is not installed; add it, or use --client raw",
              file=sys.stderr)  # fmt: skip
        return 2
    from service.loadtest.runner import run_command

    return run_command(options_from(arguments, secret_key))


def options_from(arguments: argparse.Namespace, secret_key: str) -> LoadOptions:
    """LoadOptions from parsed arguments."""
    return LoadOptions(
        url=arguments.url,
        secret_key=secret_key,
        public_key=arguments.public_key or os.environ.get(PUBLIC_KEY_VARIABLE) or None,
        scenario=arguments.scenario,
        users=arguments.users,
        duration_s=arguments.duration,
        slots=arguments.slots,
        capacity=arguments.capacity,
        think_ms=arguments.think_ms,
        book_ratio=arguments.book_ratio,
        cancel_ratio=arguments.cancel_ratio,
        lock_hold_s=arguments.lock_hold_s,
        seed=random.randrange(2**31) if arguments.seed is None else arguments.seed,
        client=arguments.client,
        json_path=arguments.json,
        progress=not arguments.no_progress,
    )


def at_least(low: float, kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: `kind`, refused below `low`."""

    def parse(text: str) -> Any:
        value = kind(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}")
        return value

    return parse


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must lie between 0 and 1")
    return value
