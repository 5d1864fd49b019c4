"""Reading orders: one, a page, a timeline; each through the one visibility rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, exists, func, select

from engine import visibility
from engine.actors import Actor
from engine.errors import (
    NotFoundError,
)
from engine.orders.locking import find_and_lock_order
from engine.paging import fetch_page
from engine.ports import UnitOfWork
from engine.record import Customer, Order, OrderEvent, OrderLine, Shipment
from engine.status import OrderStatus


@dataclass(frozen=True)
class OrderQuery:
    # Each filter matches any of its values; an empty one does not filter.
    status: tuple[OrderStatus, ...] = ()
    channel: tuple[str, ...] = ()
    customer_id: tuple[str, ...] = ()
    sku: tuple[str, ...] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    channel_order_ref: tuple[str, ...] = ()
    tracking_number: tuple[str, ...] = ()  # of any of the order's shipments
    updated_from: datetime | None = None  # changed since (anything on its timeline)
    customer_name: str | None = None  # part of the customer's name, in any case
    limit: int = 50
    before_id: int | None = None  # the cursor: orders come newest first


@dataclass(frozen=True)
class OrderPage:
    orders: list[Order]
    next_before_id: int | None


def get_order(uow: UnitOfWork, actor: Actor, order_id: int, lock: bool = False) -> Order:
    """Return the order if it exists and this actor may see it.

    With `lock`, the order's row is locked until the transaction ends, and read afresh.

    Raises:
        NotFoundError: also for another channel's order, so that its existence does not leak.
    """
    order = (find_and_lock_order(uow, order_id)
             if lock else uow.session.get(Order, order_id))
    if order is None or not visibility.may_see(uow, actor, order):
        raise NotFoundError("order", order_id)
    return order


def list_orders(uow: UnitOfWork, actor: Actor, query: OrderQuery) -> OrderPage:
    """Return one page of orders, newest first, and the cursor of the next page."""
    statement: Select[Order] = filter_orders(select(Order), actor, query).order_by(
        Order.id.desc())
    if query.before_id is not None:
        statement = statement.where(Order.id < query.before_id)
    orders, next_before = fetch_page(uow.session, statement, query.limit, lambda o: o.id)
    return OrderPage(orders, next_before)


Statement = TypeVar("Statement", bound=Select[Any])


def filter_orders(statement: Statement, actor: Actor, query: OrderQuery) -> Statement:
    """Narrow a select over `Order` to the orders the actor may see that match the query's
    filters (not its page: the limit and the cursor are the caller's)."""
    statement = statement.where(visibility.orders(actor))
    if query.status:
        statement = statement.where(Order.status.in_(query.status))
    if query.channel:
        statement = statement.where(Order.channel.in_(query.channel))
    if query.customer_id:
        statement = statement.where(Order.customer_id.in_(query.customer_id))
    if query.sku:
        # Correlated to the order only: the caller's select may read order lines too.
        statement = statement.where(exists().where(
            OrderLine.order_id == Order.id, OrderLine.sku.in_(query.sku)).correlate(Order))
    if query.created_from is not None:
        statement = statement.where(Order.created_at >= query.created_from)
    if query.created_to is not None:
        statement = statement.where(Order.created_at < query.created_to)
    if query.channel_order_ref:
        statement = statement.where(Order.channel_order_ref.in_(query.channel_order_ref))
    if query.tracking_number:
        statement = statement.where(exists().where(
            Shipment.order_id == Order.id, Shipment.tracking_number.in_(query.tracking_number))
            .correlate(Order))
    if query.updated_from is not None:
        statement = statement.where(Order.updated_at >= query.updated_from)
    if query.customer_name:
        statement = statement.where(Order.customer_id.in_(select(Customer.id).where(
            func.lower(Customer.name).contains(query.customer_name.lower(), autoescape=True))))
    return statement


def order_events(uow: UnitOfWork, actor: Actor, order_id: int) -> list[OrderEvent]:
    """Return the order's timeline, oldest first."""
    order = get_order(uow, actor, order_id)
    return list(uow.session.scalars(
        select(OrderEvent).where(OrderEvent.order_id == order.id, visibility.events(actor))
        .order_by(OrderEvent.id)
    ))


def lock_visible_order(uow: UnitOfWork, actor: Actor, order_id: int) -> Order:
    return get_order(uow, actor, order_id, lock=True)
