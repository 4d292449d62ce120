"""Slot endpoints, including the hot path: lock and unlock."""

from __future__ import annotations

import hashlib
import itertools
import re

from msgspec import UNSET, UnsetType
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service import validation
from service.errors import ApiError, BadRequest, ResourceNotFound, SlotNotFound, Unprocessable
from service.ids import canonical_id
from service.metrics import count_lock_outcome
from service.payloads import (
    DELETED,
    LockMeta,
    LockRequest,
    SlotBulkCreate,
    SlotCreate,
    SlotSpec,
    SlotUpdate,
    UnlockRequest,
)
from service.responses import ok
from service.routes.common import Page, body, bool_param, caller, path_id, read_body, services
from service.store.slots import SlotChanges, SlotDraft, SlotFilter
from service.validation import convert_body, decode_object


def lock_holder(lock_key: str) -> str:
    """What Redis stores instead of the lock_key, so the secret never leaves the service.

    The first 128 bits of its SHA-256: collision- and preimage-proof far beyond any
    lock's life, at half the bytes in every lock and hold key.
    """
    return hashlib.sha256(validation.lock_key(lock_key).encode()).hexdigest()[:32]


async def create_slots(request: Request) -> Response:
    who = await caller(request, secret=True)
    fields = decode_object(await read_body(request))
    is_bulk = "slots" in fields
    if is_bulk:
        bulk = convert_body(fields, SlotBulkCreate)
        resource_id, specs = bulk.resource_id, bulk.slots
    else:
        single = convert_body(fields, SlotCreate)
        resource_id, specs = single.resource_id, [single]
    drafts = _checked_drafts(specs)
    store = services(request).slots
    views = await store.create(who.environment, _body_id(resource_id), drafts)
    now_ms = store.now_ms()
    if is_bulk:
        return ok([view.to_payload(now_ms) for view in views])
    return ok(views[0].to_payload(now_ms))


async def list_slots(request: Request) -> Response:
    who = await caller(request)
    page = Page.of(request)
    query = request.query_params
    wanted_resource = query.get("resource_id") or query.get("resoure_id")  # the JS SDK's spelling
    where = SlotFilter(
        available=bool_param(request, "available"),
        starts_from_ms=_query_instant(request, "start_date"),
        ends_by_ms=_query_instant(request, "end_date"),
    )
    found = services(request)
    if wanted_resource is not None:
        resource_id = canonical_id(wanted_resource)
        resource_ids = [resource_id] if resource_id else []
    else:
        resource_ids = await found.resources.ids(who.environment)
    event_id: str | UnsetType = UNSET
    # Locks that ran out are settled first: the list then checks about the live ones only.
    await found.events.sweep_before_read(resource_ids)
    if wanted_resource is not None and resource_ids:
        # Read before the list: an event after it is then replayed, never missed
        # (a slot event carries the whole slot, so one seen twice does no harm).
        event_id = await found.events.last_id(resource_ids[0])
    now_ms = found.slots.now_ms()  # one instant for the filter and the views
    window = (page.offset, page.limit)
    views, total = await found.slots.page(who.environment, resource_ids, where, window, now_ms)
    meta = page.meta(total)
    meta.event_id = event_id
    return ok([view.to_payload(now_ms) for view in views], meta)


async def get_slot(request: Request) -> Response:
    who = await caller(request)
    store = services(request).slots
    view = await store.get(who.environment, _slot_id(request))
    return ok(view.to_payload(store.now_ms()))


async def update_slot(request: Request) -> Response:
    who = await caller(request, secret=True)
    slot_id = _slot_id(request)
    payload = await body(request, SlotUpdate)
    changes = SlotChanges(
        start_ms=_maybe_slot_date(payload.start_date, "start_date"),
        end_ms=_maybe_slot_date(payload.end_date, "end_date"),
        capacity=None if payload.capacity is UNSET else validation.capacity(payload.capacity),
        lockable=payload.lockable if isinstance(payload.lockable, bool) else None,
        metadata_json=(
            validation.metadata_json(payload.metadata)
            if isinstance(payload.metadata, dict)
            else None
        ),
    )
    store = services(request).slots
    view = await store.update(who.environment, slot_id, changes)
    return ok(view.to_payload(store.now_ms()))


async def enable_slot(request: Request) -> Response:
    return await _set_status(request, "active")


async def disable_slot(request: Request) -> Response:
    return await _set_status(request, "disabled")


async def delete_slot(request: Request) -> Response:
    who = await caller(request, secret=True)
    await services(request).slots.delete(who.environment, _slot_id(request))
    return ok(DELETED)


async def lock_slot(request: Request) -> Response:
    try:
        who = await caller(request)
        slot_id = _slot_id(request)
        payload = await body(request, LockRequest)
        holder = lock_holder(payload.lock_key)
        found = services(request)
        until_ms = validation.instant_ms(payload.lock_until, "lock_until")
        now_ms = found.clock()
        settings = found.settings
        _check_hold(
            until_ms, now_ms, settings.max_lock_s if who.is_secret else settings.max_lock_s_public
        )
        view, token = await found.slots.lock(
            who.environment, slot_id, holder, until_ms, _quantity(payload)
        )
    except ApiError as error:
        count_lock_outcome("lock", error.code)
        raise
    count_lock_outcome("lock", "ok")
    return ok(view.to_payload(now_ms), LockMeta(token))


async def unlock_slot(request: Request) -> Response:
    try:
        who = await caller(request)
        slot_id = _slot_id(request)
        payload = await body(request, UnlockRequest)
        store = services(request).slots
        view = await store.unlock(who.environment, slot_id, lock_holder(payload.lock_key))
    except ApiError as error:
        count_lock_outcome("unlock", error.code)
        raise
    count_lock_outcome("unlock", "ok")
    return ok(view.to_payload(store.now_ms()))


def _quantity(payload: LockRequest) -> int:
    """Places to hold, or 0 for a whole-slot lock (no `quantity` sent)."""
    return 0 if isinstance(payload.quantity, UnsetType) else payload.quantity


def _check_hold(until_ms: int, now_ms: int, max_hold_s: int) -> None:
    if until_ms <= now_ms:
        raise Unprocessable("E100", "`lock_until` must lie in the future")
    if until_ms > now_ms + max_hold_s * 1000:
        raise Unprocessable("E100", f"`lock_until` may lie at most {max_hold_s} seconds ahead")


def _checked_drafts(specs: list[SlotSpec]) -> list[SlotDraft]:
    drafts = [
        SlotDraft(
            start_ms=validation.slot_date_ms(spec.start_date, "start_date"),
            end_ms=validation.slot_date_ms(spec.end_date, "end_date"),
            capacity=validation.capacity(spec.capacity),
            lockable=spec.lockable,
            metadata_json=validation.metadata_json(spec.metadata),
        )
        for spec in specs
    ]
    ordered = sorted(drafts, key=lambda draft: draft.start_ms)
    for draft in ordered:
        if draft.start_ms >= draft.end_ms:
            raise Unprocessable("E023", "`start_date` must be before `end_date`")
    for earlier, later in itertools.pairwise(ordered):
        if later.start_ms < earlier.end_ms:
            raise Unprocessable("E024", "two of the new slots overlap each other")
    return drafts


async def _set_status(request: Request, status: str) -> Response:
    who = await caller(request, secret=True)
    store = services(request).slots
    view = await store.set_status(who.environment, _slot_id(request), status)
    return ok(view.to_payload(store.now_ms()))


def _slot_id(request: Request) -> str:
    return path_id(request, "slot_id", SlotNotFound, "slot")


def _body_id(resource_id: str) -> str:
    found = canonical_id(resource_id)
    if found is None:
        raise ResourceNotFound("resource not found")
    return found


def _maybe_slot_date(value: str | object, field_name: str) -> int | None:
    return validation.slot_date_ms(value, field_name) if isinstance(value, str) else None


def _query_instant(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    # A `+hh:mm` offset sent unencoded in a query string arrives as a space.
    raw = _UNENCODED_PLUS.sub(r"\1+\2", raw)
    try:
        return validation.instant_ms(raw, name)
    except BadRequest:
        raise BadRequest(f"`{name}` must be an ISO 8601 timestamp") from None


_UNENCODED_PLUS = re.compile(r"([T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)$")

# Served by service.hot_routes ahead of the router, and by the router too (for requests
# with an Idempotency-Key).
HOT_ROUTES = [
    Route("/slots/{slot_id}/lock", lock_slot, methods=["POST"]),
    Route("/slots/{slot_id}/unlock", unlock_slot, methods=["POST"]),
]

ROUTES = [
    *HOT_ROUTES,
    Route("/slots", create_slots, methods=["POST"]),
    Route("/slots", list_slots, methods=["GET"]),
    Route("/slots/{slot_id}", get_slot, methods=["GET"]),
    Route("/slots/{slot_id}", update_slot, methods=["PATCH"]),
    Route("/slots/{slot_id}", delete_slot, methods=["DELETE"]),
    Route("/slots/{slot_id}/enable", enable_slot, methods=["POST"]),
    Route("/slots/{slot_id}/disable", disable_slot, methods=["POST"]),
]
