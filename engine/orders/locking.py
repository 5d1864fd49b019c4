"""The one lock order: the order first, then its group or shipment (jobs never deadlock)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from engine.errors import (
    NotFoundError,
)
from engine.ports import (
    UnitOfWork,
)
from engine.record import (
    FulfilmentGroup,
    Order,
    Shipment,
)

T = TypeVar("T", FulfilmentGroup, Shipment)


def find_and_lock_order(uow: UnitOfWork, order_id: int) -> Order | None:
    """Lock the order's row for this transaction and read it afresh (None: no such order).

    Every lock on an order is taken here; whatever else a command locks (its groups,
    shipments, stock levels) it locks after the order.
    """
    return uow.session.get(Order, order_id, with_for_update=True, populate_existing=True)


def lock_order(uow: UnitOfWork, order_id: int) -> Order:
    """Lock the order's row (see `find_and_lock_order`).

    Raises:
        NotFoundError: no such order.
    """
    order = find_and_lock_order(uow, order_id)
    if order is None:
        raise NotFoundError("order", order_id)
    return order


def lock_with_order(uow: UnitOfWork, kind: type[T], row_id: int) -> tuple[Order, T] | None:
    """Lock the order a group or shipment belongs to, then the row: always in that order,
    as the event handlers do, so that jobs and events never deadlock."""
    row = uow.session.get(kind, row_id)
    if row is None:
        return None
    order = lock_order(uow, row.order_id)
    uow.session.refresh(row, with_for_update=True)
    return order, row


def lock_orders(uow: UnitOfWork, order_ids: Iterable[int],
                with_groups: bool = False) -> dict[int, Order]:
    """Lock many orders' rows in id order, in one statement, and read them afresh (a batch
    of events or a wave takes them all before anything else, so two batches never
    deadlock: the orders first, then their groups or shipments). `with_groups`: their
    fulfilment groups are read too, in one more statement."""
    wanted = sorted(set(order_ids))
    if not wanted:
        return {}
    statement = select(Order).where(Order.id.in_(wanted)).order_by(Order.id)
    if with_groups:
        statement = statement.options(selectinload(Order.fulfilment_groups))
    return {order.id: order for order in uow.session.scalars(
        statement.with_for_update().execution_options(populate_existing=True))}
