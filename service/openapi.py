"""The OpenAPI document, generated from the msgspec types of payloads.py.

OPERATIONS lists every endpoint once; a test checks it against the app's routes,
so the document cannot silently fall behind the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from service import payloads as p

REF = "#/components/schemas/{name}"


@dataclass(frozen=True, slots=True)
class Operation:
    """One endpoint: how it is called and what it answers."""

    method: str
    path: str
    summary: str
    scope: str  # "public" (either key), "secret", or "none"
    body: tuple[type[Any], ...] = ()  # request Struct types; several mean "one of"
    data: type[Any] | None = None
    is_list: bool = False
    meta: type[Any] | None = None
    body_required: bool = True
    stream: bool = False  # answers text/event-stream (API.md "Live availability")


# fmt: off
OPERATIONS: list[Operation] = [
    Operation("POST", "/resources", "Create a resource", "secret",
              body=(p.ResourceCreate,), data=p.ResourceOut),
    Operation("GET", "/resources", "List resources", "public",
              data=p.ResourceOut, is_list=True, meta=p.ListMeta),
    Operation("GET", "/resources/{resource_id}", "Get a resource", "public", data=p.ResourceOut),
    Operation("GET", "/resources/{resource_id}/events",
              "Watch the resource's slot changes (text/event-stream; `?key=` for a public key)",
              "public", stream=True),
    Operation("PATCH", "/resources/{resource_id}", "Update a resource", "secret",
              body=(p.ResourceUpdate,), data=p.ResourceOut),
    Operation("DELETE", "/resources/{resource_id}", "Delete a resource with all it owns",
              "secret", data=p.Deleted),
    Operation("POST", "/resources/{resource_id}/publish", "Publish a resource", "secret",
              data=p.ResourceOut),
    Operation("POST", "/resources/{resource_id}/convert-draft", "Make a resource a draft again",
              "secret", data=p.ResourceOut),
    Operation("POST", "/slots", "Create a slot, or many at once with `slots`", "secret",
              body=(p.SlotCreate, p.SlotBulkCreate), data=p.SlotOut),
    Operation("GET", "/slots", "List slots", "public",
              data=p.SlotOut, is_list=True, meta=p.ListMeta),
    Operation("GET", "/slots/{slot_id}", "Get a slot", "public", data=p.SlotOut),
    Operation("PATCH", "/slots/{slot_id}", "Update a slot", "secret",
              body=(p.SlotUpdate,), data=p.SlotOut),
    Operation("DELETE", "/slots/{slot_id}", "Delete a slot without active bookings", "secret",
              data=p.Deleted),
    Operation("POST", "/slots/{slot_id}/enable", "Enable a slot", "secret", data=p.SlotOut),
    Operation("POST", "/slots/{slot_id}/disable", "Disable a slot", "secret", data=p.SlotOut),
    Operation("POST", "/slots/{slot_id}/lock", "Lock a slot until a deadline", "public",
              body=(p.LockRequest,), data=p.SlotOut, meta=p.LockMeta),
    Operation("POST", "/slots/{slot_id}/unlock", "Unlock a slot", "public",
              body=(p.UnlockRequest,), data=p.SlotOut),
    Operation("POST", "/bookings", "Book a slot (with the lock_key if it is locked)", "public",
              body=(p.BookingCreate,), data=p.BookingOut),
    Operation("GET", "/bookings", "List bookings", "public",
              data=p.BookingOut, is_list=True, meta=p.ListMeta),
    Operation("GET", "/bookings/{booking_id}", "Get a booking", "public", data=p.BookingOut),
    Operation("PATCH", "/bookings/{booking_id}", "Update a booking's metadata", "public",
              body=(p.BookingUpdate,), data=p.BookingOut, body_required=False),
    Operation("DELETE", "/bookings/{booking_id}", "Delete a booking for good", "secret",
              data=p.Deleted),
    Operation("POST", "/bookings/{booking_id}/cancel", "Cancel a booking", "public",
              data=p.BookingOut),
    Operation("POST", "/bookings/{booking_id}/enable", "Make a cancelled booking active again",
              "public", body=(p.BookingStatusChange,), data=p.BookingOut, body_required=False),
    Operation("POST", "/bookings/{booking_id}/reschedule", "Move a booking to another slot",
              "public", body=(p.BookingReschedule,), data=p.BookingOut),
    Operation("GET", "/healthz", "The process is up", "none"),
    Operation("GET", "/readyz", "Redis answers and the scripts are loaded", "none"),
    Operation("GET", "/metrics", "Prometheus metrics", "none"),
    Operation("GET", "/openapi.json", "This document", "none"),
]
# fmt: on

PAGE_PARAMETERS: dict[str, dict[str, Any]] = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 20},
    "page": {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1},
}
# The query filters of each list (API.md), besides `limit` and `page`.
LIST_FILTERS: dict[str, dict[str, dict[str, Any]]] = {
    "/resources": {
        "name": {"type": "string"},
        "status": {"type": "string", "enum": ["draft", "published"]},
    },
    "/slots": {
        "resource_id": {"type": "string"},
        "resoure_id": {"type": "string", "description": "the JS SDK's spelling of resource_id"},
        "available": {"type": "boolean"},
        "start_date": {"type": "string", "description": "slots starting at or after (ISO 8601)"},
        "end_date": {"type": "string", "description": "slots ending at or before (ISO 8601)"},
    },
    "/bookings": {
        "status": {"type": "string", "enum": ["active", "cancelled"]},
        "slot_id": {"type": "string"},
        "resource_id": {"type": "string"},
    },
}


def build_document(operations: list[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for `operations`."""
    types: list[Any] = [p.ErrorEnvelope]
    for operation in operations:
        types += [*operation.body]
        types += [t for t in (operation.data, operation.meta) if t is not None]
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    by_type = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(
            operation, by_type
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": "slotlock", "version": "0.1.0"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(operation: Operation, by_type: dict[Any, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "summary": operation.summary,
        "operationId": f"{operation.method.lower()}_{operation.path}",
        "responses": {
            "default": {
                "description": "failure envelope",
                "content": _json(by_type[p.ErrorEnvelope]),
            },
        },
    }
    if operation.data is not None:
        data = by_type[operation.data]
        if operation.is_list:
            data = {"type": "array", "items": data}
        meta = by_type[operation.meta] if operation.meta else {"type": "object"}
        envelope = {
            "type": "object",
            "required": ["data", "meta", "success"],
            "properties": {"data": data, "meta": meta, "success": {"const": True}},
        }
        # Every success is 200, creates included (as Overbooked answers; API.md).
        spec["responses"]["200"] = {"description": "success envelope", "content": _json(envelope)}
    elif operation.stream:
        spec["responses"]["200"] = {
            "description": "Server-Sent Events: id, event and one JSON object of data each",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    else:
        spec["responses"]["200"] = {"description": "operational answer"}
    if operation.body:
        bodies = [by_type[body] for body in operation.body]
        schema = bodies[0] if len(bodies) == 1 else {"oneOf": bodies}
        spec["requestBody"] = {"required": operation.body_required, "content": _json(schema)}
    if operation.scope != "none":
        spec["security"] = [{"bearer": []}]
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in ("resource_id", "slot_id", "booking_id")
        if "{" + name + "}" in operation.path
    ]
    if operation.is_list:
        query = PAGE_PARAMETERS | LIST_FILTERS[operation.path]
        parameters += [{"name": name, "in": "query", "schema": query[name]} for name in query]
    if parameters:
        spec["parameters"] = parameters
    return spec


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}
