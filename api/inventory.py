"""Inventory: stock counts, adjustments and receipts from the WMS, expected supply, the
stock ledger, and availability to promise."""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Any

from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from api.access import allow, current_actor
from api.problems import document_errors
from api.schemas import (
    Cursor,
    KeyCursor,
    Measure,
    StrictSchema,
    any_of,
    check_rows,
    country_field,
    page,
    page_schema,
    quantity,
    text,
)
from api.transactions import command, request_uow
from engine.catalog import reference
from engine.catalog.reference import PRODUCTS
from engine.errors import InputValidationError, OmsError
from engine.inventory import availability
from engine.inventory import stock as inventory
from engine.inventory.stock import MAX_ON_HAND, StockChange
from engine.record import ExpectedSupply, StockLevel

READERS = ("warehouse", "channel", "ops", "analyst")  # a channel reads what it may promise
WRITERS = ("warehouse", "ops")  # the WMS integration, and people correcting stock
MAX_BULK_ROWS = 5000
MAX_CHANGE = 1_000_000

blp = Blueprint("inventory", __name__, url_prefix="/inventory",
                description="Stock levels, the stock ledger and expected supply")
availability_blp = Blueprint("availability", __name__, url_prefix="/availability",
                             description="Availability to promise")
_errors = partial(document_errors, blp)
_availability_errors = partial(document_errors, availability_blp)


# ----- requests -----

def _not_zero(value: int) -> None:
    if value == 0:
        raise ValidationError("must not be zero")


class _StockRowSchema(StrictSchema):
    sku = text(64, required=True)
    location = text(64, required=True, metadata={"description": "a location code"})
    reference = text(128, allow_none=True,
                     metadata={"description": "the WMS document, e.g. a count or PO number"})
    reason = text(200, allow_none=True)


class CountSchema(_StockRowSchema):
    on_hand = fields.Integer(strict=True, required=True,
                             validate=validate.Range(min=0, max=MAX_ON_HAND),
                             metadata={"description": "the units counted: the new on hand"})
    safety_stock = fields.Integer(strict=True, validate=validate.Range(min=0, max=MAX_ON_HAND),
                                  metadata={"description": "also set the safety stock"})


class AdjustmentSchema(_StockRowSchema):
    quantity = fields.Integer(strict=True, required=True,
                              validate=[validate.Range(min=-MAX_CHANGE, max=MAX_CHANGE),
                                        _not_zero],
                              metadata={"description": "units added (positive) or removed"})
    reason = text(200, required=True)


class ReceiptSchema(_StockRowSchema):
    quantity = quantity(required=True, metadata={"description": "units received"})


class SupplyInSchema(StrictSchema):
    sku = text(64, required=True)
    location = text(64, required=True)
    reference = text(128, required=True, metadata={"description": "e.g. the purchase order"})
    quantity = quantity(required=True, metadata={"description": "units expected in all"})
    expected_on = fields.Date(required=True, validate=validate.Range(
        min=date(1900, 1, 1), max=date(8999, 12, 31)))


class BulkRowsSchema(StrictSchema):
    rows = fields.List(fields.Raw(allow_none=True), required=True,
                       validate=validate.Length(min=1, max=MAX_BULK_ROWS,
                                                error=f"send 1 to {MAX_BULK_ROWS} rows per call"))


class StockQuerySchema(StrictSchema):
    sku = any_of(text(64))
    location = any_of(text(64))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = KeyCursor("after", 2)


class LedgerQuerySchema(StrictSchema):
    sku = any_of(text(64))
    location = any_of(text(64))
    order_id = any_of(fields.Integer(validate=validate.Range(min=1, max=2**63 - 1)))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = Cursor("after", int)


class SupplyQuerySchema(StrictSchema):
    sku = text(64, required=True)


class AvailabilityQuerySchema(StrictSchema):
    sku = text(64, required=True)
    qty = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_CHANGE))
    postal_code = text(16)
    country = country_field(load_default="BR")


# ----- responses -----

class StockLevelSchema(Schema):
    sku = fields.String()
    location = fields.String(attribute="location_code")
    on_hand = fields.Integer()
    reserved = fields.Integer(metadata={"description": "held for allocated orders"})
    safety_stock = fields.Integer()
    available = fields.Integer(metadata={"description": "on hand - reserved - safety stock"})
    updated_at = fields.AwareDateTime()


class MovementSchema(Schema):
    id = fields.Integer()
    sku = fields.String()
    location = fields.String(attribute="location_code")
    kind = fields.String()
    on_hand_change = fields.Integer()
    reserved_change = fields.Integer()
    on_hand_after = fields.Integer()
    reserved_after = fields.Integer()
    reason = fields.String(allow_none=True)
    reference = fields.String(allow_none=True)
    order_id = fields.Integer(allow_none=True)
    actor = fields.String()
    occurred_at = fields.AwareDateTime()


class SupplySchema(Schema):
    id = fields.Integer()
    sku = fields.String()
    location = fields.String(attribute="location_code")
    reference = fields.String()
    quantity = fields.Integer()
    received = fields.Integer()
    outstanding = fields.Integer()
    expected_on = fields.Date()
    created_at = fields.AwareDateTime()
    created_by = fields.String()


class SupplyListSchema(Schema):
    items = fields.List(fields.Nested(SupplySchema))


class StockBulkRowSchema(Schema):
    index = fields.Integer()
    sku = fields.String(allow_none=True)
    location = fields.String(allow_none=True)
    outcome = fields.String(metadata={"enum": ["applied", "error"]})
    code = fields.String(allow_none=True, metadata={"description": "why the row failed"})
    errors = fields.List(fields.Dict())
    level = fields.Nested(StockLevelSchema, allow_none=True, metadata={
        "description": "the level once the whole request is applied"})


class StockBulkResultSchema(Schema):
    applied = fields.Integer()
    failed = fields.Integer()
    results = fields.List(fields.Nested(StockBulkRowSchema))


class SupplyArrivalSchema(Schema):
    reference = fields.String()
    expected_on = fields.Date()
    quantity = fields.Integer(metadata={"description": "outstanding: not received yet"})
    promisable = fields.Integer(metadata={"description": "what waiting backorders leave"})


class LocationAvailabilitySchema(Schema):
    location = fields.String(attribute="location_code")
    kind = fields.String(attribute="location.kind")
    on_hand = fields.Integer()
    reserved = fields.Integer()
    safety_stock = fields.Integer()
    available = fields.Integer()
    held_back = fields.Integer(metadata={"description": "available units backorders take"})
    available_to_promise = fields.Integer()
    supply = fields.List(fields.Nested(SupplyArrivalSchema))
    distance_km = Measure(allow_none=True)
    transit_days = fields.Integer()
    promise_date = fields.Date(allow_none=True)
    promise_source = fields.String(allow_none=True, metadata={"enum": ["stock", "supply"]})


class PromiseSchema(Schema):
    date = fields.Date()
    location = fields.String(attribute="location_code")
    source = fields.String(metadata={"enum": ["stock", "supply"]})


class AvailabilitySchema(Schema):
    sku = fields.String()
    quantity = fields.Integer()
    country = fields.String()
    postal_code = fields.String(allow_none=True)
    destination_known = fields.Boolean()
    promise = fields.Nested(PromiseSchema, allow_none=True)
    reason = fields.String(allow_none=True, metadata={"description": "why there is no promise"})
    locations = fields.List(fields.Nested(LocationAvailabilitySchema))


# ----- stock changes -----

@blp.route("/counts", methods=["POST"])
@allow(*WRITERS, scope="location")
@command
@_errors(400, 401, 403, 404, 409, 413, 415)
@blp.arguments(CountSchema())
@blp.response(200, StockLevelSchema)
def post_count(data: dict[str, Any]) -> StockLevel:
    """Record a stock count: the units on hand at a location, as the WMS counted them.

    The level becomes the count (a movement records the difference); 409 if it would fall
    below what is reserved for orders.
    """
    return _apply_one("count", data)


@blp.route("/adjustments", methods=["POST"])
@allow(*WRITERS, scope="location")
@command
@_errors(400, 401, 403, 404, 409, 413, 415)
@blp.arguments(AdjustmentSchema())
@blp.response(200, StockLevelSchema)
def post_adjustment(data: dict[str, Any]) -> StockLevel:
    """Add units to a level or remove them (damage, loss, found stock), with a reason.

    409 if the level would fall below what is reserved for orders (or below zero).
    """
    return _apply_one("adjustment", data)


@blp.route("/receipts", methods=["POST"])
@allow(*WRITERS, scope="location")
@command
@_errors(400, 401, 403, 404, 413, 415)
@blp.arguments(ReceiptSchema())
@blp.response(200, StockLevelSchema)
def post_receipt(data: dict[str, Any]) -> StockLevel:
    """Record units received at a location.

    A reference that names expected supply of this SKU at this location counts against it.
    """
    return _apply_one("receipt", data)


@blp.route("/counts/bulk", methods=["POST"])
@allow(*WRITERS, scope="location")
@command
@_errors(400, 401, 403, 413, 415)
@blp.arguments(BulkRowsSchema(), description=f"Up to {MAX_BULK_ROWS:,} counts, each as for a "
               "single count")
@blp.response(200, StockBulkResultSchema, description="One result per row, in order")
def post_counts_bulk(data: dict[str, Any]) -> dict[str, Any]:
    """Record many counts; each row is applied or refused on its own, in order."""
    return _apply_bulk("count", CountSchema(), data["rows"])


@blp.route("/adjustments/bulk", methods=["POST"])
@allow(*WRITERS, scope="location")
@command
@_errors(400, 401, 403, 413, 415)
@blp.arguments(BulkRowsSchema(), description=f"Up to {MAX_BULK_ROWS:,} adjustments, each as "
               "for a single adjustment")
@blp.response(200, StockBulkResultSchema, description="One result per row, in order")
def post_adjustments_bulk(data: dict[str, Any]) -> dict[str, Any]:
    """Record many adjustments; each row is applied or refused on its own, in order."""
    return _apply_bulk("adjustment", AdjustmentSchema(), data["rows"])


@blp.route("/receipts/bulk", methods=["POST"])
@allow(*WRITERS, scope="location")
@command
@_errors(400, 401, 403, 413, 415)
@blp.arguments(BulkRowsSchema(), description=f"Up to {MAX_BULK_ROWS:,} receipts, each as for "
               "a single receipt")
@blp.response(200, StockBulkResultSchema, description="One result per row, in order")
def post_receipts_bulk(data: dict[str, Any]) -> dict[str, Any]:
    """Record many receipts; each row is applied or refused on its own, in order."""
    return _apply_bulk("receipt", ReceiptSchema(), data["rows"])


def _change(kind: str, data: dict[str, Any]) -> StockChange:
    return StockChange(kind, data["sku"], data["location"],
                       data["on_hand"] if kind == "count" else data["quantity"],
                       reason=data.get("reason"), reference=data.get("reference"),
                       safety_stock=data.get("safety_stock"))


def _apply_one(kind: str, data: dict[str, Any]) -> StockLevel:
    return inventory.apply_change(request_uow(), current_actor(), _change(kind, data))


def _apply_bulk(kind: str, schema: Schema, rows: list[Any]) -> dict[str, Any]:
    """Check every row, apply the good ones in one go, and report each row in order."""
    good, bad = check_rows(schema, rows)
    results = {row.index: _failed(row.index, row.sent("sku"), row.sent("location"),
                                  "validation_failed", row.errors) for row in bad}
    changes = [_change(kind, data) for _, data in good]
    outcomes = inventory.apply_changes(request_uow(), current_actor(), changes) if changes else []
    amount = "on_hand" if kind == "count" else "quantity"
    for (index, data), outcome in zip(good, outcomes, strict=True):
        if outcome.error is not None:
            results[index] = _failed(index, data["sku"], data["location"], outcome.error.code,
                                     _row_errors(outcome.error, index, amount))
        else:
            results[index] = {"index": index, "sku": data["sku"], "location": data["location"],
                              "outcome": "applied", "code": None, "errors": [],
                              "level": outcome.level}
    ordered = [results[index] for index in sorted(results)]
    failed = sum(result["outcome"] == "error" for result in ordered)
    return {"applied": len(ordered) - failed, "failed": failed, "results": ordered}


def _failed(index: int, sku: Any, location: Any, code: str,
            errors: list[dict[str, str]]) -> dict[str, Any]:
    return {"index": index, "sku": sku if isinstance(sku, str) else None,
            "location": location if isinstance(location, str) else None,
            "outcome": "error", "code": code, "errors": errors, "level": None}


def _row_errors(error: OmsError, index: int, amount: str) -> list[dict[str, str]]:
    if isinstance(error, InputValidationError):
        return [{"field": f"rows/{index}/{problem.field}", "in": "body",
                 "message": problem.message} for problem in error.problems]
    return [{"field": f"rows/{index}/{amount}", "in": "body", "message": error.detail}]


# ----- expected supply -----

@blp.route("/supply", methods=["POST"])
@allow(*WRITERS, scope="location")
@command
@_errors(400, 401, 403, 404, 409, 413, 415)
@blp.arguments(SupplyInSchema())
@blp.response(201, SupplySchema)
def post_supply(data: dict[str, Any]) -> tuple[ExpectedSupply, int]:
    """Record units expected at a location on a date (a purchase order, a transfer).

    Sending the same location, reference and SKU again changes its quantity and date.
    Receipts that name the reference count against it.
    """
    supply = inventory.expect_supply(request_uow(), current_actor(), data["sku"],
                                     data["location"], data["reference"], data["quantity"],
                                     data["expected_on"])
    return supply, 201


@blp.route("/supply", methods=["GET"])
@allow("warehouse", "ops", "analyst", scope="list")
@_errors(401, 403, 404, 422)
@blp.arguments(SupplyQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, SupplyListSchema)
def list_supply(query: dict[str, Any]) -> dict[str, Any]:
    """List the supply of a SKU still expected (overdue included), earliest first."""
    uow = request_uow()
    reference.get_record(uow, PRODUCTS, query["sku"])
    return {"items": inventory.supply_for(uow, current_actor(), query["sku"])}


# ----- reading stock -----

@blp.route("", methods=["GET"])
@allow(*READERS, scope="list")
@_errors(401, 403, 422)
@blp.arguments(StockQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, page_schema(StockLevelSchema, "StockLevelPage"))
def list_stock(query: dict[str, Any]) -> dict[str, Any]:
    """List stock levels in SKU then location order; a repeated filter matches any of its values."""
    levels, next_key = inventory.stock_page(
        request_uow(), current_actor(), skus=query.get("sku", ()),
        location_codes=query.get("location", ()), after=query.get("cursor"),
        limit=query["limit"])
    return page(levels, "after", list(next_key) if next_key is not None else None)


@blp.route("/ledger", methods=["GET"])
@allow("warehouse", "ops", "analyst", scope="list")  # reservations name other channels' orders
@_errors(401, 403, 422)
@blp.arguments(LedgerQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, page_schema(MovementSchema, "StockMovementPage"))
def list_ledger(query: dict[str, Any]) -> dict[str, Any]:
    """List stock movements, oldest first, filtered by SKU, location or order.

    Every change to a level is one movement with the change and the level after it.
    """
    movements, next_id = inventory.ledger_page(
        request_uow(), current_actor(), skus=query.get("sku", ()),
        location_codes=query.get("location", ()), order_ids=query.get("order_id", ()),
        after=query.get("cursor"), limit=query["limit"])
    return page(movements, "after", next_id)


# ----- availability -----

@availability_blp.route("", methods=["GET"])
@allow("channel", "ops", "analyst", scope="global")
@_availability_errors(401, 403, 404, 422)
@availability_blp.arguments(AvailabilityQuerySchema(), location="query", unknown=RAISE)
@availability_blp.response(200, AvailabilitySchema)
def get_availability(query: dict[str, Any]) -> availability.Availability:
    """Tell what each active location can promise of a SKU, and the earliest promise date.

    Available to promise is what is available minus the units waiting backorders take
    first. The promise is the earliest day one location can ship `qty` (from stock: today;
    from expected supply: the day enough has arrived) plus its transit days to the postal
    code; `promise` is null, with a `reason`, when no location can.
    """
    return availability.availability(request_uow(), query["sku"], query["qty"],
                                     query["country"], query.get("postal_code"))
