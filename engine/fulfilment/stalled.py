"""Work a dead worker left undone, found so a sweep can hand it out again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from engine.job_names import (
    COMPLETE_JOB,
    INVOICE_JOB,
    LABEL_JOB,
    WITHDRAW_JOB,
)
from engine.ports import (
    UnitOfWork,
)
from engine.record import (
    FulfilmentGroup,
    Order,
    Shipment,
)
from engine.status import OrderStatus


def stalled_work(uow: UnitOfWork, before: datetime) -> list[tuple[str, int]]:
    """Jobs whose work is still undone although it was asked for before `before`: a
    worker died mid-job, or a job was lost. Running them again is safe (each is
    idempotent), so a periodic sweep hands them out again."""
    # groups waiting to be released are the periodic wave's (a dead wave job's claim
    # lapses), so they are not handed out here
    live = Shipment.order_id.in_(select(Order.id).where(
        Order.status.not_in((OrderStatus.ON_HOLD, OrderStatus.CANCELLED))))
    labels = uow.session.scalars(select(Shipment.id).join(FulfilmentGroup).where(
        Shipment.tracking_number.is_(None), Shipment.carrier_code.is_not(None),
        Shipment.shipped_at.is_(None), Shipment.created_at < before,
        FulfilmentGroup.status != "cancelled", live))
    bills = uow.session.scalars(select(Shipment.id).where(
        Shipment.shipped_at < before, Shipment.invoiced_at.is_(None), live))
    done = uow.session.scalars(select(Order.id).where(
        Order.status == OrderStatus.DELIVERED, Order.updated_at < before,
        ~select(Shipment.id).where(Shipment.order_id == Order.id,
                                   Shipment.invoiced_at.is_(None)).exists()))
    # held groups the warehouse still has: the job asking for them back was lost
    withdrawals = uow.session.scalars(select(FulfilmentGroup.id).where(
        FulfilmentGroup.status == "on_hold", FulfilmentGroup.wms_reference.is_not(None),
        FulfilmentGroup.released_at < before))
    return ([(WITHDRAW_JOB, group_id) for group_id in withdrawals]
            + [(LABEL_JOB, shipment_id) for shipment_id in labels]
            + [(INVOICE_JOB, shipment_id) for shipment_id in bills]
            + [(COMPLETE_JOB, order_id) for order_id in done])
