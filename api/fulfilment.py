"""The round trip after allocation: warehouse and carrier events in, shipments, the ledger.

Partners post events signed with HMAC-SHA256 (X-OMS-Timestamp, X-OMS-Signature); people
and the embedded warehouse post the same events with an ops or system API key.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from functools import partial
from typing import Any

from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from api.access import allow, current_actor, signed_by
from api.orders import ORDER_PATH
from api.problems import document_errors, field_errors, problem_body, status_of
from api.schemas import (
    FulfilmentGroupOutSchema,
    Measure,
    Money,
    ProblemSchema,
    StrictSchema,
    check_rows,
    quantity,
    text,
    timestamp,
)
from api.transactions import command, large_body, request_uow
from engine.errors import InputValidationError, OmsError
from engine.finance import returns
from engine.fulfilment import billing, common, tracking, warehouse_events
from engine.fulfilment.common import Applied
from engine.record import FulfilmentGroup, JournalEntry, OrderReturn, Shipment, utcnow

READERS = ("channel", "ops", "analyst")
ORDER = "/orders" + ORDER_PATH  # ids beyond BIGINT are a 404, not an overflow
WAREHOUSE = ("warehouse", "ops")  # the warehouse's integration, or a person standing in
CARRIER = ("carrier", "ops")
RETURNERS = ("channel", "ops")
MAX_LINES = 500
MAX_BULK_EVENTS = 1000

blp = Blueprint("fulfilment", __name__,
                description="Warehouse and carrier events, shipments and the ledger")
_errors = partial(document_errors, blp)

_EVENT_ID = text(128, required=True, metadata={"description": "The sender's id for the "
                                                             "event; a repeat is a no-op"})


class PackedLineSchema(StrictSchema):
    sku = text(64, required=True)
    quantity = quantity(required=True)


class WmsEventSchema(StrictSchema):
    event_id = _EVENT_ID
    type = fields.String(required=True, validate=validate.OneOf(common.WMS_EVENT_TYPES))
    group_id = fields.Integer(required=True, strict=True,
                              validate=validate.Range(min=1, max=2**63 - 1))
    package_ref = text(128, load_default=None,
                       metadata={"description": "The warehouse's package id: packed and "
                                                "shipped events of one package name the same"})
    lines = fields.List(fields.Nested(PackedLineSchema), load_default=list,
                        validate=validate.Length(max=MAX_LINES))
    tracking_number = text(64, load_default=None)
    weight_kg = Measure(places=3, load_default=Decimal(0),
                        validate=validate.Range(min=0, max=100_000))
    occurred_at = timestamp()


class TrackingEventSchema(StrictSchema):
    event_id = _EVENT_ID
    tracking_number = text(64, required=True)
    status = fields.String(required=True,
                           validate=validate.OneOf(common.TRACKING_STATUSES))
    occurred_at = timestamp()
    detail = text(500, load_default=None)


class WmsEventsSchema(StrictSchema):
    events = fields.List(fields.Raw(allow_none=True), required=True, validate=validate.Length(
        min=1, max=MAX_BULK_EVENTS, error=f"send 1 to {MAX_BULK_EVENTS} events per call"),
        metadata={"description": "Each an event as `POST /wms/events` takes"})


class TrackingEventsSchema(StrictSchema):
    events = fields.List(fields.Raw(allow_none=True), required=True, validate=validate.Length(
        min=1, max=MAX_BULK_EVENTS, error=f"send 1 to {MAX_BULK_EVENTS} events per call"),
        metadata={"description": "Each an event as `POST /carriers/events` takes"})


class AppliedSchema(Schema):
    outcome = fields.String(metadata={"enum": ["applied", "duplicate", "ignored"]})
    order_id = fields.Integer(allow_none=True)
    shipment_id = fields.Integer(allow_none=True)
    detail = fields.String(allow_none=True)


class EventResultSchema(Schema):
    index = fields.Integer(metadata={"description": "The event's place in the request"})
    event_id = fields.String(allow_none=True, metadata={"description": "As sent"})
    outcome = fields.String(metadata={"enum": ["applied", "duplicate", "ignored", "error"]})
    order_id = fields.Integer(allow_none=True)
    shipment_id = fields.Integer(allow_none=True)
    detail = fields.String(allow_none=True)
    problem = fields.Nested(ProblemSchema, allow_none=True, metadata={
        "description": "Why it failed: the problem the single route would answer, its "
                       "fields named from the body's root (`events/3/lines/0/quantity`)"})


class EventsResultSchema(Schema):
    applied = fields.Integer()
    duplicates = fields.Integer()
    ignored = fields.Integer(metadata={"description": "Recorded, changing nothing (e.g. a "
                                                      "late scan of a delivered parcel)"})
    failed = fields.Integer()
    results = fields.List(fields.Nested(EventResultSchema),
                          metadata={"description": "One per event, in request order"})


class ShipmentLineOutSchema(Schema):
    sku = fields.String()
    quantity = fields.Integer()
    order_line_id = fields.Integer()


class ShipmentOutSchema(Schema):
    id = fields.Integer()
    group_id = fields.Integer()
    package_ref = fields.String()
    location = fields.String(attribute="location_code")
    carrier = fields.String(allow_none=True, attribute="carrier_code")
    service = fields.String(allow_none=True, attribute="service_code")
    status = fields.String(metadata={"enum": list(common.PROGRESS)})
    tracking_number = fields.String(allow_none=True)
    label_cost = Money(allow_none=True)
    weight_kg = fields.Decimal(as_string=True)
    created_at = fields.AwareDateTime()
    shipped_at = fields.AwareDateTime(allow_none=True)
    delivered_at = fields.AwareDateTime(allow_none=True)
    invoice_reference = fields.String(allow_none=True)
    invoiced_at = fields.AwareDateTime(allow_none=True)
    lines = fields.List(fields.Nested(ShipmentLineOutSchema))


class ShipmentListSchema(Schema):
    items = fields.List(fields.Nested(ShipmentOutSchema))


class JournalLineOutSchema(Schema):
    account = fields.String()
    debit = Money()
    credit = Money()


class JournalEntryOutSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    reference = fields.String()
    order_id = fields.Integer(allow_none=True)
    currency = fields.String()
    amount = Money()
    memo = fields.String()
    posted_at = fields.AwareDateTime()
    lines = fields.List(fields.Nested(JournalLineOutSchema))


class JournalSchema(Schema):
    items = fields.List(fields.Nested(JournalEntryOutSchema))
    balanced = fields.Boolean(metadata={"description": "Every entry's debits equal its "
                                                       "credits"})


class AccountSchema(Schema):
    account = fields.String()
    debit = Money()
    credit = Money()


class TrialBalanceSchema(Schema):
    accounts = fields.List(fields.Nested(AccountSchema))
    debit = Money()
    credit = Money()
    balanced = fields.Boolean()


class WorkQuerySchema(StrictSchema):
    location = text(64, required=True)


class WorkListSchema(Schema):
    items = fields.List(fields.Nested(FulfilmentGroupOutSchema))


@blp.route("/wms/events", methods=["POST"])
@allow(*WAREHOUSE, scope="group")
@signed_by("wms")
@command
@_errors(400, 401, 403, 404, 409, 413, 415, 422)
@blp.arguments(WmsEventSchema())
@blp.response(200, AppliedSchema)
def wms_event(data: dict[str, Any]) -> warehouse_events.Applied:
    """Confirm warehouse work: picked, packed (a package), shipped (with tracking), or
    short-picked. Applied once per event id; a repeat answers 200 with outcome duplicate."""
    return warehouse_events.apply_wms_event(request_uow(), current_actor(), *_wms_event(data))


@blp.route("/wms/events/bulk", methods=["POST"])
@allow(*WAREHOUSE, scope="group")
@signed_by("wms")
@large_body
@command
@_errors(400, 401, 403, 409, 413, 415, 422)
@blp.arguments(WmsEventsSchema(), description=f"Up to {MAX_BULK_EVENTS:,} warehouse events "
               "(an EDI 945's confirmations), each as for a single one")
@blp.response(200, EventsResultSchema, description="One result per event, in order")
def wms_events(data: dict[str, Any]) -> dict[str, Any]:
    """Confirm many pieces of warehouse work at once: each event is applied (or refused)
    on its own, in order, once per event id, as `POST /wms/events` would."""
    good, bad = _check_events(WmsEventSchema(), data["events"])
    outcomes = warehouse_events.apply_wms_events(
        request_uow(), current_actor(), [_wms_event(event) for _, event in good])
    return _results(data["events"], good, outcomes, bad, "group_id")


def _wms_event(data: dict[str, Any]) -> tuple[warehouse_events.WmsEvent, dict[str, Any]]:
    """The engine's event, and the payload that recognises a repeat of it."""
    event = warehouse_events.WmsEvent(
        event_id=data["event_id"], type=data["type"], group_id=data["group_id"],
        package_ref=data["package_ref"],
        lines=tuple(warehouse_events.PackedLine(line["sku"], line["quantity"])
                    for line in data["lines"]),
        tracking_number=data["tracking_number"], weight_kg=data["weight_kg"],
        occurred_at=data.get("occurred_at"))
    return event, WmsEventSchema().dump(data)


@blp.route("/carriers/events", methods=["POST"])
@allow(*CARRIER, scope="parcel")
@signed_by("carrier")
@command
@_errors(400, 401, 403, 404, 409, 413, 415, 422)
@blp.arguments(TrackingEventSchema())
@blp.response(200, AppliedSchema)
def tracking_event(data: dict[str, Any]) -> warehouse_events.Applied:
    """Record a carrier's tracking event: in transit, out for delivery, delivered or an
    exception. Applied once per event id and never moving a shipment backwards."""
    return tracking.apply_tracking_event(request_uow(), current_actor(),
                                         *_tracking_event(data))


@blp.route("/carriers/events/bulk", methods=["POST"])
@allow(*CARRIER, scope="parcel")
@signed_by("carrier")
@large_body
@command
@_errors(400, 401, 403, 409, 413, 415, 422)
@blp.arguments(TrackingEventsSchema(), description=f"Up to {MAX_BULK_EVENTS:,} tracking "
               "events (an EDI 214's status lines), each as for a single one")
@blp.response(200, EventsResultSchema, description="One result per event, in order")
def tracking_events(data: dict[str, Any]) -> dict[str, Any]:
    """Record many tracking events at once: each is applied (or refused) on its own, in
    order, once per event id, as `POST /carriers/events` would."""
    good, bad = _check_events(TrackingEventSchema(), data["events"])
    outcomes = tracking.apply_tracking_events(
        request_uow(), current_actor(), [_tracking_event(event) for _, event in good])
    return _results(data["events"], good, outcomes, bad, "tracking_number")


def _tracking_event(data: dict[str, Any]) -> tuple[tracking.TrackingEvent, dict[str, Any]]:
    """The engine's event, and the payload that recognises a repeat of it."""
    event = tracking.TrackingEvent(
        event_id=data["event_id"], tracking_number=data["tracking_number"],
        status=data["status"], occurred_at=data.get("occurred_at") or utcnow(),
        detail=data["detail"])
    return event, TrackingEventSchema().dump(data)


def _check_events(schema: Schema, events: list[Any]
                  ) -> tuple[list[tuple[int, dict[str, Any]]], dict[int, dict[str, Any]]]:
    """Load each event on its own: the good ones, and per bad one its problem."""
    good, bad = check_rows(schema, events, prefix="events")
    return good, {row.index: problem_body(422, "validation_failed",
                                          f"{len(row.errors)} field(s) are invalid",
                                          errors=row.errors) for row in bad}


def _results(sent: list[Any], good: list[tuple[int, dict[str, Any]]],
             outcomes: list[Applied | OmsError], problems: dict[int, dict[str, Any]],
             key: str) -> dict[str, Any]:
    """One result per event in request order, and how many came to each outcome; a failed
    event's problem names its fields from the body's root, the event's key (`key`) when the
    engine names none."""
    done: dict[int, Applied] = {}
    for (index, _), outcome in zip(good, outcomes, strict=True):
        if isinstance(outcome, OmsError):
            where = f"events/{index}"
            errors = (field_errors(outcome.problems, prefix=where)
                      if isinstance(outcome, InputValidationError) else
                      [{"field": f"{where}/{key}", "in": "body", "message": outcome.detail}])
            problems[index] = problem_body(status_of(outcome), outcome.code, outcome.detail,
                                           errors=errors)
        else:
            done[index] = outcome
    results = []
    for index, event in enumerate(sent):
        event_id = event.get("event_id") if isinstance(event, dict) else None
        applied = done.get(index)
        results.append({
            "index": index, "event_id": event_id if isinstance(event_id, str) else None,
            "outcome": applied.outcome if applied is not None else "error",
            "order_id": applied.order_id if applied is not None else None,
            "shipment_id": applied.shipment_id if applied is not None else None,
            "detail": applied.detail if applied is not None else None,
            "problem": problems.get(index)})
    counted = Counter(result["outcome"] for result in results)
    return {"applied": counted["applied"], "duplicates": counted["duplicate"],
            "ignored": counted["ignored"], "failed": counted["error"], "results": results}


@blp.route(ORDER + "/shipments", methods=["GET"])
@allow(*READERS, scope="order")
@_errors(401, 403, 404)
@blp.response(200, ShipmentListSchema)
def list_shipments(order_id: int) -> dict[str, list[Shipment]]:
    """Read the order's shipments: packages, tracking numbers, progress and invoices."""
    return {"items": common.order_shipments(request_uow(), current_actor(), order_id)}


@blp.route(ORDER + "/ledger", methods=["GET"])
@allow("ops", "analyst", scope="order")
@_errors(401, 403, 404)
@blp.response(200, JournalSchema)
def order_ledger(order_id: int) -> dict[str, Any]:
    """Read the embedded ledger's entries for an order (payments, invoices, refunds)."""
    entries: list[JournalEntry] = billing.journal(request_uow(), current_actor(), order_id)
    return {"items": entries, "balanced": all(
        sum(line.debit for line in entry.lines) == sum(line.credit for line in entry.lines)
        for entry in entries)}


@blp.route("/ledger/trial-balance", methods=["GET"])
@allow("ops", "analyst", scope="global")
@_errors(401, 403)
@blp.response(200, TrialBalanceSchema)
def trial_balance() -> dict[str, Any]:
    """Debits and credits per account over the whole embedded ledger; they must agree."""
    accounts = billing.trial_balance(request_uow())
    debit = sum((d for d, _ in accounts.values()), Decimal(0))
    credit = sum((c for _, c in accounts.values()), Decimal(0))
    return {"accounts": [{"account": name, "debit": d, "credit": c}
                         for name, (d, c) in accounts.items()],
            "debit": debit, "credit": credit, "balanced": debit == credit}


@blp.route("/wms/work", methods=["GET"])
@allow(*WAREHOUSE, scope="location")
@_errors(401, 403, 404, 422)
@blp.arguments(WorkQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, WorkListSchema)
def released_work(query: dict[str, Any]) -> dict[str, list[FulfilmentGroup]]:
    """The embedded warehouse's pick list: groups released to a location, not yet shipped."""
    return {"items": common.released_work(request_uow(), current_actor(), query["location"])}


class ReturnSchema(StrictSchema):
    lines = fields.List(fields.Nested(PackedLineSchema), required=True,
                        validate=validate.Length(min=1, max=MAX_LINES))
    reason = text(500, required=True)
    restock = fields.Boolean(load_default=True, metadata={
        "description": "Put the units back in stock where they shipped from (false: "
                       "damaged, not fit to sell)"})


class ReturnedLineOutSchema(Schema):
    sku = fields.String()
    quantity = fields.Integer()
    order_line_id = fields.Integer()
    location = fields.String(metadata={"description": "Where it shipped from"})


class ReturnOutSchema(Schema):
    id = fields.Integer()
    order_id = fields.Integer()
    reason = fields.String()
    lines = fields.List(fields.Nested(ReturnedLineOutSchema))
    restock_location = fields.String(allow_none=True)
    net_amount = Money()
    tax_amount = Money()
    created_at = fields.AwareDateTime()
    created_by = fields.String()
    credit_reference = fields.String(allow_none=True)
    refund_reference = fields.String(allow_none=True)
    settled_at = fields.AwareDateTime(allow_none=True)
    settle_failures = fields.Integer(metadata={
        "description": "Failed rounds of settling; at 5 the sweep stops and a person looks"})
    last_error = fields.String(allow_none=True)


class ReturnListSchema(Schema):
    items = fields.List(fields.Nested(ReturnOutSchema))


@blp.route(ORDER + "/returns", methods=["POST"])
@allow(*RETURNERS, scope="order")
@command
@_errors(400, 401, 403, 404, 409, 413, 415, 422)
@blp.arguments(ReturnSchema())
@blp.response(201, ReturnOutSchema)
def create_return(data: dict[str, Any], order_id: int) -> OrderReturn:
    """Record goods back from the customer: restocked where they shipped from (unless not
    fit to sell), then credited and, when paid up front, refunded by a job."""
    units = [returns.ReturnedUnits(line["sku"], line["quantity"]) for line in data["lines"]]
    return returns.record_return(request_uow(), current_actor(), order_id, units,
                                 data["reason"], data["restock"])


@blp.route(ORDER + "/returns", methods=["GET"])
@allow(*READERS, scope="order")
@_errors(401, 403, 404)
@blp.response(200, ReturnListSchema)
def list_returns(order_id: int) -> dict[str, list[OrderReturn]]:
    """Read the order's returns and how each was settled."""
    return {"items": returns.order_returns(request_uow(), current_actor(), order_id)}
