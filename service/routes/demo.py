"""The reference booking page (SLOTLOCK_DEMO=1): static files from service/demo/, no build step."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from service.errors import RouteNotFound
from service.routing import Route

_FILES = Path(__file__).parent.parent / "demo"
_TYPES = {"index.html": "text/html; charset=utf-8", "demo.js": "text/javascript; charset=utf-8"}
# The page loads nothing but itself and talks only to this service.
_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'"
)


async def demo_file(request: Request) -> Response:
    name = request.path_params.get("name", "index.html")
    if name not in _TYPES:
        raise RouteNotFound("no such route")
    body = (_FILES / name).read_bytes()
    return Response(body, media_type=_TYPES[name], headers={"content-security-policy": _POLICY})


async def demo_root(request: Request) -> Response:
    return RedirectResponse("/demo/")


ROUTES = [
    Route("/demo", "GET", demo_root),
    Route("/demo/", "GET", demo_file),
    Route("/demo/{name:str}", "GET", demo_file),
]
