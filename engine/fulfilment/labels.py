"""Carrier labels for packed packages, bought once per package, in waves per carrier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.orm import joinedload

from engine.actors import Actor
from engine.effects import record_effect
from engine.fulfilment.common import ship_to_address
from engine.fulfilment.waves import WavePolicy, nudge
from engine.job_names import LABEL_WAVE_JOB
from engine.orders.locking import lock_orders
from engine.orders.timeline import record_event
from engine.ports import (
    LabelRequest,
    UnitOfWork,
)
from engine.record import (
    FulfilmentGroup,
    Order,
    Shipment,
)
from engine.status import GroupStatus, OrderStatus


def label_key(shipment_id: int) -> str:
    return f"carrier-label-shipment-{shipment_id}"


def request_label(uow: UnitOfWork, shipment: Shipment) -> None:
    """Put a packed package in its carrier's next label wave (one without a carrier, or
    with a tracking number of its own, needs none)."""
    if shipment.tracking_number is None and shipment.carrier_code is not None:
        nudge(uow, LABEL_WAVE_JOB, shipment.carrier_code)


def _waiting(policy: WavePolicy, now: datetime) -> ColumnElement[bool]:
    """Packages to label: packed, not shipped, no label yet, their group not cancelled and
    their order not on hold (releasing the hold asks again), and no live job has them."""
    return and_(Shipment.tracking_number.is_(None), Shipment.carrier_code.is_not(None),
                Shipment.service_code.is_not(None), Shipment.shipped_at.is_(None),
                FulfilmentGroup.status != GroupStatus.CANCELLED,
                Order.status.not_in((OrderStatus.ON_HOLD, OrderStatus.CANCELLED)),
                policy.unclaimed(Shipment.label_claimed_at, now))


def due_label_waves(uow: UnitOfWork, policy: WavePolicy, now: datetime,
                    carrier_code: str | None = None) -> list[tuple[str, int]]:
    """The carriers whose label wave is due (a package packed the period ago, or a
    wave's size waiting), with how many packages to label now."""
    statement = (select(Shipment.carrier_code, func.count(),
                        func.count().filter(Shipment.created_at <= policy.overdue_before(now)))
                 .join(FulfilmentGroup, FulfilmentGroup.id == Shipment.group_id)
                 .join(Order, Order.id == Shipment.order_id).where(_waiting(policy, now))
                 .group_by(Shipment.carrier_code).order_by(Shipment.carrier_code))
    if carrier_code is not None:
        statement = statement.where(Shipment.carrier_code == carrier_code)
    due = [(code, policy.to_cut(waiting, overdue))
           for code, waiting, overdue in uow.session.execute(statement)]
    return [(code, count) for code, count in due if code is not None and count]


def claim_label_wave(uow: UnitOfWork, carrier_code: str, size: int, policy: WavePolicy,
                     now: datetime) -> list[LabelRequest]:
    """Claim the next label wave of a carrier, oldest packages first, at most `size`;
    return what to ask the carrier for each (its key: `label_key`)."""
    ids = list(uow.session.scalars(
        select(Shipment.id).join(FulfilmentGroup, FulfilmentGroup.id == Shipment.group_id)
        .join(Order, Order.id == Shipment.order_id)
        .where(Shipment.carrier_code == carrier_code, _waiting(policy, now))
        .order_by(Shipment.id).limit(size)
        .with_for_update(skip_locked=True, of=(Shipment.__table__, Order.__table__))))
    if not ids:
        return []
    uow.session.execute(update(Shipment).where(Shipment.id.in_(ids))
                        .values(label_claimed_at=now))
    shipments = uow.session.scalars(
        select(Shipment).where(Shipment.id.in_(ids)).order_by(Shipment.id)
        .options(joinedload(Shipment.group).joinedload(FulfilmentGroup.order))
        .execution_options(populate_existing=True))
    requests = []
    for shipment in shipments:
        assert shipment.carrier_code is not None and shipment.service_code is not None
        value = sum((line.order_line.unit_price * line.quantity for line in shipment.lines),
                    Decimal(0))
        requests.append(LabelRequest(
            shipment_id=shipment.id, carrier_code=shipment.carrier_code,
            service_code=shipment.service_code, origin_location=shipment.location_code,
            ship_to=ship_to_address(shipment.group.order), weight_kg=shipment.weight_kg,
            declared_value=value))
    return requests


def unclaim_labels(uow: UnitOfWork, shipment_ids: Sequence[int]) -> None:
    """Give back packages whose label was not bought: the next wave asks again."""
    uow.session.execute(update(Shipment).where(Shipment.id.in_(shipment_ids))
                        .values(label_claimed_at=None))


@dataclass(frozen=True)
class Labelled:
    shipment_id: int
    tracking_number: str
    cost: Decimal


def record_labels(uow: UnitOfWork, actor: Actor, labelled: Sequence[Labelled]) -> int:
    """Record the labels of a wave (orders locked first, in key order); returns how many
    were new (a package labelled already, by a job run twice, is skipped)."""
    ids = [item.shipment_id for item in labelled]
    orders = lock_orders(uow, uow.session.scalars(select(Shipment.order_id).where(
        Shipment.id.in_(ids))), with_groups=True)
    shipments = {shipment.id: shipment for shipment in uow.session.scalars(
        select(Shipment).where(Shipment.id.in_(ids)).order_by(Shipment.id)
        .with_for_update().execution_options(populate_existing=True))}
    recorded = 0
    for item in labelled:
        shipment = shipments.get(item.shipment_id)
        if shipment is None or shipment.tracking_number is not None:
            continue
        order = orders[shipment.order_id]
        shipment.tracking_number, shipment.label_cost = item.tracking_number, item.cost
        shipment.label_claimed_at = None
        record_effect(uow, label_key(shipment.id), "carrier", "label", order.id,
                      item.tracking_number, item.cost)
        record_event(uow, order, "shipment.labelled", actor, shipment=shipment.id,
                     carrier=shipment.carrier_code, tracking_number=item.tracking_number,
                     cost=item.cost)
        recorded += 1
    return recorded
