"""Slot endpoints, including the hot path: lock and unlock."""

from __future__ import annotations

import hashlib
import itertools
import re

from msgspec import UNSET, UnsetType
from starlette.requests import Request

from service import validation
from service.clock import Clock
from service.errors import ApiError, BadRequest, ResourceNotFound, SlotNotFound, Unprocessable
from service.event_log import EventLog
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
from service.responses import EnvelopeResponse, ok
from service.routes.common import Gate, Page, bool_param, path_id
from service.routing import Route
from service.store.resources import ResourceStore
from service.store.slots import SlotChanges, SlotDraft, SlotFilter, SlotStore
from service.validation import convert_body, decode_object


def lock_holder(lock_key: str) -> str:
    """What Redis stores instead of the lock_key, so the secret never leaves the service.

    The first 128 bits of its SHA-256: collision- and preimage-proof far beyond any
    lock's life, at half the bytes in every lock and hold key.
    """
    return hashlib.sha256(validation.lock_key(lock_key).encode()).hexdigest()[:32]


class SlotRoutes:
    """The slot endpoints, on the stores and limits they use."""

    def __init__(
        self,
        gate: Gate,
        slots: SlotStore,
        resources: ResourceStore,
        events: EventLog,
        clock: Clock,
        max_lock_s: int,
        max_lock_s_public: int,
    ) -> None:
        self.gate = gate
        self.slots = slots
        self.resources = resources
        self.events = events
        self.clock = clock
        self.max_lock_s = max_lock_s  # how far ahead a secret key may lock
        self.max_lock_s_public = max_lock_s_public  # and a public key

    def routes(self) -> list[Route]:
        """Every slot route."""
        return [
            Route("/slots/{slot_id}/lock", "POST", self.lock_slot),
            Route("/slots/{slot_id}/unlock", "POST", self.unlock_slot),
            Route("/slots", "POST", self.create_slots),
            Route("/slots", "GET", self.list_slots),
            Route("/slots/{slot_id}", "GET", self.get_slot),
            Route("/slots/{slot_id}", "PATCH", self.update_slot),
            Route("/slots/{slot_id}", "DELETE", self.delete_slot),
            Route("/slots/{slot_id}/enable", "POST", self.enable_slot),
            Route("/slots/{slot_id}/disable", "POST", self.disable_slot),
        ]

    async def create_slots(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request, secret=True)
        fields = decode_object(await self.gate.raw_body(request))
        is_bulk = "slots" in fields
        if is_bulk:
            bulk = convert_body(fields, SlotBulkCreate)
            resource_id, specs = bulk.resource_id, bulk.slots
        else:
            single = convert_body(fields, SlotCreate)
            resource_id, specs = single.resource_id, [single]
        drafts = _checked_drafts(specs)
        store = self.slots
        views = await store.create(who.environment, _body_id(resource_id), drafts)
        now_ms = store.now_ms()
        if is_bulk:
            return ok([view.to_payload(now_ms) for view in views])
        return ok(views[0].to_payload(now_ms))

    async def list_slots(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request)
        page = Page.of(request)
        query = request.query_params
        # "resoure_id": the JS SDK's spelling
        wanted_resource = query.get("resource_id") or query.get("resoure_id")
        where = SlotFilter(
            available=bool_param(request, "available"),
            starts_from_ms=_query_instant(request, "start_date"),
            ends_by_ms=_query_instant(request, "end_date"),
        )
        if wanted_resource is not None:
            resource_id = canonical_id(wanted_resource)
            resource_ids = [resource_id] if resource_id else []
        else:
            resource_ids = await self.resources.ids(who.environment)
        event_id: str | UnsetType = UNSET
        # Locks that ran out are settled first: the list then checks about the live ones only.
        await self.events.sweep(resource_ids)
        if wanted_resource is not None and resource_ids:
            # Read before the list: an event after it is then replayed, never missed
            # (a slot event carries the whole slot, so one seen twice does no harm).
            event_id = await self.events.last_id(resource_ids[0])
        now_ms = self.slots.now_ms()  # one instant for the filter and the views
        window = (page.offset, page.limit)
        views, total = await self.slots.page(who.environment, resource_ids, where, window, now_ms)
        meta = page.meta(total)
        meta.event_id = event_id
        return ok([view.to_payload(now_ms) for view in views], meta)

    async def get_slot(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request)
        store = self.slots
        view = await store.get(who.environment, _slot_id(request))
        return ok(view.to_payload(store.now_ms()))

    async def update_slot(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request, secret=True)
        slot_id = _slot_id(request)
        payload = await self.gate.body(request, SlotUpdate)
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
        store = self.slots
        view = await store.update(who.environment, slot_id, changes)
        return ok(view.to_payload(store.now_ms()))

    async def enable_slot(self, request: Request) -> EnvelopeResponse:
        return await self._set_status(request, "active")

    async def disable_slot(self, request: Request) -> EnvelopeResponse:
        return await self._set_status(request, "disabled")

    async def delete_slot(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request, secret=True)
        await self.slots.delete(who.environment, _slot_id(request))
        return ok(DELETED)

    async def lock_slot(self, request: Request) -> EnvelopeResponse:
        try:
            who = await self.gate.caller(request)
            slot_id = _slot_id(request)
            payload = await self.gate.body(request, LockRequest)
            holder = lock_holder(payload.lock_key)
            until_ms = validation.instant_ms(payload.lock_until, "lock_until")
            now_ms = self.clock()
            _check_hold(
                until_ms, now_ms, self.max_lock_s if who.is_secret else self.max_lock_s_public
            )
            locked = await self.slots.lock(
                who.environment, slot_id, holder, until_ms, _quantity(payload)
            )
        except ApiError as error:
            count_lock_outcome("lock", error.code)
            raise
        count_lock_outcome("lock", "ok")
        return ok(locked.view.to_payload(now_ms), LockMeta(locked.token))

    async def unlock_slot(self, request: Request) -> EnvelopeResponse:
        try:
            who = await self.gate.caller(request)
            slot_id = _slot_id(request)
            payload = await self.gate.body(request, UnlockRequest)
            store = self.slots
            view = await store.unlock(who.environment, slot_id, lock_holder(payload.lock_key))
        except ApiError as error:
            count_lock_outcome("unlock", error.code)
            raise
        count_lock_outcome("unlock", "ok")
        return ok(view.to_payload(store.now_ms()))

    async def _set_status(self, request: Request, status: str) -> EnvelopeResponse:
        who = await self.gate.caller(request, secret=True)
        store = self.slots
        view = await store.set_status(who.environment, _slot_id(request), status)
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
