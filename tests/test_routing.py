"""The route table: which template a path matches, and which tables it refuses to build."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.responses import Response

from service.routing import Route, RouteTable


async def _endpoint(request: Request) -> Response:
    return Response()


TEMPLATES = [
    "/slots",
    "/slots/{slot_id}",
    "/slots/{slot_id}/lock",
    "/slots/{slot_id}/unlock",
    "/demo/",
    "/demo/{name:str}",
    "/resources/{resource_id}/events",
]
TABLE = RouteTable([Route(path, "GET", _endpoint) for path in TEMPLATES])


@pytest.mark.parametrize(
    ("path", "template", "params"),
    [
        ("/slots", "/slots", {}),
        ("/slots/abc", "/slots/{slot_id}", {"slot_id": "abc"}),
        ("/slots/abc/lock", "/slots/{slot_id}/lock", {"slot_id": "abc"}),
        ("/slots/lock/unlock", "/slots/{slot_id}/unlock", {"slot_id": "lock"}),
        ("/slots/unlock", "/slots/{slot_id}", {"slot_id": "unlock"}),
        ("/demo/", "/demo/", {}),
        ("/demo/demo.js", "/demo/{name:str}", {"name": "demo.js"}),
        ("/resources/r-1/events", "/resources/{resource_id}/events", {"resource_id": "r-1"}),
    ],
)
def test_a_path_finds_its_template_and_parameters(
    path: str, template: str, params: dict[str, str]
) -> None:
    """Fixed text matches itself; a parameter any one non-empty segment."""
    found = TABLE.find(path)
    assert found is not None
    assert (found[0].path, found[1]) == (template, params)


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/",
        "/slots/",
        "/slots//lock",
        "/slots/a/b/lock",
        "/slots/abc/lock/",
        "/slots/abc/lock\n",
        "/demo",
        "/resources/r-1/other",
        "slots",
    ],
)
def test_a_path_no_template_matches_finds_none(path: str) -> None:
    """Extra, missing or empty segments, a trailing slash or newline: no route."""
    assert TABLE.find(path) is None


def test_a_get_route_answers_head_too() -> None:
    """HEAD takes the GET endpoint, as Starlette's routes did."""
    found = TABLE.find("/slots")
    assert found is not None
    assert found[0].endpoints["HEAD"] is found[0].endpoints["GET"]


@pytest.mark.parametrize(
    ("routes", "reason"),
    [
        ([Route("/slots", "GET", _endpoint), Route("/slots", "GET", _endpoint)], "two routes"),
        ([Route("/slots/{slot_id:int}", "GET", _endpoint)], "only {name}"),
        ([Route("/{kind}/slots", "GET", _endpoint)], "first segment"),
        ([Route("slots", "GET", _endpoint)], "starts with /"),
    ],
)
def test_a_table_it_cannot_serve_is_refused_at_build(routes: list[Route], reason: str) -> None:
    """Two endpoints for one method and path, other converters, a leading parameter: refused."""
    with pytest.raises(ValueError, match=reason):
        RouteTable(routes)
