"""One frozen Settings object, read once from SLOTLOCK_* variables and REDIS_URL.

A bad value stops start-up with a SettingsError that names the variable, so a
typo in a manifest never turns into a silently different service.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_RATE_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour)\s*$")
_PERIOD_S = {"second": 1, "minute": 60, "hour": 3600}
# What a browser sends as Origin: scheme://host[:port], lower case, nothing after it.
_ORIGIN_PATTERN = re.compile(r"^https?://([a-z0-9.\-]+|\[[0-9a-f:.]+\])(:\d{1,5})?$")


class SettingsError(ValueError):
    """A configuration variable holds a value the service cannot use."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `amount` requests per `period_s` seconds."""

    amount: int
    period_s: int

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Read `N/second`, `N/minute` or `N/hour`."""
        match = _RATE_PATTERN.match(text)
        if match is None or int(match.group(1)) < 1:
            raise ValueError("expected N/second, N/minute or N/hour with N >= 1")
        return cls(int(match.group(1)), _PERIOD_S[match.group(2)])

    def __str__(self) -> str:
        unit = {v: k for k, v in _PERIOD_S.items()}[self.period_s]
        return f"{self.amount}/{unit}"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service can be told from its environment."""

    redis_url: str | None = None
    redis_timeout_s: float = 1.0
    retry_after_s: int = 1
    max_lock_s: int = 3600
    max_lock_s_public: int = 900
    max_locks_per_key: int = 5
    rate_limit_public: RateLimit = RateLimit(1000, 1)
    rate_limit_secret: RateLimit = RateLimit(10000, 1)
    max_body_bytes: int = 65536
    max_header_bytes: int = 16384
    key_cache_s: float = 2.0
    data_dir: Path = Path(".slotlock")
    keys_file: Path | None = None
    log_level: str = "INFO"
    replica_acks: int = 0
    cors_origins: tuple[str, ...] = ("*",)
    demo: bool = False  # serve the reference booking page at /demo/

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from `environ` (default: the process environment)."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        return cls(
            redis_url=env.get("REDIS_URL") or None,
            redis_timeout_s=reader.read("SLOTLOCK_REDIS_TIMEOUT_S", _positive(float), 1.0),
            retry_after_s=reader.read("SLOTLOCK_RETRY_AFTER_S", _positive(int), 1),
            max_lock_s=reader.read("SLOTLOCK_MAX_LOCK_S", _positive(int), 3600),
            max_lock_s_public=reader.read("SLOTLOCK_MAX_LOCK_S_PUBLIC", _positive(int), 900),
            max_locks_per_key=reader.read("SLOTLOCK_MAX_LOCKS_PER_KEY", _positive(int), 5),
            rate_limit_public=reader.read(
                "SLOTLOCK_RATE_LIMIT_PUBLIC", RateLimit.parse, RateLimit(1000, 1)
            ),
            rate_limit_secret=reader.read(
                "SLOTLOCK_RATE_LIMIT_SECRET", RateLimit.parse, RateLimit(10000, 1)
            ),
            max_body_bytes=reader.read("SLOTLOCK_MAX_BODY_BYTES", _positive(int), 65536),
            max_header_bytes=reader.read("SLOTLOCK_MAX_HEADER_BYTES", _positive(int), 16384),
            key_cache_s=reader.read("SLOTLOCK_KEY_CACHE_S", _bounded_float(0.0, 5.0), 2.0),
            data_dir=reader.read("SLOTLOCK_DATA_DIR", Path, Path(".slotlock")),
            keys_file=reader.read("SLOTLOCK_KEYS_FILE", Path, None),
            log_level=reader.read("SLOTLOCK_LOG_LEVEL", _log_level, "INFO"),
            replica_acks=reader.read("SLOTLOCK_REPLICA_ACKS", _at_least_zero, 0),
            cors_origins=reader.read("SLOTLOCK_CORS_ORIGINS", _cors_origins, ("*",)),
            demo=reader.read("SLOTLOCK_DEMO", _switch, False),
        )


def _switch(text: str) -> bool:
    if text not in {"0", "1"}:
        raise ValueError("expected 1 (on) or 0 (off)")
    return text == "1"


class _Reader:
    """Parses one variable at a time and names it in any error."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def read(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self._environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            return parse(raw)
        except ValueError as error:
            raise SettingsError(f"{name}={raw!r} is invalid: {error}") from None


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(raw: str) -> T:
        value = kind(raw)
        if not value > 0:  # type: ignore[operator]
            raise ValueError("must be greater than 0")
        return value

    return parse


def _at_least_zero(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _bounded_float(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not low <= value <= high:
            raise ValueError(f"must lie between {low} and {high}")
        return value

    return parse


def _cors_origins(raw: str) -> tuple[str, ...]:
    """`*`, or origins as browsers send them, comma-separated: `https://shop.example,...`."""
    origins = tuple(part.strip() for part in raw.split(","))
    if origins == ("*",):
        return origins
    for origin in origins:
        if origin == "*":
            raise ValueError("`*` allows every origin and cannot be listed with others")
        if not _ORIGIN_PATTERN.match(origin):
            raise ValueError(
                f"{origin!r} is not an origin: expected http(s)://host[:port] in lower case,"
                " with no path or trailing slash, separated by commas"
            )
    return origins


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
    return level
