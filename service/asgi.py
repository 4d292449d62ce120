"""The app as uvicorn's workers build it: from the environment, in each worker."""

from __future__ import annotations

from starlette.applications import Starlette

from service import http_protocol, logs
from service.app import create_app
from service.connect import redis_from_settings
from service.settings import Settings


def create_app_from_env() -> Starlette:
    """Read settings, configure logging, connect, and build the app (uvicorn factory)."""
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    http_protocol.limit_head_bytes(settings.max_header_bytes)
    return create_app(settings, redis_from_settings(settings), owns_redis=True)
