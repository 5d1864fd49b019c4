"""A held order's fulfilment: what a hold stops, and resuming exactly that once it is released."""

from __future__ import annotations

from sqlalchemy import select

from engine.fulfilment.billing import request_billing
from engine.fulfilment.labels import request_label
from engine.fulfilment.release import ready_for_wave
from engine.job_names import (
    COMPLETE_JOB,
    NOTIFY_JOB,
)
from engine.orders.locking import lock_order
from engine.ports import (
    UnitOfWork,
)
from engine.record import (
    Order,
    Shipment,
)
from engine.status import OrderStatus


def on_hold(uow: UnitOfWork, order_id: int) -> bool:
    """Tell, under the order's lock, whether it is on hold: a job that bills checks it
    before each call, so a hold placed while it runs stops what is left of it."""
    order = lock_order(uow, order_id)
    return order.status is OrderStatus.ON_HOLD


def resume_held_work(uow: UnitOfWork, order: Order) -> None:
    """Hand out again what a hold stopped, once the order is off hold: groups withdrawn from
    their warehouses go in the next wave again (a group the warehouse still has stays there),
    packed packages get their labels, shipped ones are billed, and the customer hears
    what shipped or arrived meanwhile. Every job runs once per key, so work that was never
    stopped is not done twice."""
    for group in order.fulfilment_groups:
        if group.status == "on_hold":
            group.status = "allocated" if group.wms_reference is None else "released"
            if group.wms_reference is None:
                ready_for_wave(uow, group)
    shipments = list(uow.session.scalars(select(Shipment).where(
        Shipment.order_id == order.id).order_by(Shipment.id)))
    for shipment in shipments:
        if shipment.shipped_at is None:
            if shipment.group.status != "cancelled":
                request_label(uow, shipment)
            continue
        if shipment.invoiced_at is None:
            request_billing(uow)
        uow.enqueue_after_commit(NOTIFY_JOB, order.id, f"shipped:{shipment.id}")
        if shipment.delivered_at is not None:
            uow.enqueue_after_commit(NOTIFY_JOB, order.id, f"delivered:{shipment.id}")
    if order.status is OrderStatus.DELIVERED:
        uow.enqueue_after_commit(COMPLETE_JOB, order.id)
