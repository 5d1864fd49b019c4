"""Holds: the exception inbox operations staff work.

Every filter of `GET /holds` is a query parameter that the console's inbox page takes as
is, so a filtered page and its API query are the same URL query string.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from api.access import allow, current_actor
from api.problems import document_errors
from api.schemas import Cursor, Money, NoteSchema, StrictSchema, any_of, page, text
from api.transactions import command, request_uow
from api.wiring import services
from engine import pipeline
from engine.orders import holds

blp = Blueprint("holds", __name__, url_prefix="/holds",
                description="Holds (the exception inbox): filter, assign, comment, release or "
                            "cancel, one at a time or all that match a filter")
_document_errors = partial(document_errors, blp)
HOLD_PATH = "/<int(min=1, max=9223372036854775807):hold_id>"


class HoldFilterSchema(StrictSchema):
    """Which open holds: a filter given twice takes any of its values; filters combine."""

    queue = any_of(text(64), metadata={"description": "The queue (`fraud`, `manual`...)"})
    rule = any_of(text(100), metadata={
        "description": f"The rule that raised it; `{holds.NO_RULE}`: no rule (a person's)"})
    assignee = any_of(text(200), metadata={
        "description": f"Whose it is: a user name, `{holds.ME}` (you) or `{holds.NOBODY}`"})
    channel = any_of(text(64), metadata={"description": "The order's channel"})
    overdue = fields.Boolean(metadata={
        "description": "Waiting longer than its queue's SLA (true), or not (false)"})
    older_than_hours = fields.Float(validate=validate.Range(min=0, max=24 * 365 * 10))


class HoldStateSchema(HoldFilterSchema):
    state = fields.String(load_default="open",
                          validate=validate.OneOf(["open", "resolved", "all"]))


class HoldQuerySchema(HoldStateSchema):
    sort = fields.String(load_default="due", validate=validate.OneOf(["due", "newest"]),
                         metadata={"description": "due: overdue first, then oldest "
                                                  "(the default); newest: newest first"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = Cursor("offset", int)


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
    assignee = fields.String(allow_none=True, metadata={"description": "A user name"})
    assigned_at = fields.AwareDateTime(allow_none=True)
    assigned_by = fields.String(allow_none=True)


class HoldOrderSchema(Schema):
    id = fields.Integer()
    status = fields.String()
    held_from = fields.String(allow_none=True)
    channel = fields.String()
    channel_order_ref = fields.String(allow_none=True)
    customer_id = fields.String()
    currency = fields.String()
    total = Money(currency_of="currency")


class QueuedHoldSchema(HoldOutSchema):
    """A hold as the inbox shows it: its order, customer, SLA clock and comment count."""

    order = fields.Nested(HoldOrderSchema)
    customer_name = fields.String()
    sla_hours = fields.Float(metadata={"description": "Its queue's SLA"})
    due_at = fields.AwareDateTime(metadata={"description": "created_at + sla_hours"})
    overdue = fields.Boolean(metadata={"description": "Open, and past due_at"})
    age_hours = fields.Float(metadata={"description": "How long it waited (or has waited)"})
    blocks = fields.String(allow_none=True,
                           metadata={"description": "What the order waits to do"})
    comments = fields.Integer(metadata={"description": "How many comments it has"})

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        if isinstance(obj, holds.QueuedHold) and attr in HoldOutSchema._declared_fields:
            return super().get_attribute(obj.hold, attr, default)
        return super().get_attribute(obj, attr, default)


QueuedHoldPageSchema = Schema.from_dict(
    {"items": fields.List(fields.Nested(QueuedHoldSchema)),
     "next_cursor": fields.String(allow_none=True)}, name="QueuedHoldPage")


class CommentInSchema(StrictSchema):
    body = text(2000, required=True)


class CommentOutSchema(Schema):
    id = fields.Integer()
    hold_id = fields.Integer()
    body = fields.String()
    created_at = fields.AwareDateTime()
    created_by = fields.String()


class HoldDetailSchema(Schema):
    hold = fields.Nested(QueuedHoldSchema)
    comment_list = fields.List(fields.Nested(CommentOutSchema), data_key="comments")


class AssignSchema(StrictSchema):
    assignee = text(200, required=True, allow_none=True, metadata={
        "description": f"A user name, `{holds.ME}` (you), or null (nobody)"})


class QueueCountSchema(Schema):
    queue = fields.String()
    sla_hours = fields.Float()
    holds = fields.Integer()
    overdue = fields.Integer()
    unassigned = fields.Integer()
    oldest_at = fields.AwareDateTime(allow_none=True)


class ReasonCountSchema(QueueCountSchema):
    rule = fields.String(allow_none=True)
    reason = fields.String(allow_none=True, metadata={
        "description": "The reason of one of them (a rule's holds read alike)"})


class HoldSummarySchema(Schema):
    holds = fields.Integer()
    overdue = fields.Integer()
    unassigned = fields.Integer()
    by_queue = fields.List(fields.Nested(QueueCountSchema))
    by_reason = fields.List(fields.Nested(ReasonCountSchema))


class BulkInSchema(StrictSchema):
    action = fields.String(required=True, validate=validate.OneOf(pipeline.BULK_ACTIONS))
    filter = fields.Nested(HoldFilterSchema, load_default=dict, metadata={
        "description": "The same filters as `GET /holds` (each as a list); the open holds "
                       "it matches are acted on, not just those one page shows"})
    reason = text(500, required=True, metadata={
        "description": "Why: the note of each release, the reason of each cancel"})
    preview = fields.Boolean(load_default=False, metadata={
        "description": "true: change nothing, answer which holds match"})
    expected = fields.Integer(validate=validate.Range(min=0, max=pipeline.MAX_BULK_HOLDS),
                              metadata={"description": "How many matched in the preview: "
                                                       "if the count changed, a 422 and "
                                                       "nothing is done"})


class BulkOrderResultSchema(Schema):
    order_id = fields.Integer()
    hold_ids = fields.List(fields.Integer())
    outcome = fields.String(metadata={"enum": ["released", "still_held", "cancelled", "error"]})
    status = fields.String(allow_none=True, metadata={"description": "The order's status after"})
    code = fields.String(allow_none=True, metadata={"description": "On error: the problem code"})
    detail = fields.String(allow_none=True)


class BulkOutSchema(Schema):
    action = fields.String()
    preview = fields.Boolean()
    matched = fields.Integer(metadata={"description": "Open holds the filter matches"})
    too_many = fields.Boolean(metadata={
        "description": f"More than {pipeline.MAX_BULK_HOLDS} match: narrow the filter"})
    holds = fields.List(fields.Nested(QueuedHoldSchema),
                        metadata={"description": "Preview: the holds that would be acted on"})
    succeeded = fields.Integer()
    failed = fields.Integer()
    results = fields.List(fields.Nested(BulkOrderResultSchema),
                          metadata={"description": "After: one result per order"})


def hold_query(query: dict[str, Any]) -> holds.HoldQuery:
    """Turn loaded query parameters (or a bulk filter) into the engine's query."""
    offset = query.pop("cursor", 0)
    lists = {name: tuple(values) for name, values in query.items() if isinstance(values, list)}
    return holds.HoldQuery(offset=offset, **{**query, **lists})


def sla() -> holds.HoldSla:
    return services().settings.hold_sla


@blp.route("", methods=["GET"])
@allow("ops", "analyst", "channel", scope="list")
@_document_errors(401, 403, 422)
@blp.arguments(HoldQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, QueuedHoldPageSchema)
def list_holds(query: dict[str, Any]) -> dict[str, Any]:
    """List holds, overdue first, then oldest (or `sort=newest`), each with its order's
    context and its SLA clock; filter by queue, rule, assignee, channel, overdue and age.

    Resolve one with `POST /holds/{id}/release` (the order moves on when its last hold is
    released), all of an order's with `POST /orders/{id}/release-hold`, or cancel the order;
    all that match a filter with `POST /holds/bulk`.
    """
    found, next_offset = holds.list_holds(request_uow(), current_actor(), hold_query(query),
                                          sla())
    return page(found, "offset", next_offset)


@blp.route("/summary", methods=["GET"])
@allow("ops", "analyst", "channel", scope="list")
@_document_errors(401, 403, 422)
@blp.arguments(HoldStateSchema(), location="query", unknown=RAISE)
@blp.response(200, HoldSummarySchema)
def summarize_holds(query: dict[str, Any]) -> holds.HoldSummary:
    """Count the holds a filter matches (open ones by default), by queue and by reason:
    how many, how many overdue, how many nobody's, and since when the oldest waits."""
    return holds.summarize_holds(request_uow(), current_actor(), hold_query(query), sla())


@blp.route(HOLD_PATH, methods=["GET"])
@allow("ops", "analyst", "channel", scope="hold")
@_document_errors(401, 403, 404)
@blp.response(200, HoldDetailSchema)
def get_hold(hold_id: int) -> dict[str, Any]:
    """Read one hold with its order's context, its SLA clock and its comments."""
    item, comments = holds.get_hold(request_uow(), current_actor(), hold_id, sla())
    return {"hold": item, "comment_list": comments}


@blp.route(HOLD_PATH + "/assign", methods=["POST"])
@allow("ops", scope="hold")
@command
@_document_errors(400, 401, 403, 404, 409, 413, 415, 422)
@blp.arguments(AssignSchema())
@blp.response(200, HoldOutSchema)
def assign_hold(data: dict[str, Any], hold_id: int) -> Any:
    """Give an open hold to a person (`"me"`: yourself; null: nobody). The order's
    timeline records who gave it to whom."""
    return holds.assign_hold(request_uow(), current_actor(), hold_id, data["assignee"])


@blp.route(HOLD_PATH + "/comments", methods=["POST"])
@allow("ops", "analyst", scope="hold")
@command
@_document_errors(400, 401, 403, 404, 413, 415, 422)
@blp.arguments(CommentInSchema())
@blp.response(201, CommentOutSchema)
def comment_on_hold(data: dict[str, Any], hold_id: int) -> Any:
    """Leave a comment on a hold; it is on the order's timeline too, with your name."""
    return holds.comment_on_hold(request_uow(), current_actor(), hold_id, data["body"])


@blp.route(HOLD_PATH + "/release", methods=["POST"])
@allow("ops", scope="hold")
@command
@_document_errors(400, 401, 403, 404, 409, 413, 415)
@blp.arguments(NoteSchema())
@blp.response(200, HoldOutSchema)
def release_hold(data: dict[str, Any], hold_id: int) -> Any:
    """Release one hold. While other holds of the order stay open, the order keeps waiting;
    the last release re-runs the held step without the released holds."""
    return pipeline.release_one_hold(request_uow(), current_actor(), hold_id, data.get("note"))


@blp.route("/bulk", methods=["POST"])
@allow("ops", scope="list")
@command
@_document_errors(400, 401, 403, 413, 415, 422)
@blp.arguments(BulkInSchema())
@blp.response(200, BulkOutSchema)
def bulk(data: dict[str, Any]) -> dict[str, Any]:
    """Release or cancel every open hold a filter matches (at most 500), not just a page.

    First `"preview": true`: nothing changes; the answer says how many match and which.
    Then the same body with `"preview": false` (and `"expected"`: the previewed count, so
    that holds which arrived since are not swept along unseen): each order is taken on its
    own, as `POST /holds/{id}/release` or `POST /orders/{id}/cancel` would, oldest first,
    and the answer has one result per order: `released` (it moved on), `still_held` (other
    holds keep it), `cancelled`, or `error` with the problem's code and detail.
    """
    uow, actor = request_uow(), current_actor()
    query = hold_query(dict(data["filter"]))
    answer: dict[str, Any] = {"action": data["action"], "preview": data["preview"],
                              "holds": [], "results": [], "succeeded": 0, "failed": 0}
    if data["preview"]:
        matched, found = pipeline.preview_holds_in_bulk(uow, actor, query, sla())
        return {**answer, "matched": matched, "too_many": matched > pipeline.MAX_BULK_HOLDS,
                "holds": found}
    outcomes = pipeline.resolve_holds_in_bulk(uow, actor, data["action"], query, sla(),
                                              data["reason"], data.get("expected"))
    failed = sum(outcome.outcome == "error" for outcome in outcomes)
    return {**answer, "matched": sum(len(outcome.hold_ids) for outcome in outcomes),
            "too_many": False, "results": outcomes, "succeeded": len(outcomes) - failed,
            "failed": failed}
