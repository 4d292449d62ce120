"""What every route does first: its caller, its ids, its body, its query parameters."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from service.auth import Authenticator, Caller
from service.errors import ApiError, BadRequest, BodyTooLarge
from service.ids import canonical_id
from service.payloads import ListMeta
from service.ratelimit import RateLimiter
from service.scope import scope_header
from service.validation import RequestT, decode_body

MAX_PAGE_LIMIT = 50


class Gate:
    """Who may call (the key, its scope, its rate limit), and what a body may be (its size)."""

    def __init__(
        self, authenticator: Authenticator, rate_limiter: RateLimiter, max_body_bytes: int
    ) -> None:
        self.authenticator = authenticator
        self.rate_limiter = rate_limiter
        self.max_body_bytes = max_body_bytes

    async def caller(self, request: Request, *, secret: bool = False) -> Caller:
        """The authenticated caller; `secret=True` refuses public keys (E015)."""
        who = await self.authenticator.authenticate(header(request, b"authorization"))
        self.rate_limiter.admit(who)
        if secret:
            who.require_secret()
        return who

    async def body(self, request: Request, request_type: type[RequestT]) -> RequestT:
        """The JSON body decoded into `request_type`, within the size limit (E102)."""
        return decode_body(await read_body(request, self.max_body_bytes), request_type)

    async def optional_body(self, request: Request, request_type: type[RequestT]) -> RequestT:
        """Like `body`, but an empty body means every field at its default."""
        raw = await read_body(request, self.max_body_bytes)
        return decode_body(raw, request_type) if raw.strip() else request_type()

    async def raw_body(self, request: Request) -> bytes:
        """The body as sent, within the size limit (E102)."""
        return await read_body(request, self.max_body_bytes)


def path_id(request: Request, name: str, not_found: type[ApiError], kind: str) -> str:
    """A path id in canonical form; a malformed one is that kind's 404."""
    found = canonical_id(request.path_params[name])
    if found is None:
        raise not_found(f"{kind} not found")
    return found


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 E102 as soon as it passes `limit` bytes."""
    declared = header(request, b"content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the body is larger than {limit} bytes")
    # Straight from ASGI receive: Request.stream()'s async generator cost more than
    # the rest of reading a small body.
    chunks, size = [], 0
    while True:
        message = await request.receive()
        if message["type"] != "http.request":
            # The client went away before the body's end. Nothing may act on the part
            # that came: an Idempotency-Key would be claimed for it, and the client's
            # whole retry refused (E101) until that claim was let go.
            raise BadRequest("the request body was cut off before its end")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def header(request: Request, name: bytes) -> str | None:
    """One request header (`name` in lower case), without building starlette's Headers."""
    return scope_header(request.scope, name)


@dataclass(frozen=True, slots=True)
class Page:
    """`limit` and `page` of a list request."""

    limit: int
    page: int

    @classmethod
    def of(cls, request: Request) -> Page:
        """Read and check them (400 E013 naming the parameter)."""
        return cls(
            _int_param(request, "limit", 20, 1, MAX_PAGE_LIMIT),
            _int_param(request, "page", 1, 1, 1_000_000),
        )

    @property
    def offset(self) -> int:
        """How many items come before this page."""
        return (self.page - 1) * self.limit

    def meta(self, total: int) -> ListMeta:
        """The list meta of this page of a list of `total` items."""
        return ListMeta(self.limit, self.page, total)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise BadRequest(f"`{name}` must be an integer from {low} to {high}")
    return int(raw)


def bool_param(request: Request, name: str) -> bool | None:
    """An optional true/false query parameter."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw.lower() not in {"true", "false"}:
        raise BadRequest(f"`{name}` must be true or false")
    return raw.lower() == "true"
