"""Orders: capture, read, list, the timeline, and the status commands."""

from __future__ import annotations

from functools import partial
from typing import Any

from flask import url_for
from flask_smorest import Blueprint
from marshmallow import RAISE

from api.access import allow, current_actor
from api.problems import document_errors
from api.schemas import (
    CancelSchema,
    DecisionListSchema,
    EventListSchema,
    FulfilmentListSchema,
    NoteSchema,
    OrderInSchema,
    OrderOutSchema,
    OrderPageSchema,
    OrderQuerySchema,
    ReasonSchema,
    page,
)
from api.transactions import command, request_uow
from engine import pipeline
from engine.decisions import sourcing
from engine.fulfilment import cancelling
from engine.orders import capture, reading
from engine.record import Order

# Ids beyond BIGINT are no order of ours: such a path is a 404, not an overflow.
ORDER_PATH = "/<int(min=1, max=9223372036854775807):order_id>"

blp = Blueprint("orders", __name__, url_prefix="/orders", description="Orders")

_document_errors = partial(document_errors, blp)


@blp.route("", methods=["POST"])
@allow("channel", "ops", scope="global")
@command
@_document_errors(400, 401, 403, 409, 413, 415)
@blp.arguments(OrderInSchema(), description="The order; send an Idempotency-Key header to retry "
               "safely")
@blp.response(201, OrderOutSchema, description="The order, recorded in status received")
def create_order(data: dict[str, Any]) -> tuple[Order, int, dict[str, str]]:
    """Capture an order and take it through validation, sourcing and carrier selection.

    The order comes back allocated (its fulfilment groups reserved, each with a carrier:
    `GET /orders/{id}/fulfilment`), backordered, on hold (see `GET /holds`) or rejected;
    why is in `GET /orders/{id}/decisions`.

    Idempotent under an `Idempotency-Key` header (scoped to the API key): the same key
    with the same body replays the first response byte for byte; with another body it is
    refused (422); while the first request is still running, 409. A channel's order
    reference is unique: sending it again answers 409 with the existing order's id.
    """
    order = pipeline.receive_order(request_uow(), current_actor(), draft_from(data))
    return order, 201, {"Location": url_for("orders.get_order", order_id=order.id)}


def draft_from(data: dict[str, Any]) -> capture.OrderDraft:
    """Turn a loaded order body into the engine's draft."""
    return capture.OrderDraft(
        customer_id=data["customer_id"], currency=data["currency"],
        service_level=data["service_level"],
        shipping_address=capture.Address(**data["shipping_address"]),
        lines=[capture.LineDraft(**line) for line in data["lines"]],
        channel=data.get("channel"), channel_order_ref=data.get("channel_order_ref"),
        payment_terms=data.get("payment_terms"), shipping_amount=data["shipping_amount"],
        tax_amount=data["tax_amount"],
    )


@blp.route("", methods=["GET"])
@allow("channel", "ops", "analyst", scope="list")
@_document_errors(401, 403, 422)
@blp.arguments(OrderQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, OrderPageSchema)
def list_orders(query: dict[str, Any]) -> dict[str, Any]:
    """List orders, newest first, with filters and a cursor.

    Integration keys see only their own channel's orders.
    """
    found = reading.list_orders(request_uow(), current_actor(), order_query(query))
    return page(found.orders, "before", found.next_before_id)


def order_query(loaded: dict[str, Any]) -> reading.OrderQuery:
    """Turn a loaded `OrderQuerySchema` (the REST list's, and the search page's) into the
    engine's query: repeated filters as tuples, the cursor as the position."""
    query = dict(loaded)
    before = query.pop("cursor", None)
    filters = {name: tuple(values) for name, values in query.items() if isinstance(values, list)}
    return reading.OrderQuery(before_id=before, **{**query, **filters})


@blp.route(ORDER_PATH, methods=["GET"])
@allow("channel", "ops", "analyst", scope="order")
@_document_errors(401, 403, 404)
@blp.response(200, OrderOutSchema)
def get_order(order_id: int) -> Order:
    """Read one order with its lines and quantities."""
    return reading.get_order(request_uow(), current_actor(), order_id)


@blp.route(ORDER_PATH + "/events", methods=["GET"])
@allow("channel", "ops", "analyst", scope="order")
@_document_errors(401, 403, 404)
@blp.response(200, EventListSchema)
def list_order_events(order_id: int) -> dict[str, Any]:
    """Read the order's timeline: every event, when, and which actor caused it."""
    return {"items": reading.order_events(request_uow(), current_actor(), order_id)}


@blp.route(ORDER_PATH + "/cancel", methods=["POST"])
@allow("channel", "ops", scope="order")
@command
@_document_errors(400, 401, 403, 404, 409, 413, 415, 422)
@blp.arguments(CancelSchema())
@blp.response(200, OrderOutSchema)
def cancel_order(data: dict[str, Any], order_id: int) -> Order:
    """Cancel what has not shipped: the whole remainder, or units of some lines.

    `{"reason": ..., "lines": [{"line_no": 2, "quantity": 1}]}` (or `"sku"` instead of
    `"line_no"`) cancels only those units; without `lines`, everything not shipped yet.
    Their reservations go back to stock (and to waiting orders), a released group is
    withdrawn from its warehouse or told which units to stop, and they are never billed.
    An order with nothing left to ship is `cancelled`, or `shipped` if some of it shipped.
    Shipped goods are returned, not cancelled: a shipped or closed order is a 409; more
    units than a line has left, an unknown line, or packed units without the rest of
    their group, a 422 naming the field.
    """
    lines = data.get("lines")
    return cancelling.cancel_order(
        request_uow(), current_actor(), order_id, data["reason"],
        None if lines is None else [cancelling.LineToCancel(**line) for line in lines])


@blp.route(ORDER_PATH + "/hold", methods=["POST"])
@allow("ops", scope="order")
@command
@_document_errors(400, 401, 403, 404, 409, 413, 415)
@blp.arguments(ReasonSchema())
@blp.response(200, OrderOutSchema)
def hold_order(data: dict[str, Any], order_id: int) -> Order:
    """Put an order on hold for review, with the reason. While held it is not released,
    labelled, billed or announced as shipped, and its warehouses are asked to give back
    what they have; goods that leave anyway are recorded and flagged `shipped_while_held`."""
    return pipeline.hold(request_uow(), current_actor(), order_id, data["reason"])


@blp.route(ORDER_PATH + "/release-hold", methods=["POST"])
@allow("ops", scope="order")
@command
@_document_errors(400, 401, 403, 404, 409, 413, 415)
@blp.arguments(NoteSchema())
@blp.response(200, OrderOutSchema)
def release_hold(data: dict[str, Any], order_id: int) -> Order:
    """Release a held order: the step it was held at runs again, without the released holds,
    and what the hold stopped resumes (release, labels, billing, notices), once."""
    return pipeline.resume_after_hold(request_uow(), current_actor(), order_id,
                                      data.get("note"))


@blp.route(ORDER_PATH + "/decisions", methods=["GET"])
@allow("channel", "ops", "analyst", scope="order")
@_document_errors(401, 403, 404)
@blp.response(200, DecisionListSchema)
def list_order_decisions(order_id: int) -> dict[str, Any]:
    """Read every rule decision about the order: stage, version, outcome, facts and trace."""
    return {"items": pipeline.order_decisions(request_uow(), current_actor(), order_id)}


@blp.route(ORDER_PATH + "/fulfilment", methods=["GET"])
@allow("channel", "ops", "analyst", scope="order")
@_document_errors(401, 403, 404)
@blp.response(200, FulfilmentListSchema)
def list_fulfilment_groups(order_id: int) -> dict[str, Any]:
    """Read where the order ships from: one group per location, with lines and units."""
    return {"items": sourcing.fulfilment_groups(request_uow(), current_actor(), order_id)}
