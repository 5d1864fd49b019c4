"""The order's timeline: one entry per thing that happened to it, and the webhooks owed."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from engine.actors import Actor
from engine.iso import smallest_unit
from engine.ports import UnitOfWork
from engine.record import Order, OrderEvent, utcnow
from engine.webhooks import fan_out


def record_event(uow: UnitOfWork, order: Order, type: str, actor: Actor,
                 **data: Any) -> OrderEvent:
    """Append one entry to the order's timeline (the order counts as updated then);
    amounts (`Decimal`) are written with the decimals of the order's currency ("15.00" in
    BRL, "1500" in JPY)."""
    places = smallest_unit(order.currency)
    data = {name: str(value.quantize(places, rounding=ROUND_HALF_EVEN))
            if isinstance(value, Decimal) else value for name, value in data.items()}
    event = OrderEvent(order_id=order.id, type=type, actor_type=actor.type,
                       actor_id=actor.id, data=data, occurred_at=utcnow())
    uow.session.add(event)
    # what integrations sync by (`GET /orders?updated_from=`): anything on the timeline
    order.updated_at = event.occurred_at
    fan_out(uow, order, event)  # the webhooks owed for it, sent once the transaction commits
    return event
