"""Operational endpoints, without a key: health, readiness, metrics, OpenAPI."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.errors import StoreUnavailable
from service.openapi import OPERATIONS, build_document
from service.outage import OUTAGE_ERRORS
from service.responses import EnvelopeResponse, ok
from service.routes.common import services

_openapi_document = build_document(OPERATIONS)


async def healthz(request: Request) -> Response:
    """The process answers; never touches Redis, so a Redis outage restarts no pod."""
    return ok({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Redis can serve (service/readiness.py); reloads the scripts if it lost them."""
    found = services(request)
    retry_after_s = found.settings.retry_after_s
    try:
        problems = await found.readiness.problems()
    except OUTAGE_ERRORS as error:
        raise StoreUnavailable("Redis is unreachable", retry_after_s=retry_after_s) from error
    if problems:
        # The problems are in the service log; this endpoint needs no key, so it names none.
        raise StoreUnavailable(
            "Redis cannot serve; see the service log", retry_after_s=retry_after_s
        )
    return ok({"status": "ready"})


async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    """The OpenAPI document, generated from the payload types."""
    return EnvelopeResponse(_openapi_document)


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
