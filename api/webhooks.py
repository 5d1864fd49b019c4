"""Webhooks: subscribers, the order events they want, and the deliveries made to them."""

from __future__ import annotations

from functools import partial
from typing import Any

from flask import current_app, url_for
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from adapters.webhooks import TargetPolicy
from api.access import allow, current_actor
from api.problems import document_errors
from api.schemas import Cursor, StrictSchema, page, page_schema, text
from api.transactions import command, request_uow
from engine import webhooks
from engine.errors import FieldProblem, InputValidationError
from engine.record import WebhookDelivery, WebhookSubscription
from engine.webhooks import WEBHOOK_EVENT_TYPES

MANAGERS = ("ops",)  # and admin
SUBSCRIPTION = "/subscriptions/<int(min=1, max=9223372036854775807):subscription_id>"
DELIVERY = "/deliveries/<int(min=1, max=9223372036854775807):delivery_id>"

blp = Blueprint("webhooks", __name__, url_prefix="/webhooks",
                description="Outbound webhooks: each order event a subscriber asked for is "
                            "POSTed to its URL as JSON, signed with HMAC-SHA256 "
                            "(X-OMS-Timestamp, X-OMS-Signature: v1=hex of "
                            "`<timestamp>.<body>`), with X-OMS-Event and X-OMS-Delivery; "
                            "retried after 30 s, 2 min, 10 min, 1 h and 6 h, then failed.")
_errors = partial(document_errors, blp)


def _url(value: str) -> None:
    problem = webhooks.url_problem(value)
    if problem is not None:
        raise ValidationError(problem)


def _check_target(url: str | None) -> None:
    """Refuse a URL that points at our own network, unless OMS_WEBHOOK_ALLOWED_HOSTS
    allows it (checked again at each send)."""
    if url is None:
        return
    settings = current_app.extensions["oms"].settings
    problem = TargetPolicy.parse(settings.webhook_allowed_hosts).problem(url)
    if problem is not None:
        raise InputValidationError([FieldProblem("url", problem)])


def _event_types(**kwargs: Any) -> fields.List:
    return fields.List(
        fields.String(validate=validate.OneOf(WEBHOOK_EVENT_TYPES,
                                              error=webhooks.EVENT_TYPE_MESSAGE)),
        validate=validate.Length(min=1, max=len(WEBHOOK_EVENT_TYPES) * 2,
                                 error="name 1 to {max} event types"),
        metadata={"description": "Any of " + ", ".join(WEBHOOK_EVENT_TYPES)}, **kwargs)


class SubscriptionInSchema(StrictSchema):
    url = fields.String(required=True, validate=_url,
                        metadata={"description": "http:// or https://; redirects are not "
                                                 "followed"})
    event_types = _event_types(required=True)
    description = text(200, allow_none=True, load_default=None)


class SubscriptionChangesSchema(StrictSchema):
    url = fields.String(validate=_url)
    event_types = _event_types()
    description = text(200, allow_none=True)
    active = fields.Boolean(metadata={"description": "false stops deliveries; pending ones "
                                                     "resume when it is true again"})


class SubscriptionSchema(Schema):
    id = fields.Integer()
    url = fields.String()
    event_types = fields.List(fields.String())
    description = fields.String(allow_none=True)
    active = fields.Boolean()
    created_at = fields.AwareDateTime()
    created_by = fields.String()


class NewSubscriptionSchema(SubscriptionSchema):
    secret = fields.String(metadata={"description": "Signs every delivery. Shown only in "
                                                    "this response: keep it safe"})


class SubscriptionListSchema(Schema):
    items = fields.List(fields.Nested(SubscriptionSchema))


class DeliverySchema(Schema):
    id = fields.Integer()
    subscription_id = fields.Integer()
    event_id = fields.Integer(metadata={"description": "The order event it carries"})
    event_type = fields.String()
    status = fields.String(metadata={"description": "pending, delivered or failed"})
    attempts = fields.Integer()
    next_attempt_at = fields.AwareDateTime(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    last_response = fields.String(allow_none=True,
                                  metadata={"description": "The start of the last answer"})
    last_error = fields.String(allow_none=True,
                               metadata={"description": "Why the last attempt got no answer"})
    created_at = fields.AwareDateTime()
    delivered_at = fields.AwareDateTime(allow_none=True)
    payload = fields.Dict(metadata={"description": "The body sent (id, type, occurred_at, "
                                                   "order_id, data)"})


DeliveryPageSchema = page_schema(DeliverySchema, "DeliveryPage")


class DeliveryQuerySchema(StrictSchema):
    status = fields.String(validate=validate.OneOf(webhooks.DELIVERY_STATUSES))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = Cursor("before", int)


class ReplaySchema(StrictSchema):
    """An empty object."""


@blp.route("/subscriptions", methods=["POST"])
@allow(*MANAGERS, scope="global")
@command
@_errors(400, 401, 403, 413, 415, 422)
@blp.arguments(SubscriptionInSchema())
@blp.response(201, NewSubscriptionSchema)
def subscribe(data: dict[str, Any]) -> tuple[WebhookSubscription, int, dict[str, str]]:
    """Register a URL for some order events; the answer carries its secret, only this once.

    URLs pointing at private, loopback or link-local addresses are refused unless
    OMS_WEBHOOK_ALLOWED_HOSTS names them."""
    _check_target(data["url"])
    subscription = webhooks.subscribe(request_uow(), current_actor(), data["url"],
                                      data["event_types"], data["description"])
    return subscription, 201, {"Location": url_for("webhooks.read_subscription",
                                                   subscription_id=subscription.id)}


@blp.route("/subscriptions", methods=["GET"])
@allow(*MANAGERS, scope="global")
@_errors(401, 403)
@blp.response(200, SubscriptionListSchema)
def list_subscriptions() -> dict[str, Any]:
    """List every subscription, active or not, oldest first."""
    return {"items": webhooks.list_subscriptions(request_uow())}


@blp.route(SUBSCRIPTION, methods=["GET"])
@allow(*MANAGERS, scope="global")
@_errors(401, 403, 404)
@blp.response(200, SubscriptionSchema)
def read_subscription(subscription_id: int) -> WebhookSubscription:
    """Read one subscription (without its secret)."""
    return webhooks.get_subscription(request_uow(), subscription_id)


@blp.route(SUBSCRIPTION, methods=["PATCH"])
@allow(*MANAGERS, scope="global")
@command
@_errors(400, 401, 403, 404, 413, 415, 422)
@blp.arguments(SubscriptionChangesSchema())
@blp.response(200, SubscriptionSchema)
def update_subscription(data: dict[str, Any], subscription_id: int) -> WebhookSubscription:
    """Change the URL, the event types, the description, or whether it is active."""
    _check_target(data.get("url"))
    return webhooks.update_subscription(request_uow(), subscription_id, data)


@blp.route(SUBSCRIPTION, methods=["DELETE"])
@allow(*MANAGERS, scope="global")
@command
@_errors(401, 403, 404)
@blp.response(200, SubscriptionSchema, description="The subscription, now inactive")
def deactivate_subscription(subscription_id: int) -> WebhookSubscription:
    """Deactivate a subscription: nothing more is sent; its deliveries stay readable."""
    return webhooks.deactivate_subscription(request_uow(), subscription_id)


@blp.route(SUBSCRIPTION + "/deliveries", methods=["GET"])
@allow(*MANAGERS, scope="global")
@_errors(401, 403, 404, 422)
@blp.arguments(DeliveryQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, DeliveryPageSchema)
def list_deliveries(query: dict[str, Any], subscription_id: int) -> dict[str, Any]:
    """List a subscription's deliveries, newest first, with their last answer."""
    found, next_before = webhooks.list_deliveries(
        request_uow(), subscription_id, limit=query["limit"], before_id=query.get("cursor"),
        status=query.get("status"))
    return page(found, "before", next_before)


@blp.route(DELIVERY + "/replay", methods=["POST"])
@allow(*MANAGERS, scope="global")
@command
@_errors(400, 401, 403, 404, 413, 415, 422)
@blp.arguments(ReplaySchema())
@blp.response(202, DeliverySchema, description="Pending again; sent once this commits")
def replay_delivery(_data: dict[str, Any], delivery_id: int) -> tuple[WebhookDelivery, int]:
    """Send a delivery again (same event id and payload) with a fresh schedule of attempts.

    The body is an empty object. A delivery of an inactive subscription waits until the
    subscription is active again.
    """
    return webhooks.replay(request_uow(), current_actor(), delivery_id), 202
