"""What the carrier tells us: in transit, out for delivery, delivered, exceptions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from engine import visibility
from engine.actors import Actor
from engine.errors import (
    NotFoundError,
    NotReadyError,
)
from engine.fulfilment.billing import complete_if_done
from engine.fulfilment.common import PROGRESS, Applied, progress_through, remember_event, seen_event
from engine.job_names import (
    NOTIFY_JOB,
)
from engine.orders.locking import lock_order
from engine.orders.timeline import record_event
from engine.orders.transitions import effective_status
from engine.ports import (
    UnitOfWork,
)
from engine.record import (
    Order,
    Shipment,
)
from engine.status import OrderStatus


@dataclass(frozen=True)
class TrackingEvent:
    event_id: str
    tracking_number: str
    status: str  # in_transit, out_for_delivery, delivered, exception
    occurred_at: datetime
    detail: str | None = None


def apply_tracking_event(uow: UnitOfWork, actor: Actor, event: TrackingEvent,
                         payload: dict[str, Any]) -> Applied:
    """Apply a carrier's tracking event once, never moving the shipment backwards.

    Raises:
        NotFoundError: no shipment has this tracking number.
    """
    shipment = uow.session.scalars(select(Shipment).where(
        Shipment.tracking_number == event.tracking_number, visibility.shipments(actor))).first()
    if shipment is None:
        # another carrier's parcel is, for this carrier, no parcel at all
        raise NotFoundError("shipment with tracking number", event.tracking_number)
    order = lock_order(uow, shipment.order_id)
    seen = seen_event(uow, "carrier", event.event_id, payload)
    if seen is not None:
        return Applied("duplicate", seen.order_id, seen.detail, shipment.id)
    uow.session.refresh(shipment, with_for_update=True)
    if shipment.shipped_at is None:  # the warehouse's confirmation is on its way
        raise NotReadyError(f"shipment {event.tracking_number} has not been confirmed "
                            "shipped by the warehouse yet")
    if shipment.delivered_at is not None or (
            PROGRESS[event.status] <= PROGRESS[shipment.status] and event.status != "exception"):
        return remember_event(uow, "carrier", event.event_id, event.status, order, payload,
                         "ignored", f"the shipment is already {shipment.status}", shipment.id)
    shipment.status = event.status
    record_event(uow, order, f"shipment.{event.status}", actor, shipment=shipment.id,
                 tracking_number=shipment.tracking_number, detail=event.detail,
                 occurred_at=event.occurred_at.isoformat())
    if event.status == "delivered":
        _deliver(uow, actor, order, shipment, event.occurred_at)
    return remember_event(uow, "carrier", event.event_id, event.status, order, payload, "applied",
                     None, shipment.id)


def _deliver(uow: UnitOfWork, actor: Actor, order: Order, shipment: Shipment,
             at: datetime) -> None:
    shipment.delivered_at = at
    for line in shipment.lines:
        line.order_line.quantity_delivered += line.quantity
    if order.status is not OrderStatus.ON_HOLD:  # else told once the hold is released
        uow.enqueue_after_commit(NOTIFY_JOB, order.id, f"delivered:{shipment.id}")
    if effective_status(order) is OrderStatus.SHIPPED and all(
            line.quantity_delivered + line.quantity_cancelled == line.quantity_ordered
            for line in order.lines):
        progress_through(uow, actor, order, OrderStatus.DELIVERED, "order.delivered")
    complete_if_done(uow, actor, order)


def in_transit(uow: UnitOfWork, carriers: set[str],
               limit: int = 1000) -> list[tuple[str, str]]:
    """(carrier, tracking number) of shipments of these carriers not yet delivered, the
    longest on the road first."""
    if not carriers:
        return []
    rows = uow.session.execute(select(Shipment.carrier_code, Shipment.tracking_number).where(
        Shipment.carrier_code.in_(carriers), Shipment.shipped_at.is_not(None),
        Shipment.delivered_at.is_(None), Shipment.tracking_number.is_not(None))
        .order_by(Shipment.shipped_at).limit(limit))
    return [(carrier, tracking) for carrier, tracking in rows if carrier and tracking]
