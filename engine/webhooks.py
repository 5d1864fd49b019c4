"""Outbound webhooks: subscriptions, one delivery per matching order event, and its retries.

Recording an order event whose type is published (EVENT_TYPES) adds, in the same
transaction, one pending delivery per active subscription that wants it, and asks for the
job that sends it once the transaction commits. Sending (HTTP, signatures) is the adapters'
work; the job claims a delivery here, sends it outside any transaction, and records the
outcome here: delivered on a 2xx, otherwise retried after BACKOFF, failed after the last.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.actors import Actor
from engine.errors import (
    FieldProblem,
    InputValidationError,
    InvalidTransitionError,
    NotFoundError,
)
from engine.job_names import DELIVER_JOB
from engine.paging import fetch_page
from engine.ports import UnitOfWork
from engine.record import Order, OrderEvent, WebhookDelivery, WebhookSubscription, utcnow
from engine.reference_cache import WEBHOOKS, cached

log = logging.getLogger(__name__)

# Our timeline's event types, and the webhook type each is published as; others stay inside.
EVENT_TYPES: Mapping[str, str] = {
    "order.received": "order.created",
    "order.held": "order.held",
    "order.allocated": "order.allocated",
    "order.released": "order.released",
    "order.partially_shipped": "order.shipped",
    "order.shipped": "order.shipped",
    "order.delivered": "order.delivered",
    "order.cancelled": "order.cancelled",
    "order.returned": "order.returned",
    "order.completed": "order.completed",
}
# The webhook types a subscription may ask for: the one vocabulary the API accepts, the
# deliveries carry and the README lists.
WEBHOOK_EVENT_TYPES: tuple[str, ...] = tuple(dict.fromkeys(EVENT_TYPES.values()))
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
DELIVERY_STATUSES = (PENDING, DELIVERED, FAILED)
# The wait after the 1st, 2nd... failed attempt; the attempt after the last wait is the last.
BACKOFF = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10),
           timedelta(hours=1), timedelta(hours=6))
MAX_ATTEMPTS = len(BACKOFF) + 1
# While one sender has a delivery, nobody else takes it: longer than any send can last.
SENDING_LEASE = timedelta(minutes=2)
MAX_URL_LENGTH = 500  # WebhookSubscription.url
MAX_RESPONSE_LENGTH = 2000  # WebhookDelivery.last_response
MAX_ERROR_LENGTH = 500  # WebhookDelivery.last_error
SECRET_PREFIX = "whsec_"
EVENT_TYPE_MESSAGE = "must be one of " + ", ".join(WEBHOOK_EVENT_TYPES)
URL_MESSAGE = ("must be an http:// or https:// URL with a host name or IP address, "
               "without user name or password")

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_URL = re.compile(
    rf"https?://(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:.]+\])"  # host name, IPv4 or [IPv6]
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?:[/?][!-~]*)?",  # path and query: visible ASCII only
    re.IGNORECASE)


@dataclass(frozen=True)
class Outgoing:
    """One delivery, claimed for sending: where to, with what secret, and what."""

    delivery_id: int
    url: str
    secret: str
    event_type: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class AttemptResult:
    """What the subscriber answered (status and body), or why nothing came back."""

    status_code: int | None = None
    response: str | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


# ----- checks -----

def url_problem(url: str) -> str | None:
    """Return what is wrong with a subscriber URL, or None if it will do."""
    if len(url) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters"
    match = _URL.fullmatch(url)
    if match is None:
        return URL_MESSAGE
    if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
        return "has a port outside 1 to 65535"
    return None


def _problems(url: str | None, event_types: Sequence[str] | None) -> list[FieldProblem]:
    found = []
    if url is not None and (message := url_problem(url)) is not None:
        found.append(FieldProblem("url", message))
    if event_types is not None:
        if not event_types:
            found.append(FieldProblem("event_types", "name at least one event type"))
        found.extend(FieldProblem(f"event_types/{index}", EVENT_TYPE_MESSAGE)
                     for index, name in enumerate(event_types)
                     if name not in WEBHOOK_EVENT_TYPES)
    return found


def _check(url: str | None, event_types: Sequence[str] | None) -> None:
    found = _problems(url, event_types)
    if found:
        raise InputValidationError(found)


# ----- subscriptions -----

def subscribe(uow: UnitOfWork, actor: Actor, url: str, event_types: Sequence[str],
              description: str | None = None) -> WebhookSubscription:
    """Register a subscriber with a new secret (readable on the returned object only now).

    Raises:
        InputValidationError: the URL is not http(s), or an event type is unknown.
    """
    _check(url, event_types)
    subscription = WebhookSubscription(
        url=url, event_types=list(dict.fromkeys(event_types)),
        secret=SECRET_PREFIX + secrets.token_urlsafe(32), description=description,
        active=True, created_at=utcnow(), created_by=actor.label)
    uow.session.add(subscription)
    uow.session.flush()  # which bumps the webhooks' version (reference_cache)
    return subscription


def list_subscriptions(uow: UnitOfWork) -> list[WebhookSubscription]:
    """Return every subscription, active or not, oldest first."""
    return list(uow.session.scalars(select(WebhookSubscription)
                                    .order_by(WebhookSubscription.id)))


def get_subscription(uow: UnitOfWork, subscription_id: int) -> WebhookSubscription:
    """Raises NotFoundError when there is no such subscription."""
    subscription = uow.session.get(WebhookSubscription, subscription_id)
    if subscription is None:
        raise NotFoundError("webhook subscription", subscription_id)
    return subscription


def update_subscription(uow: UnitOfWork, subscription_id: int,
                        changes: Mapping[str, Any]) -> WebhookSubscription:
    """Change the URL, event types, description or active flag of a subscription.

    Deliveries already made keep the URL and payload they had; pending ones go to the new
    URL. A subscription made active again resumes its pending deliveries.

    Raises:
        NotFoundError: no such subscription.
        InputValidationError: the URL is not http(s), or an event type is unknown.
    """
    unknown = set(changes) - {"url", "event_types", "description", "active"}
    if unknown:
        raise InputValidationError([FieldProblem(name, "cannot be changed")
                                    for name in sorted(unknown)])
    _check(changes.get("url"), changes.get("event_types"))
    subscription = get_subscription(uow, subscription_id)
    if "url" in changes:
        subscription.url = changes["url"]
    if "event_types" in changes:
        subscription.event_types = list(dict.fromkeys(changes["event_types"]))
    if "description" in changes:
        subscription.description = changes["description"]
    if "active" in changes:
        subscription.active = bool(changes["active"])
    uow.session.flush()  # which bumps the webhooks' version (reference_cache)
    return subscription


def deactivate_subscription(uow: UnitOfWork, subscription_id: int) -> WebhookSubscription:
    """Stop sending to a subscriber; its pending deliveries wait until it is active again.

    Raises:
        NotFoundError: no such subscription.
    """
    return update_subscription(uow, subscription_id, {"active": False})


# ----- fan-out -----

def fan_out(uow: UnitOfWork, order: Order, event: OrderEvent) -> list[WebhookDelivery]:
    """Owe the event to every active subscription that wants it; send each after commit.

    Costs no query while the subscriptions are unchanged (they are kept per process), and
    nothing more for an event nobody subscribed to.
    """
    webhook_type = EVENT_TYPES.get(event.type)
    if webhook_type is None:
        return []
    wanted = [subscription_id for subscription_id, types in _active_subscriptions(uow)
              if webhook_type in types]
    if not wanted:
        return []
    session = uow.session
    session.flush()  # the event's id: the payload's, and the deliveries' reference
    now = utcnow()
    payload = {
        "id": f"evt_{event.id}",  # the same in every attempt and replay: receivers dedupe on it
        "type": webhook_type,
        "occurred_at": event.occurred_at.isoformat(),
        "order_id": order.id,
        "data": {**event.data, "order_status": order.status.value},
    }
    deliveries = [WebhookDelivery(subscription_id=subscription_id, event_id=event.id,
                                  event_type=webhook_type, payload=dict(payload),
                                  status=PENDING, attempts=0, next_attempt_at=now,
                                  created_at=now)
                  for subscription_id in wanted]
    session.add_all(deliveries)
    session.flush()  # their ids, for the jobs
    for delivery in deliveries:
        uow.enqueue_after_commit(DELIVER_JOB, delivery.id)
    return deliveries


def _active_subscriptions(uow: UnitOfWork) -> tuple[tuple[int, frozenset[str]], ...]:
    """Return (id, event types) of the active subscriptions, kept per process until a
    subscription changes anywhere (`reference_cache`)."""
    return cached(uow.session, WEBHOOKS, _read_active_subscriptions)


def _read_active_subscriptions(session: Session) -> tuple[tuple[int, frozenset[str]], ...]:
    with session.no_autoflush:  # reading them must not flush the caller's work early
        rows = session.execute(
            select(WebhookSubscription.id, WebhookSubscription.event_types)
            .where(WebhookSubscription.active.is_(True))).all()
    return tuple((row.id, frozenset(row.event_types)) for row in rows)


# ----- sending, retries and replays -----

def claim(uow: UnitOfWork, delivery_id: int, now: datetime) -> Outgoing | None:
    """Take a pending, due delivery of an active subscription for sending; None otherwise.

    The delivery is leased to the caller for SENDING_LEASE (its next attempt moves past
    the lease), so a sweep or a duplicate job does not send it at the same time.
    """
    delivery = uow.session.get(WebhookDelivery, delivery_id, with_for_update=True,
                               populate_existing=True)
    if delivery is None or delivery.status != PENDING:
        return None
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
        return None
    subscription = uow.session.get(WebhookSubscription, delivery.subscription_id)
    if subscription is None or not subscription.active:
        return None
    delivery.next_attempt_at = now + SENDING_LEASE
    return Outgoing(delivery_id=delivery.id, url=subscription.url, secret=subscription.secret,
                    event_type=delivery.event_type, payload=dict(delivery.payload))


def record_attempt(uow: UnitOfWork, delivery_id: int, result: AttemptResult,
                   now: datetime) -> WebhookDelivery:
    """Record one attempt: delivered on a 2xx, else due again after BACKOFF, or failed.

    Raises:
        NotFoundError: no such delivery.
    """
    delivery = _locked_delivery(uow, delivery_id)
    if delivery.status != PENDING:  # decided meanwhile: this attempt changes nothing
        return delivery
    delivery.attempts += 1
    delivery.last_status_code = result.status_code
    delivery.last_response = _clip(result.response, MAX_RESPONSE_LENGTH)
    delivery.last_error = _clip(result.error, MAX_ERROR_LENGTH)
    if result.succeeded:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = DELIVERED, now, None
    elif delivery.attempts >= MAX_ATTEMPTS:
        delivery.status, delivery.next_attempt_at = FAILED, None
    else:
        delivery.next_attempt_at = now + BACKOFF[delivery.attempts - 1]
    return delivery


def replay(uow: UnitOfWork, actor: Actor, delivery_id: int) -> WebhookDelivery:
    """Send a delivery that was delivered or gave up again, with a fresh schedule of
    attempts.

    Raises:
        NotFoundError: no such delivery.
        InvalidTransitionError: it is still pending (being sent, or waiting for its next
            attempt): replaying it now could send it twice at once.
    """
    delivery = _locked_delivery(uow, delivery_id)
    if delivery.status == PENDING:
        raise InvalidTransitionError(PENDING, "replayed", None)
    delivery.status, delivery.attempts = PENDING, 0
    delivery.next_attempt_at, delivery.delivered_at = utcnow(), None
    uow.enqueue_after_commit(DELIVER_JOB, delivery.id)
    log.info("webhook delivery %s replayed by %s", delivery.id, actor.label)
    return delivery


def due_deliveries(uow: UnitOfWork, now: datetime, limit: int = 500) -> list[int]:
    """Return the pending deliveries of active subscriptions whose next attempt is due."""
    return list(uow.session.scalars(
        select(WebhookDelivery.id)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now,
               WebhookSubscription.active.is_(True))
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)))


def list_deliveries(uow: UnitOfWork, subscription_id: int, limit: int = 50,
                    before_id: int | None = None,
                    status: str | None = None) -> tuple[list[WebhookDelivery], int | None]:
    """Return one page of a subscription's deliveries, newest first, and the next cursor.

    Raises:
        NotFoundError: no such subscription.
    """
    get_subscription(uow, subscription_id)
    statement = (select(WebhookDelivery)
                 .where(WebhookDelivery.subscription_id == subscription_id)
                 .order_by(WebhookDelivery.id.desc()))
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status)
    if before_id is not None:
        statement = statement.where(WebhookDelivery.id < before_id)
    rows, next_before = fetch_page(uow.session, statement, limit, lambda row: row.id)
    return rows, next_before


def get_delivery(uow: UnitOfWork, delivery_id: int) -> WebhookDelivery:
    """Raises NotFoundError when there is no such delivery."""
    delivery = uow.session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFoundError("webhook delivery", delivery_id)
    return delivery


def _locked_delivery(uow: UnitOfWork, delivery_id: int) -> WebhookDelivery:
    delivery = uow.session.get(WebhookDelivery, delivery_id, with_for_update=True,
                               populate_existing=True)
    if delivery is None:
        raise NotFoundError("webhook delivery", delivery_id)
    return delivery


def _clip(text: str | None, limit: int) -> str | None:
    """Return text the database stores faithfully (no NUL), at most `limit` characters."""
    if text is None:
        return None
    return text.replace("\x00", "\ufffd")[:limit]
