"""Whether the request under way reached its operation, for Idempotency-Key.

Only an answer from a request that reached its operation is kept under its key
(API.md). A request refused before that (a malformed or cut-off body, a
validation error, authentication, rate limit, an outage) keeps nothing, so the
client's proper retry with the same key runs whole. A request's operation is its
script call: the Idempotency middleware opens a mark for its request, and the
script batcher sets it as a call leaves for Redis. A context variable carries
the mark, because the route and the store between them know nothing of it.
"""

from __future__ import annotations

from contextvars import ContextVar, Token


class OperationMark:
    """Set once the request called a script; read when its answer is done."""

    __slots__ = ("reached",)

    def __init__(self) -> None:
        self.reached = False


_current: ContextVar[OperationMark | None] = ContextVar("slotlock_operation", default=None)


def watch() -> tuple[OperationMark, Token[OperationMark | None]]:
    """A new mark for the request this task runs; pass the token to `unwatch` when done."""
    mark = OperationMark()
    return mark, _current.set(mark)


def unwatch(token: Token[OperationMark | None]) -> None:
    """Stop marking for this task's request."""
    _current.reset(token)


def reached() -> None:
    """The request is running its operation now (no-op outside a watched request)."""
    mark = _current.get()
    if mark is not None:
        mark.reached = True
