"""Resource endpoints: create, list, get, update, publish, convert-draft, delete."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service import validation
from service.errors import BadRequest, ResourceNotFound
from service.payloads import DELETED, ResourceCreate, ResourceUpdate
from service.records import ResourceRecord
from service.responses import ok
from service.routes.common import Page, body, caller, path_id, services
from service.store.resources import ResourceDraft
from service.views import resource_payload


async def create_resource(request: Request) -> Response:
    who = await caller(request, secret=True)
    payload = await body(request, ResourceCreate)
    draft = ResourceDraft(
        name=payload.name,
        timezone=validation.timezone(payload.timezone),
        booking_disabled_before=validation.booking_disabled_before(payload.booking_disabled_before),
        public_scheduling_enabled=payload.public_scheduling_enabled,
        metadata_json=validation.metadata_json(payload.metadata),
    )
    record = await services(request).resources.create(who.environment, draft)
    return ok(resource_payload(record, 0))


async def list_resources(request: Request) -> Response:
    who = await caller(request)
    page = Page.of(request)
    name, status = request.query_params.get("name"), request.query_params.get("status")
    if status is not None and status not in {"draft", "published"}:
        raise BadRequest("`status` must be draft or published")
    records, total = await services(request).resources.page(
        who.environment, name, status, page.offset, page.limit
    )
    # One count script per resource, sent together (the batcher pipelines them).
    payloads = await asyncio.gather(*(_payload(request, record) for record in records))
    return ok(list(payloads), page.meta(total))


async def get_resource(request: Request) -> Response:
    who = await caller(request)
    record = await services(request).resources.get(who.environment, _resource_id(request))
    return ok(await _payload(request, record))


async def update_resource(request: Request) -> Response:
    who = await caller(request, secret=True)
    resource_id = _resource_id(request)
    payload = await body(request, ResourceUpdate)
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
    record = await services(request).resources.update(who.environment, resource_id, fields)
    return ok(await _payload(request, record))


async def publish_resource(request: Request) -> Response:
    return await _set_status(request, "published")


async def convert_resource_to_draft(request: Request) -> Response:
    return await _set_status(request, "draft")


async def delete_resource(request: Request) -> Response:
    who = await caller(request, secret=True)
    await services(request).resources.delete(who.environment, _resource_id(request))
    return ok(DELETED)


async def _set_status(request: Request, status: str) -> Response:
    who = await caller(request, secret=True)
    record = await services(request).resources.update(
        who.environment, _resource_id(request), {"status": status}
    )
    return ok(await _payload(request, record))


async def _payload(request: Request, record: ResourceRecord) -> object:
    available = await services(request).slots.count_available(record.environment, record.id)
    return resource_payload(record, available)


def _resource_id(request: Request) -> str:
    return path_id(request, "resource_id", ResourceNotFound, "resource")


ROUTES = [
    Route("/resources", create_resource, methods=["POST"]),
    Route("/resources", list_resources, methods=["GET"]),
    Route("/resources/{resource_id}", get_resource, methods=["GET"]),
    Route("/resources/{resource_id}", update_resource, methods=["PATCH"]),
    Route("/resources/{resource_id}", delete_resource, methods=["DELETE"]),
    Route("/resources/{resource_id}/publish", publish_resource, methods=["POST"]),
    Route("/resources/{resource_id}/convert-draft", convert_resource_to_draft, methods=["POST"]),
]
