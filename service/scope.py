"""What a request's ASGI scope tells, read straight from it: one header, the routed path."""

from __future__ import annotations

from starlette.types import Scope


def scope_header(scope: Scope, name: bytes) -> str | None:
    """One request header (`name` in lower case), without building Starlette's Headers."""
    # Typed, so that the compiled loop (service/native.py) walks a list of byte pairs
    # rather than any iterable of anything: a lock reads four headers this way.
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def route_path(scope: Scope) -> str:
    """The path the routes see: without the root path the app is mounted under, if any.

    As Starlette's router has it: a server that sets `root_path` (uvicorn --root-path)
    passes the full path, and only a path at or under the root path loses it.
    """
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    if path[len(root_path)] == "/":
        return path[len(root_path) :]
    return path
