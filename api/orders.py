"""Orders: capture, read, list, the timeline, and the status commands."""

from __future__ import annotations

from functools import partial
from typing import Any

from flask import url_for
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from api.access import allow, current_actor
from api.problems import document_errors, engine_problem, problem_body
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
    StrictSchema,
    check_rows,
    page,
)
from api.transactions import command, large_body, request_uow
from engine import pipeline
from engine.decisions import sourcing
from engine.errors import OmsError
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


MAX_BULK_ORDERS = 1000


class OrderBulkSchema(StrictSchema):
    rows = fields.List(fields.Raw(allow_none=True), required=True,
                       validate=validate.Length(min=1, max=MAX_BULK_ORDERS,
                                                error=f"send 1 to {MAX_BULK_ORDERS} orders "
                                                      "per call"),
                       metadata={"description": "Orders, each as `POST /orders` takes one"})


class OrderRowResultSchema(Schema):
    index = fields.Integer()
    outcome = fields.String(metadata={"enum": ["created", "error"]})
    id = fields.Integer(allow_none=True, metadata={"description": "The created order's id"})
    status = fields.String(allow_none=True,
                           metadata={"description": "The created order's status"})
    channel_order_ref = fields.String(allow_none=True)
    problem = fields.Dict(allow_none=True, metadata={
        "description": "Why the order was refused: the problem `POST /orders` would answer "
                       "with (status, code, detail, errors with `rows/<index>/...` fields)"})


class OrderBulkResultSchema(Schema):
    created = fields.Integer()
    failed = fields.Integer()
    results = fields.List(fields.Nested(OrderRowResultSchema))


@blp.route("/bulk", methods=["POST"])
@allow("channel", "ops", scope="global")
@large_body
@command
@_document_errors(400, 401, 403, 409, 413, 415, 422)
@blp.arguments(OrderBulkSchema(), description=f"Up to {MAX_BULK_ORDERS:,} orders; send an "
               "Idempotency-Key header to retry the whole request safely")
@blp.response(200, OrderBulkResultSchema, description="One result per order, in order")
def create_orders(data: dict[str, Any]) -> dict[str, Any]:
    """Capture many orders in one call: each is created or refused on its own.

    Every order goes through what `POST /orders` does (validation, sourcing, carrier), as
    one batch: stock and credit go to the orders in the order they are listed. The answer
    has one result per order, in order: `created` with its id and status, or `error` with
    the problem the single call would have answered (every offending field, named
    `rows/<index>/...`). An order whose `channel_order_ref` the channel already sent (or
    that repeats one earlier in the request) is refused as `duplicate_order` with the
    existing order's id. Under an `Idempotency-Key` the whole request replays.
    """
    good, bad = check_rows(OrderInSchema(), data["rows"])
    results = {row.index: {"index": row.index, "outcome": "error", "problem": problem_body(
        422, "validation_failed", f"{len(row.errors)} field(s) are invalid",
        errors=row.errors)} for row in bad}
    received = pipeline.receive_orders(request_uow(), current_actor(),
                                       [draft_from(loaded) for _, loaded in good])
    for (index, _), outcome in zip(good, received, strict=True):
        if isinstance(outcome, OmsError):
            status, body, _headers = engine_problem(outcome, f"rows/{index}")
            results[index] = {"index": index, "outcome": "error",
                              "problem": problem_body(status, **body)}
        else:
            results[index] = {"index": index, "outcome": "created", "id": outcome.id,
                              "status": outcome.status.value,
                              "channel_order_ref": outcome.channel_order_ref}
    ordered = [results[index] for index in sorted(results)]
    failed = sum(result["outcome"] == "error" for result in ordered)
    return {"created": len(ordered) - failed, "failed": failed, "results": ordered}


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
