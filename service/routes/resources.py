"""Resource endpoints: create, list, get, update, publish, convert-draft, delete."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from service import validation
from service.errors import BadRequest, ResourceNotFound
from service.payloads import DELETED, ResourceCreate, ResourceUpdate
from service.records import ResourceRecord
from service.responses import EnvelopeResponse, ok
from service.routes.common import Gate, Page, path_id
from service.routing import Route
from service.store.resources import ResourceDraft, ResourceStore
from service.store.slots import SlotStore
from service.views import resource_payload


class ResourceRoutes:
    """The resource endpoints, on the stores they use."""

    def __init__(self, gate: Gate, resources: ResourceStore, slots: SlotStore) -> None:
        self.gate = gate
        self.resources = resources
        self.slots = slots  # to count a resource's available slots

    def routes(self) -> list[Route]:
        """Every resource route."""
        return [
            Route("/resources", "POST", self.create_resource),
            Route("/resources", "GET", self.list_resources),
            Route("/resources/{resource_id}", "GET", self.get_resource),
            Route("/resources/{resource_id}", "PATCH", self.update_resource),
            Route("/resources/{resource_id}", "DELETE", self.delete_resource),
            Route("/resources/{resource_id}/publish", "POST", self.publish_resource),
            Route("/resources/{resource_id}/convert-draft", "POST", self.convert_resource_to_draft),
        ]

    async def create_resource(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request, secret=True)
        payload = await self.gate.body(request, ResourceCreate)
        draft = ResourceDraft(
            name=payload.name,
            timezone=validation.timezone(payload.timezone),
            booking_disabled_before=validation.booking_disabled_before(
                payload.booking_disabled_before
            ),
            public_scheduling_enabled=payload.public_scheduling_enabled,
            metadata_json=validation.metadata_json(payload.metadata),
        )
        record = await self.resources.create(who.environment, draft)
        return ok(resource_payload(record, 0))

    async def list_resources(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request)
        page = Page.of(request)
        name, status = request.query_params.get("name"), request.query_params.get("status")
        if status is not None and status not in {"draft", "published"}:
            raise BadRequest("`status` must be draft or published")
        records, total = await self.resources.page(
            who.environment, name, status, page.offset, page.limit
        )
        # One count script per resource, sent together (the batcher pipelines them).
        payloads = await asyncio.gather(*(self._payload(record) for record in records))
        return ok(list(payloads), page.meta(total))

    async def get_resource(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request)
        record = await self.resources.get(who.environment, _resource_id(request))
        return ok(await self._payload(record))

    async def update_resource(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request, secret=True)
        resource_id = _resource_id(request)
        payload = await self.gate.body(request, ResourceUpdate)
        fields: dict[str, str | int] = {}
        if isinstance(payload.name, str):
            fields["name"] = payload.name
        if isinstance(payload.timezone, str):
            fields["timezone"] = validation.timezone(payload.timezone)
        if isinstance(payload.booking_disabled_before, int):
            fields["booking_disabled_before"] = validation.booking_disabled_before(
                payload.booking_disabled_before
            )
        if isinstance(payload.public_scheduling_enabled, bool):
            fields["public_scheduling_enabled"] = int(payload.public_scheduling_enabled)
        if isinstance(payload.metadata, dict):
            fields["metadata"] = validation.metadata_json(payload.metadata)
        record = await self.resources.update(who.environment, resource_id, fields)
        return ok(await self._payload(record))

    async def publish_resource(self, request: Request) -> EnvelopeResponse:
        return await self._set_status(request, "published")

    async def convert_resource_to_draft(self, request: Request) -> EnvelopeResponse:
        return await self._set_status(request, "draft")

    async def delete_resource(self, request: Request) -> EnvelopeResponse:
        who = await self.gate.caller(request, secret=True)
        await self.resources.delete(who.environment, _resource_id(request))
        return ok(DELETED)

    async def _set_status(self, request: Request, status: str) -> EnvelopeResponse:
        who = await self.gate.caller(request, secret=True)
        record = await self.resources.update(
            who.environment, _resource_id(request), {"status": status}
        )
        return ok(await self._payload(record))

    async def _payload(self, record: ResourceRecord) -> object:
        available = await self.slots.count_available(record.environment, record.id)
        return resource_payload(record, available)


def _resource_id(request: Request) -> str:
    return path_id(request, "resource_id", ResourceNotFound, "resource")
