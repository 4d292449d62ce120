"""Settings: production defaults, one SLOTLOCK_* variable each, loud named errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import RateLimit, Settings, SettingsError

# variable -> (a valid value, the attribute it sets, the value it gets)
VARIABLES: dict[str, tuple[str, str, object]] = {
    "REDIS_URL": ("redis://cache:6380/2", "redis_url", "redis://cache:6380/2"),
    "SLOTLOCK_REDIS_TIMEOUT_S": ("2.5", "redis_timeout_s", 2.5),
    "SLOTLOCK_RETRY_AFTER_S": ("3", "retry_after_s", 3),
    "SLOTLOCK_MAX_LOCK_S": ("600", "max_lock_s", 600),
    "SLOTLOCK_MAX_LOCK_S_PUBLIC": ("120", "max_lock_s_public", 120),
    "SLOTLOCK_MAX_LOCKS_PER_KEY": ("2", "max_locks_per_key", 2),
    "SLOTLOCK_RATE_LIMIT_PUBLIC": ("50/minute", "rate_limit_public", RateLimit(50, 60)),
    "SLOTLOCK_RATE_LIMIT_SECRET": ("7/hour", "rate_limit_secret", RateLimit(7, 3600)),
    "SLOTLOCK_MAX_BODY_BYTES": ("1024", "max_body_bytes", 1024),
    "SLOTLOCK_MAX_HEADER_BYTES": ("8192", "max_header_bytes", 8192),
    "SLOTLOCK_KEY_CACHE_S": ("0.5", "key_cache_s", 0.5),
    "SLOTLOCK_DATA_DIR": ("/var/lib/slotlock", "data_dir", Path("/var/lib/slotlock")),
    "SLOTLOCK_KEYS_FILE": ("/run/keys.json", "keys_file", Path("/run/keys.json")),
    "SLOTLOCK_LOG_LEVEL": ("debug", "log_level", "DEBUG"),
    "SLOTLOCK_REPLICA_ACKS": ("1", "replica_acks", 1),
    "SLOTLOCK_CORS_ORIGINS": (
        "https://shop.example, http://127.0.0.1:8080",
        "cors_origins",
        ("https://shop.example", "http://127.0.0.1:8080"),
    ),
    "SLOTLOCK_DEMO": ("1", "demo", True),
}

BAD_VALUES: list[tuple[str, str]] = [
    ("SLOTLOCK_REDIS_TIMEOUT_S", "fast"),
    ("SLOTLOCK_REDIS_TIMEOUT_S", "0"),
    ("SLOTLOCK_RETRY_AFTER_S", "1.5"),
    ("SLOTLOCK_MAX_LOCK_S", "-1"),
    ("SLOTLOCK_MAX_LOCK_S", "1h"),
    ("SLOTLOCK_MAX_LOCK_S_PUBLIC", "0"),
    ("SLOTLOCK_MAX_LOCKS_PER_KEY", "many"),
    ("SLOTLOCK_RATE_LIMIT_PUBLIC", "1000"),
    ("SLOTLOCK_RATE_LIMIT_PUBLIC", "0/second"),
    ("SLOTLOCK_RATE_LIMIT_SECRET", "10/day"),
    ("SLOTLOCK_MAX_BODY_BYTES", "64KiB"),
    ("SLOTLOCK_MAX_HEADER_BYTES", "0"),
    ("SLOTLOCK_KEY_CACHE_S", "6"),
    ("SLOTLOCK_KEY_CACHE_S", "-1"),
    ("SLOTLOCK_LOG_LEVEL", "LOUD"),
    ("SLOTLOCK_REPLICA_ACKS", "-1"),
    ("SLOTLOCK_REPLICA_ACKS", "all"),
    ("SLOTLOCK_CORS_ORIGINS", "shop.example"),  # no scheme
    ("SLOTLOCK_CORS_ORIGINS", "https://shop.example/"),  # a browser never sends the slash
    ("SLOTLOCK_CORS_ORIGINS", "https://Shop.example"),  # nor upper case
    ("SLOTLOCK_CORS_ORIGINS", "https://shop.example/checkout"),
    ("SLOTLOCK_CORS_ORIGINS", "https://a.example,,https://b.example"),
    ("SLOTLOCK_CORS_ORIGINS", "https://a.example;https://b.example"),
    ("SLOTLOCK_CORS_ORIGINS", "*,https://a.example"),
    ("SLOTLOCK_DEMO", "yes"),
]


def vars_of(settings: Settings) -> dict[str, object]:
    """Every setting by name."""
    return {name: getattr(settings, name) for name in Settings.__slots__}


def test_every_setting_has_a_variable_here() -> None:
    """Each field of Settings is covered by VARIABLES, so a new one cannot go untested."""
    assert {attribute for _, attribute, _ in VARIABLES.values()} == set(Settings.__slots__)


def test_defaults_are_the_documented_production_values() -> None:
    """With no variables set, every limit has API.md's default."""
    settings = Settings.from_env({})
    assert settings.redis_url is None
    assert (settings.max_lock_s, settings.max_lock_s_public) == (3600, 900)
    assert settings.max_locks_per_key == 5
    assert settings.rate_limit_public == RateLimit(1000, 1)
    assert settings.rate_limit_secret == RateLimit(10000, 1)
    assert settings.max_body_bytes == 65536
    assert settings.max_header_bytes == 16384
    assert settings.log_level == "INFO"
    assert settings.keys_file is None
    assert settings.cors_origins == ("*",)


def test_from_env_with_nothing_equals_the_class_defaults() -> None:
    """Reading an empty environment gives exactly `Settings()`."""
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize("name", VARIABLES)
def test_each_variable_is_read(name: str) -> None:
    """Each variable sets its own setting and no other."""
    raw, attribute, expected = VARIABLES[name]
    settings = Settings.from_env({name: raw})
    assert getattr(settings, attribute) == expected
    others = {key: value for key, value in vars_of(settings).items() if key != attribute}
    assert others == {key: value for key, value in vars_of(Settings()).items() if key != attribute}


@pytest.mark.parametrize("name", VARIABLES)
def test_an_empty_variable_means_the_default(name: str) -> None:
    """A variable set to the empty string is treated as unset."""
    assert Settings.from_env({name: ""}) == Settings()


@pytest.mark.parametrize(("name", "raw"), BAD_VALUES)
def test_a_bad_value_raises_naming_the_variable(name: str, raw: str) -> None:
    """An unusable value raises SettingsError whose message names the variable."""
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: raw})


def test_the_process_environment_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit mapping, os.environ is read."""
    monkeypatch.setenv("SLOTLOCK_MAX_LOCK_S", "42")
    assert Settings.from_env().max_lock_s == 42


def test_rate_limit_reads_back_as_written() -> None:
    """A rate limit prints as the text it was read from."""
    assert str(RateLimit.parse("50 / minute")) == "50/minute"
