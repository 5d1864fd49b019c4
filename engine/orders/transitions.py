"""The one way an order changes status: the transition table checked, the timeline told.

Every status an order takes is assigned here (`move`, `progress`, and `holds.put_on_hold`
through `enter_hold`), so what goes with a transition (the check, `held_from`, the time,
the event) is written once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from engine.actors import Actor
from engine.orders.timeline import record_event
from engine.ports import UnitOfWork
from engine.record import Order, OrderEvent, utcnow
from engine.status import OrderStatus, can_transition, check_transition

STEP_WHILE_HELD = "order.step_while_held"
HOLD_RELEASED = "order.hold_released"


def held_from(order: Order) -> OrderStatus | None:
    """The step a held order was held at (None when it is not on hold)."""
    return OrderStatus(order.held_from) if order.held_from else None


def effective_status(order: Order) -> OrderStatus:
    """Where the order is in its life, also while on hold."""
    if order.status is OrderStatus.ON_HOLD and order.held_from:
        return OrderStatus(order.held_from)
    return order.status


def check_move(order: Order, target: OrderStatus) -> None:
    """Refuse a move the transition table does not allow (a held order: from its step).

    Raises:
        InvalidTransitionError: with the current and requested status.
    """
    check_transition(order.status, target, held_from(order))


def may_move(order: Order, target: OrderStatus) -> bool:
    """Tell whether the transition table allows the move."""
    return can_transition(order.status, target, held_from(order))


def move(uow: UnitOfWork, actor: Actor, order: Order, target: OrderStatus, event_type: str,
         **data: Any) -> OrderEvent:
    """Move the order to `target` and record why: one timeline event.

    Leaving a hold forgets the step it was held at.

    Raises:
        InvalidTransitionError: the table does not allow it.
    """
    previous = order.status
    check_move(order, target)
    order.status, order.updated_at = target, utcnow()
    if target is not OrderStatus.ON_HOLD:
        order.held_from = None
    return record_event(uow, order, event_type, actor, previous_status=previous.value,
                        status=target.value, **data)


def enter_hold(order: Order) -> OrderStatus:
    """Put the order in status on_hold, remembering its step; return the status it had.

    An order already on hold stays as it is. Only `holds.put_on_hold` calls this: a hold
    always comes with its Hold rows and its event.

    Raises:
        InvalidTransitionError: the order may not be held (it is closed, or has shipped).
    """
    previous = order.status
    if previous is OrderStatus.ON_HOLD:
        return previous
    check_transition(previous, OrderStatus.ON_HOLD)
    order.status, order.held_from, order.updated_at = (OrderStatus.ON_HOLD, previous.value,
                                                       utcnow())
    return previous


def may_hold(order: Order) -> bool:
    """Tell whether the order can take a hold (it may be held, or is on hold already)."""
    return (order.status is OrderStatus.ON_HOLD
            or can_transition(order.status, OrderStatus.ON_HOLD))


def progress(uow: UnitOfWork, actor: Actor, order: Order, target: OrderStatus,
             event_type: str, **data: Any) -> OrderEvent | None:
    """Move the order on to `target` as its round trip advances. An order on hold stays on
    hold: the hold remembers the new step, and releasing it returns there."""
    if order.status is not OrderStatus.ON_HOLD:
        return move(uow, actor, order, target, event_type, **data)
    previous = effective_status(order)
    check_transition(previous, target)
    order.held_from, order.updated_at = target.value, utcnow()
    # recorded as a step taken on hold: announced (webhooks) once the hold is released
    return record_event(uow, order, STEP_WHILE_HELD, actor, step=event_type,
                        previous_status=previous.value, status=target.value, on_hold=True,
                        **data)


def steps_while_held(uow: UnitOfWork, order: Order) -> list[OrderEvent]:
    """The steps the order took during its current hold, oldest first."""
    since = uow.session.scalar(select(func.max(OrderEvent.id)).where(
        OrderEvent.order_id == order.id, OrderEvent.type == HOLD_RELEASED)) or 0
    return list(uow.session.scalars(select(OrderEvent).where(
        OrderEvent.order_id == order.id, OrderEvent.type == STEP_WHILE_HELD,
        OrderEvent.id > since).order_by(OrderEvent.id)))


def announce(uow: UnitOfWork, actor: Actor, order: Order,
             steps: list[OrderEvent]) -> None:
    """Announce steps taken on hold, each as it happened (the webhooks they owe go out
    now), once the order has left its hold."""
    for step in steps:
        record_event(uow, order, step.data["step"], actor,
                     previous_status=step.data["previous_status"], status=step.data["status"],
                     taken_on_hold_at=step.occurred_at.isoformat())
