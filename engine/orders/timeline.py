"""The order's timeline: one entry per thing that happened to it, and the webhooks owed."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from engine.actors import Actor
from engine.iso import smallest_unit
from engine.ports import UnitOfWork
from engine.record import Order, OrderEvent, utcnow
from engine.webhooks import fan_out


def command_time(uow: UnitOfWork) -> datetime:
    """The time of the command this transaction carries out, read once: what it records
    happens then, as PostgreSQL's `now()` is the transaction's. So an order that a
    command captures and takes through every stage is written as updated once."""
    transaction = uow.session.get_transaction()
    if transaction is None:  # nothing asked of the database yet: no command to share with
        return utcnow()
    found = uow.session.info.get(_COMMAND_TIME)
    if found is None or found[0] is not transaction:
        found = uow.session.info[_COMMAND_TIME] = (transaction, utcnow())
    at: datetime = found[1]
    return at


_COMMAND_TIME = "command_time"


def record_event(uow: UnitOfWork, order: Order, type: str, actor: Actor,
                 **data: Any) -> OrderEvent:
    """Append one entry to the order's timeline, at the command's time (`command_time`);
    the order counts as updated then. Amounts (`Decimal`) are written with the decimals of
    the order's currency ("15.00" in BRL, "1500" in JPY)."""
    places = smallest_unit(order.currency)
    data = {name: str(value.quantize(places, rounding=ROUND_HALF_EVEN))
            if isinstance(value, Decimal) else value for name, value in data.items()}
    event = OrderEvent(order_id=order.id, type=type, actor_type=actor.type,
                       actor_id=actor.id, data=data, occurred_at=command_time(uow))
    uow.session.add(event)
    # what integrations sync by (`GET /orders?updated_from=`): anything on the timeline
    order.updated_at = event.occurred_at  # the same all command long: written once
    fan_out(uow, order, event)  # the webhooks owed for it, sent once the transaction commits
    return event
