"""Operational endpoints, without a key: health, readiness, metrics, OpenAPI."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from service.errors import StoreUnavailable
from service.openapi import OPERATIONS, build_document
from service.outage import OUTAGE_ERRORS
from service.readiness import Readiness
from service.responses import EnvelopeResponse, ok
from service.routing import Route

_openapi_document = build_document(OPERATIONS)


async def healthz(request: Request) -> EnvelopeResponse:
    """The process answers; never touches Redis, so a Redis outage restarts no pod."""
    return ok({"status": "ok"})


class Readyz:
    """GET /readyz on the pod's readiness check."""

    def __init__(self, readiness: Readiness, retry_after_s: int) -> None:
        self.readiness = readiness
        self.retry_after_s = retry_after_s

    async def __call__(self, request: Request) -> EnvelopeResponse:
        """Redis can serve (service/readiness.py); reloads the scripts if it lost them."""
        try:
            problems = await self.readiness.problems()
        except OUTAGE_ERRORS as error:
            raise StoreUnavailable(
                "Redis is unreachable", retry_after_s=self.retry_after_s
            ) from error
        if problems:
            # The problems are in the service log; this endpoint needs no key, so it names none.
            raise StoreUnavailable(
                "Redis cannot serve; see the service log", retry_after_s=self.retry_after_s
            )
        return ok({"status": "ready"})


async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> EnvelopeResponse:
    """The OpenAPI document, generated from the payload types."""
    return EnvelopeResponse(_openapi_document)


def ops_routes(readiness: Readiness, retry_after_s: int) -> list[Route]:
    """Health, readiness, metrics and the OpenAPI document: none needs a key."""
    return [
        Route("/healthz", "GET", healthz),
        Route("/readyz", "GET", Readyz(readiness, retry_after_s)),
        Route("/metrics", "GET", metrics),
        Route("/openapi.json", "GET", openapi),
    ]
