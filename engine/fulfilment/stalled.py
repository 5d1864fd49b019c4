"""Work a dead worker left undone, found so a sweep can hand it out again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update

from engine.job_names import (
    BILLING_WAVE_JOB,
    COMPLETE_JOB,
    LABEL_WAVE_JOB,
    RELEASE_WAVE_JOB,
    WITHDRAW_JOB,
)
from engine.ports import (
    JobArg,
    UnitOfWork,
)
from engine.record import (
    FulfilmentGroup,
    Order,
    Shipment,
)
from engine.status import OrderStatus


def stalled_work(uow: UnitOfWork, before: datetime) -> list[tuple[str, tuple[JobArg, ...]]]:
    """Jobs whose work is still undone although it was asked for before `before`: a
    worker died mid-job, or a job was lost. Running them again is safe (each is
    idempotent), so a periodic sweep hands them out again; the claims of wave jobs
    older than `before` are a dead job's, and are given back."""
    live = Shipment.order_id.in_(select(Order.id).where(
        Order.status.not_in((OrderStatus.ON_HOLD, OrderStatus.CANCELLED))))
    releases = list(uow.session.scalars(select(FulfilmentGroup.location_code).distinct().where(
        FulfilmentGroup.ready_at < before, FulfilmentGroup.wms_reference.is_(None),
        FulfilmentGroup.status == "allocated", FulfilmentGroup.wave_claimed_at < before)))
    uow.session.execute(update(FulfilmentGroup).where(
        FulfilmentGroup.wave_claimed_at < before, FulfilmentGroup.wms_reference.is_(None))
        .values(wave_claimed_at=None))
    labels = list(uow.session.scalars(select(Shipment.carrier_code).distinct()
                                      .join(FulfilmentGroup).where(
        Shipment.tracking_number.is_(None), Shipment.carrier_code.is_not(None),
        Shipment.shipped_at.is_(None), Shipment.created_at < before,
        FulfilmentGroup.status != "cancelled", live)))
    uow.session.execute(update(Shipment).where(Shipment.label_claimed_at < before,
                                               Shipment.tracking_number.is_(None))
                        .values(label_claimed_at=None))
    bills = uow.session.scalar(select(func.count(Shipment.id)).where(
        Shipment.shipped_at < before, Shipment.invoiced_at.is_(None), live))
    uow.session.execute(update(Shipment).where(Shipment.billing_claimed_at < before,
                                               Shipment.invoiced_at.is_(None))
                        .values(billing_claimed_at=None))
    done = uow.session.scalars(select(Order.id).where(
        Order.status == OrderStatus.DELIVERED, Order.updated_at < before,
        ~select(Shipment.id).where(Shipment.order_id == Order.id,
                                   Shipment.invoiced_at.is_(None)).exists()))
    # held groups the warehouse still has: the job asking for them back was lost
    withdrawals = uow.session.scalars(select(FulfilmentGroup.id).where(
        FulfilmentGroup.status == "on_hold", FulfilmentGroup.wms_reference.is_not(None),
        FulfilmentGroup.released_at < before))
    work: list[tuple[str, tuple[JobArg, ...]]] = [
        (RELEASE_WAVE_JOB, (location,)) for location in sorted(releases)]
    work += [(WITHDRAW_JOB, (group_id,)) for group_id in withdrawals]
    work += [(LABEL_WAVE_JOB, (carrier,)) for carrier in sorted(filter(None, labels))]
    work += [(BILLING_WAVE_JOB, ())] if bills else []
    work += [(COMPLETE_JOB, (order_id,)) for order_id in done]
    return work
