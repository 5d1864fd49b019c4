"""Carrier labels for packed packages, bought once per package."""

from __future__ import annotations

from decimal import Decimal

from engine.actors import Actor
from engine.effects import record_effect
from engine.fulfilment.common import ship_to_address
from engine.orders.locking import lock_with_order
from engine.orders.timeline import record_event
from engine.ports import (
    LabelRequest,
    UnitOfWork,
)
from engine.record import (
    Shipment,
)
from engine.status import OrderStatus


def label_key(shipment_id: int) -> str:
    return f"carrier-label-shipment-{shipment_id}"


def label_request(uow: UnitOfWork, shipment_id: int) -> LabelRequest | None:
    """What to ask the carrier for; None when the shipment has its label already, or its
    order is on hold (releasing the hold asks again)."""
    locked = lock_with_order(uow, Shipment, shipment_id)
    if locked is None:
        return None
    order, shipment = locked
    if (shipment.tracking_number is not None
            or shipment.carrier_code is None or shipment.service_code is None
            or shipment.group.status == "cancelled" or order.status is OrderStatus.ON_HOLD):
        return None
    value = sum((line.order_line.unit_price * line.quantity for line in shipment.lines),
                Decimal(0))
    return LabelRequest(shipment_id=shipment.id, carrier_code=shipment.carrier_code,
                        service_code=shipment.service_code,
                        origin_location=shipment.location_code, ship_to=ship_to_address(order),
                        weight_kg=shipment.weight_kg, declared_value=value)


def record_label(uow: UnitOfWork, actor: Actor, shipment_id: int, tracking_number: str,
                 cost: Decimal) -> bool:
    locked = lock_with_order(uow, Shipment, shipment_id)
    if locked is None or locked[1].tracking_number is not None:
        return False
    order, shipment = locked
    shipment.tracking_number, shipment.label_cost = tracking_number, cost
    record_effect(uow, label_key(shipment_id), "carrier", "label", order.id, tracking_number,
                  cost)
    record_event(uow, order, "shipment.labelled", actor, shipment=shipment.id,
                 carrier=shipment.carrier_code, tracking_number=tracking_number,
                 cost=cost)
    return True
