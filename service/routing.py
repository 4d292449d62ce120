"""Routes, and the table that finds a request's: compiled once, a dict lookup per request.

A route is one method on one path template (`/slots/{slot_id}/lock`); the template
is what metrics and the access log name. The table groups the routes by template.
A template without parameters is found by its path in one dict; one with
parameters by its number of segments and its first and last segments, then
checked segment by segment: its fixed text, and a parameter is one non-empty
segment (as Starlette's `{name}` and `{name:str}`; no regular expression, which
cost a lock request more than the rest of finding its route). No two templates
match one path, so the order of the routes does not matter.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from starlette.requests import Request

from service.responses import Answer

Endpoint = Callable[[Request], Awaitable[Answer]]

_PARAMETER = re.compile(r"^\{([a-zA-Z_][a-zA-Z0-9_]*)(?::str)?\}$")


@dataclass(frozen=True, slots=True)
class Route:
    """`method` on paths matching `path` answered by `endpoint`."""

    path: str
    method: str
    endpoint: Endpoint

    def wrapped(self, wrap: Callable[[Endpoint], Endpoint]) -> Route:
        """The same route with its endpoint wrapped (e.g. by Idempotency-Key handling)."""
        return Route(self.path, self.method, wrap(self.endpoint))


@dataclass(slots=True)
class Template:
    """One path template and the endpoint of each method it takes (HEAD as GET)."""

    path: str
    fixed: tuple[tuple[int, str], ...]  # (segment index, its text)
    parameters: tuple[tuple[int, str], ...]  # (segment index, the parameter's name)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    @classmethod
    def of(cls, path: str) -> Template:
        """The template of `path`; a syntax the table cannot match is a ValueError."""
        if not path.startswith("/"):
            raise ValueError(f"{path}: a route's path starts with /")
        fixed, parameters = [], []
        for index, segment in enumerate(path.split("/")[1:]):
            parameter = _PARAMETER.match(segment)
            if parameter is not None:
                parameters.append((index, parameter.group(1)))
            elif "{" in segment or "}" in segment:
                raise ValueError(f"{path}: only {{name}} and {{name:str}} parameters are supported")
            else:
                fixed.append((index, segment))
        return cls(path, tuple(fixed), tuple(parameters))

    def parameters_of(self, segments: list[str]) -> dict[str, str] | None:
        """The parameters of a path of this many segments; None if it does not match."""
        for index, text in self.fixed:
            if segments[index] != text:
                return None
        found = {}
        for index, name in self.parameters:
            value = segments[index]
            if not value:
                return None
            found[name] = value
        return found


class RouteTable:
    """Finds the template of a path, with its parameters."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = list(routes)
        templates: dict[str, Template] = {}
        for route in routes:
            template = templates.get(route.path)
            if template is None:
                template = templates[route.path] = Template.of(route.path)
            if route.method in template.endpoints:
                raise ValueError(f"two routes for {route.method} {route.path}")
            template.endpoints[route.method] = route.endpoint
        self._static: dict[str, Template] = {}
        self._dynamic: dict[tuple[int, str, str | None], list[Template]] = {}
        for template in templates.values():
            if "GET" in template.endpoints:
                template.endpoints.setdefault("HEAD", template.endpoints["GET"])
            segments = template.path.split("/")[1:]
            if not any(_PARAMETER.match(segment) for segment in segments):
                self._static[template.path] = template
                continue
            if _PARAMETER.match(segments[0]):
                raise ValueError(f"{template.path}: the first segment must be fixed text")
            last = None if _PARAMETER.match(segments[-1]) else segments[-1]
            self._dynamic.setdefault((len(segments), segments[0], last), []).append(template)

    def find(self, path: str) -> tuple[Template, dict[str, str]] | None:
        """The template `path` matches and its parameters; None when none does."""
        template = self._static.get(path)
        if template is not None:
            return template, {}
        if path[:1] != "/":
            return None
        segments = path[1:].split("/")
        count, first = len(segments), segments[0]
        for last in (segments[-1], None):
            for template in self._dynamic.get((count, first, last), ()):
                found = template.parameters_of(segments)
                if found is not None:
                    return template, found
        return None
