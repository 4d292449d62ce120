"""Booking endpoints: the reason locks exist."""

from __future__ import annotations

from starlette.requests import Request

from service import validation
from service.errors import BadRequest, BookingNotFound, SlotNotFound
from service.ids import canonical_id
from service.payloads import (
    DELETED,
    BookingCreate,
    BookingReschedule,
    BookingStatusChange,
    BookingUpdate,
)
from service.responses import EnvelopeResponse, ok
from service.routes.common import Gate, Page, path_id
from service.routes.slots import lock_holder
from service.routing import Route
from service.store.bookings import BookingFilter, BookingStore
from service.store.reschedule import Rescheduler
from service.store.resources import ResourceStore
from service.views import booking_payload

_STATUSES = {"active", "cancelled"}


class BookingRoutes:
    """The booking endpoints, on the stores they use."""

    def __init__(
        self,
        gate: Gate,
        bookings: BookingStore,
        resources: ResourceStore,
        rescheduler: Rescheduler,
    ) -> None:
        self.gate = gate
        self.bookings = bookings
        self.resources = resources
        self.rescheduler = rescheduler

    def routes(self) -> list[Route]:
        """Every booking route."""
        return [
            Route("/bookings", "POST", self.create_booking),
            Route("/bookings", "GET", self.list_bookings),
            Route("/bookings/{booking_id}", "GET", self.get_booking),
            Route("/bookings/{booking_id}", "PATCH", self.update_booking),
            Route("/bookings/{booking_id}", "DELETE", self.delete_booking),
            Route("/bookings/{booking_id}/cancel", "POST", self.cancel_booking),
            Route("/bookings/{booking_id}/enable", "POST", self.enable_booking),
            Route("/bookings/{booking_id}/reschedule", "POST", self.reschedule_booking),
        ]

    async def create_booking(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request)
        payload = await self.gate.body(request, BookingCreate)
        slot_id = canonical_id(payload.slot_id)
        if slot_id is None:
            raise SlotNotFound("slot not found")
        record = await self.bookings.create(
            who.environment,
            slot_id,
            _holder(payload.lock_key),
            validation.metadata_json(payload.metadata),
            getattr(request.state, "idempotency_hash", None),
        )
        return ok(booking_payload(record))

    async def list_bookings(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request)
        page = Page.of(request)
        query = request.query_params
        status = query.get("status")
        if status is not None and status not in _STATUSES:
            raise BadRequest("`status` must be active or cancelled")
        where = BookingFilter(
            status=status,
            slot_id=_query_id(query.get("slot_id")),
            resource_id=_query_id(query.get("resource_id")),
        )
        if where.resource_id is not None:
            resource_ids = [where.resource_id]
        else:
            resource_ids = await self.resources.ids(who.environment)
        records, total = await self.bookings.page(
            who.environment, resource_ids, where, page.offset, page.limit
        )
        return ok([booking_payload(record) for record in records], page.meta(total))

    async def get_booking(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request)
        record = await self.bookings.get(who.environment, _booking_id(request))
        return ok(booking_payload(record))

    async def update_booking(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request)
        booking_id = _booking_id(request)
        payload = await self.gate.optional_body(request, BookingUpdate)
        store = self.bookings
        if isinstance(payload.metadata, dict):
            metadata_json = validation.metadata_json(payload.metadata)
            record = await store.update_metadata(who.environment, booking_id, metadata_json)
        else:
            record = await store.get(who.environment, booking_id)  # nothing to change
        return ok(booking_payload(record))

    async def cancel_booking(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request)
        record = await self.bookings.set_status(who.environment, _booking_id(request), "cancelled")
        return ok(booking_payload(record))

    async def enable_booking(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request)
        booking_id = _booking_id(request)
        payload = await self.gate.optional_body(request, BookingStatusChange)
        record = await self.bookings.set_status(
            who.environment, booking_id, "active", _holder(payload.lock_key)
        )
        return ok(booking_payload(record))

    async def reschedule_booking(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request)
        booking_id = _booking_id(request)
        payload = await self.gate.body(request, BookingReschedule)
        target_slot_id = canonical_id(payload.target_slot_id)
        if target_slot_id is None:
            raise SlotNotFound("target slot not found")
        record = await self.rescheduler.reschedule(
            who.environment, booking_id, target_slot_id, _holder(payload.lock_key)
        )
        return ok(booking_payload(record))

    async def delete_booking(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request, secret=True)
        await self.bookings.delete(who.environment, _booking_id(request))
        return ok(DELETED)


def _holder(lock_key: str | None) -> str:
    return "" if lock_key is None else lock_holder(lock_key)


def _booking_id(request: Request) -> str:
    return path_id(request, "booking_id", BookingNotFound, "booking")


def _query_id(raw: str | None) -> str | None:
    if raw is None:
        return None
    # A malformed id matches nothing, like an unknown one: an empty list, not an error.
    return canonical_id(raw) or "00000000-0000-4000-8000-000000000000"
