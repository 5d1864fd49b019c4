"""Holds: the queue operations staff work."""

from __future__ import annotations

from functools import partial
from typing import Any

from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from api.access import allow, current_actor
from api.problems import document_errors
from api.schemas import Cursor, NoteSchema, StrictSchema, any_of, page, page_schema, text
from api.transactions import command, request_uow
from engine import pipeline
from engine.orders import holds

blp = Blueprint("holds", __name__, url_prefix="/holds", description="Holds (the exception queue)")
_document_errors = partial(document_errors, blp)


class HoldQuerySchema(StrictSchema):
    queue = any_of(text(64))
    rule = any_of(text(100))
    state = fields.String(load_default="open",
                          validate=validate.OneOf(["open", "resolved", "all"]))
    older_than_hours = fields.Float(validate=validate.Range(min=0, max=24 * 365 * 10))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = Cursor("before", int)


class HoldOutSchema(Schema):
    id = fields.Integer()
    order_id = fields.Integer()
    stage = fields.String()
    queue = fields.String()
    reason = fields.String()
    rule = fields.String(allow_none=True)
    rule_set_version_id = fields.Integer(allow_none=True)
    created_at = fields.AwareDateTime()
    created_by = fields.String()
    resolved_at = fields.AwareDateTime(allow_none=True)
    resolved_by = fields.String(allow_none=True)
    resolution = fields.String(allow_none=True)


HoldPageSchema = page_schema(HoldOutSchema, "HoldPage")


@blp.route("/<int(min=1, max=9223372036854775807):hold_id>/release", methods=["POST"])
@allow("ops", scope="hold")
@command
@_document_errors(400, 401, 403, 404, 409, 415)
@blp.arguments(NoteSchema())
@blp.response(200, HoldOutSchema)
def release_hold(data: dict[str, Any], hold_id: int) -> Any:
    """Release one hold. While other holds of the order stay open, the order keeps waiting;
    the last release re-runs the held step without the released holds."""
    return pipeline.release_one_hold(request_uow(), current_actor(), hold_id, data.get("note"))


@blp.route("", methods=["GET"])
@allow("ops", "analyst", "channel", scope="list")
@_document_errors(401, 403, 422)
@blp.arguments(HoldQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, HoldPageSchema)
def list_holds(query: dict[str, Any]) -> dict[str, Any]:
    """List holds, newest first: filter by queue, rule, state and age.

    Resolve one with `POST /holds/{id}/release` (the order moves on when its last hold is
    released), all of an order's with `POST /orders/{id}/release-hold`, or cancel the order.
    """
    before = query.pop("cursor", None)
    found, next_before = holds.list_holds(request_uow(), current_actor(),
                                          holds.HoldQuery(before_id=before, **query))
    return page(found, "before", next_before)
