"""What the carrier tells us: in transit, out for delivery, delivered, exceptions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from engine import visibility
from engine.actors import Actor
from engine.errors import (
    NotFoundError,
    NotReadyError,
    OmsError,
    one_of_batch,
)
from engine.fulfilment.billing import complete_if_done
from engine.fulfilment.common import (
    PROGRESS,
    Applied,
    Seen,
    each_on_its_own,
    progress_through,
    remember_event,
    repeat_of,
    seen_events,
)
from engine.job_names import (
    NOTIFY_JOB,
)
from engine.orders.locking import lock_orders
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


@dataclass
class _Read:
    """What a batch of tracking events works on, read once for the whole batch and locked
    in the one lock order: its orders, then their shipments, in key order."""

    parcels: dict[str, Shipment]  # by tracking number: only those the actor may see
    orders: dict[int, Order]
    shipments: dict[int, list[Shipment]]  # every shipment of each order, by order id
    seen: dict[str, Seen]


def apply_tracking_event(uow: UnitOfWork, actor: Actor, event: TrackingEvent,
                         payload: dict[str, Any]) -> Applied:
    """Apply a carrier's tracking event once, never moving the shipment backwards (a batch
    of one).

    Raises:
        NotFoundError: no shipment has this tracking number.
    """
    return one_of_batch(apply_tracking_events(uow, actor, [(event, payload)]))


def apply_tracking_events(uow: UnitOfWork, actor: Actor,
                          events: Sequence[tuple[TrackingEvent, dict[str, Any]]]
                          ) -> list[Applied | OmsError]:
    """Apply a batch of tracking events, each once and each on its own: the parcels they
    name are read in one query per kind, then each event is applied in its own savepoint,
    in order; one refused (an unknown parcel, one not shipped yet...) answers its error and
    the others stand. `payload`: the event as validated, kept to recognise a repeat."""
    if not events:
        return []
    read = _read(uow, actor, [event for event, _ in events])
    return each_on_its_own(uow, events, lambda item: _apply(uow, actor, read, *item),
                           lambda: None)  # nothing it read is made by an event


def _read(uow: UnitOfWork, actor: Actor, events: list[TrackingEvent]) -> _Read:
    visible = {number: order_id for number, order_id in uow.session.execute(
        select(Shipment.tracking_number, Shipment.order_id).where(
            Shipment.tracking_number.in_(sorted({event.tracking_number for event in events})),
            visibility.shipments(actor)))}
    orders = lock_orders(uow, visible.values())  # twins of one event queue here
    shipments: dict[int, list[Shipment]] = {order_id: [] for order_id in orders}
    if orders:
        for shipment in uow.session.scalars(
                select(Shipment).where(Shipment.order_id.in_(sorted(orders)))
                .order_by(Shipment.id).with_for_update()
                .execution_options(populate_existing=True)):
            shipments[shipment.order_id].append(shipment)
    parcels = {shipment.tracking_number: shipment for listed in shipments.values()
               for shipment in listed
               if shipment.tracking_number is not None and shipment.tracking_number in visible}
    return _Read(parcels, orders, shipments,
                 seen_events(uow, "carrier", (event.event_id for event in events)))


def _apply(uow: UnitOfWork, actor: Actor, read: _Read, event: TrackingEvent,
           payload: dict[str, Any]) -> Applied:
    shipment = read.parcels.get(event.tracking_number)
    if shipment is None:
        # another carrier's parcel is, for this carrier, no parcel at all
        raise NotFoundError("shipment with tracking number", event.tracking_number)
    order = read.orders[shipment.order_id]
    seen = repeat_of(read.seen, "carrier", event.event_id, payload)
    if seen is not None:
        return Applied("duplicate", seen.order_id, seen.detail, shipment.id)
    if shipment.shipped_at is None:  # the warehouse's confirmation is on its way
        raise NotReadyError(f"shipment {event.tracking_number} has not been confirmed "
                            "shipped by the warehouse yet")
    if shipment.delivered_at is not None or (
            PROGRESS[event.status] <= PROGRESS[shipment.status] and event.status != "exception"):
        return remember_event(uow, read.seen, "carrier", event.event_id, event.status, order,
                              payload, "ignored", f"the shipment is already {shipment.status}",
                              shipment.id)
    shipment.status = event.status
    record_event(uow, order, f"shipment.{event.status}", actor, shipment=shipment.id,
                 tracking_number=shipment.tracking_number, detail=event.detail,
                 occurred_at=event.occurred_at.isoformat())
    if event.status == "delivered":
        _deliver(uow, actor, order, shipment, event.occurred_at, read.shipments[order.id])
    return remember_event(uow, read.seen, "carrier", event.event_id, event.status, order,
                          payload, "applied", None, shipment.id)


def _deliver(uow: UnitOfWork, actor: Actor, order: Order, shipment: Shipment,
             at: datetime, shipments: list[Shipment]) -> None:
    shipment.delivered_at = at
    for line in shipment.lines:
        line.order_line.quantity_delivered += line.quantity
    if order.status is not OrderStatus.ON_HOLD:  # else told once the hold is released
        uow.enqueue_after_commit(NOTIFY_JOB, order.id, f"delivered:{shipment.id}")
    if effective_status(order) is OrderStatus.SHIPPED and all(
            line.quantity_delivered + line.quantity_cancelled == line.quantity_ordered
            for line in order.lines):
        progress_through(uow, actor, order, OrderStatus.DELIVERED, "order.delivered")
    complete_if_done(uow, actor, order, shipments)


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
