"""The garbage collector is tuned by the worker process, never by building an app."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

from starlette.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from service.store.client import RedisClient
from tests.redis_servers import free_port


def test_building_and_running_an_app_leaves_the_collector_alone(
    redis_client: RedisClient, settings: Settings
) -> None:
    """An app built and started in a process that builds many (these tests) freezes nothing."""
    before = (gc.get_freeze_count(), gc.get_threshold())
    with TestClient(create_app(settings, redis_client, owns_redis=True)) as client:
        assert client.get("/healthz").status_code == 200
    assert (gc.get_freeze_count(), gc.get_threshold()) == before


def test_a_worker_tunes_the_collector_once_its_app_is_built() -> None:
    """uvicorn's factory freezes what start-up built and collects young objects less often."""
    code = (
        "import gc; from service.asgi import GC_YOUNG_THRESHOLD, create_app_from_env; "
        "create_app_from_env(); "
        "print(gc.get_freeze_count() > 0, gc.get_threshold()[0] == GC_YOUNG_THRESHOLD)"
    )
    environment = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    finished = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert finished.stdout.split() == ["True", "True"]
