"""The one rule for what an actor may see and change.

People (analyst, ops, admin) and the service's own jobs see everything. An integration
key sees only what it is bound to:

- a channel integration: its channel's orders, and everything hanging off them (holds,
  decisions, fulfilment groups, shipments, returns, ledger entries, simulations);
- a warehouse integration: the fulfilment groups, shipments, stock and stock movements of
  its locations;
- a carrier integration: the shipments (parcels) of its carriers.

Every read and write asks here, as a SQL clause or a check; what an actor may not see
does not exist for it (404), so an out-of-scope write never takes effect.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, false, select, true

from engine.actors import CARRIER, CHANNEL, EVERY, PEOPLE_ROLES, WAREHOUSE, Actor
from engine.errors import ForbiddenError, NotFoundError
from engine.ports import UnitOfWork
from engine.record import (
    FulfilmentGroup,
    Hold,
    Order,
    OrderEvent,
    OrderImport,
    Shipment,
    Simulation,
    StockMovement,
)

# Fields of a customer that decide what it may owe: set by ops and admin only.
FINANCE_FIELDS = ("credit_limit", "payment_terms")
FINANCE_ROLES = ("ops", "admin")


# What staff write about an order among themselves (who works a hold, their comments):
# people read it; an integration, even the order's own channel, does not.
STAFF_NOTES = ("hold.assigned", "hold.commented")


def sees_everything(actor: Actor) -> bool:
    """Tell whether the actor is a person's role or the service itself (no binding)."""
    return actor.role in PEOPLE_ROLES


def _among(actor: Actor, column: Any) -> ColumnElement[bool]:
    if EVERY in actor.scope:
        return true()
    return column.in_(sorted(actor.scope)) if actor.scope else false()


def orders(actor: Actor) -> ColumnElement[bool]:
    """A clause over `Order`: the orders this actor may see."""
    if sees_everything(actor):
        return true()
    if actor.role == CHANNEL and actor.channel is not None:
        return Order.channel == actor.channel
    if actor.role == WAREHOUSE:
        return Order.id.in_(select(FulfilmentGroup.order_id)
                            .where(_among(actor, FulfilmentGroup.location_code)))
    if actor.role == CARRIER:
        return Order.id.in_(select(Shipment.order_id).where(_among(actor, Shipment.carrier_code)))
    return false()


def events(actor: Actor) -> ColumnElement[bool]:
    """The events of an order's timeline this actor reads: all but staff notes, for an
    integration."""
    return true() if sees_everything(actor) else OrderEvent.type.not_in(STAFF_NOTES)


def reads_staff_notes(actor: Actor) -> bool:
    """Tell whether the actor reads staff notes (a hold's comments, its assignment)."""
    return sees_everything(actor)


def of_orders(actor: Actor, order_id: Any) -> ColumnElement[bool]:
    """A clause over any row with an order id: rows of orders this actor may see."""
    if sees_everything(actor):
        return true()
    visible: ColumnElement[bool] = order_id.in_(select(Order.id).where(orders(actor)))
    return visible


def groups(actor: Actor) -> ColumnElement[bool]:
    """A clause over `FulfilmentGroup`: the groups this actor may see and confirm."""
    if actor.role == WAREHOUSE:
        return _among(actor, FulfilmentGroup.location_code)
    if actor.role == CARRIER:
        return _among(actor, FulfilmentGroup.carrier_code)
    return of_orders(actor, FulfilmentGroup.order_id)


def shipments(actor: Actor) -> ColumnElement[bool]:
    """A clause over `Shipment`: the parcels this actor may see and report on."""
    if actor.role == WAREHOUSE:
        return _among(actor, Shipment.location_code)
    if actor.role == CARRIER:
        return _among(actor, Shipment.carrier_code)
    return of_orders(actor, Shipment.order_id)


def locations(actor: Actor, location_code: Any) -> ColumnElement[bool]:
    """A clause over a location code column: the stock this actor may read.

    A channel reads every location's levels (what it may promise); only a warehouse
    integration is held to its own locations; carriers read no stock.
    """
    if sees_everything(actor) or actor.role == CHANNEL:
        return true()
    if actor.role == WAREHOUSE:
        return _among(actor, location_code)
    return false()


def movements(actor: Actor) -> ColumnElement[bool]:
    """A clause over `StockMovement`: a warehouse's own locations, a channel's own orders."""
    if sees_everything(actor):
        return true()
    if actor.role == WAREHOUSE:
        return _among(actor, StockMovement.location_code)
    return of_orders(actor, StockMovement.order_id)


def holds(actor: Actor) -> ColumnElement[bool]:
    """A clause over `Hold`: holds of orders this actor may see."""
    return of_orders(actor, Hold.order_id)


def simulations(actor: Actor) -> ColumnElement[bool]:
    """A clause over `Simulation`: a channel's own, or all for people."""
    if sees_everything(actor):
        return true()
    if actor.role == CHANNEL and actor.channel is not None:
        return Simulation.channel == actor.channel
    return false()


def may_see_order(uow: UnitOfWork, actor: Actor, order_id: int) -> bool:
    """Tell whether the order exists and this actor may see it."""
    return uow.session.scalar(
        select(Order.id).where(Order.id == order_id, orders(actor))) is not None


def check_order(uow: UnitOfWork, actor: Actor, order_id: int) -> None:
    """Raises: NotFoundError: no such order, or not one this actor may see."""
    if not may_see_order(uow, actor, order_id):
        raise NotFoundError("order", order_id)


def check_hold(uow: UnitOfWork, actor: Actor, hold_id: int) -> None:
    """Raises: NotFoundError: no such hold, or one of an order this actor may not see."""
    if uow.session.scalar(select(Hold.id).where(Hold.id == hold_id, holds(actor))) is None:
        raise NotFoundError("hold", hold_id)


def may_work_at(actor: Actor, location_code: str) -> bool:
    """Tell whether the actor may change stock or take work at a location."""
    if sees_everything(actor):
        return True
    return actor.role == WAREHOUSE and (EVERY in actor.scope or location_code in actor.scope)


def check_location(actor: Actor, location_code: str) -> None:
    """Raises: NotFoundError: a location this actor may not work at."""
    if not may_work_at(actor, location_code):
        raise NotFoundError("location", location_code)


def check_finance_fields(actor: Actor, sent: Iterable[str]) -> None:
    """Refuse a change to a customer's finance fields from anyone but ops and admin.

    Raises:
        ForbiddenError: a finance field was sent by another role.
    """
    named = sorted(set(sent) & set(FINANCE_FIELDS))
    if named and actor.role not in FINANCE_ROLES:
        raise ForbiddenError(f"only ops and admin may set {', '.join(named)} of a customer; "
                             f"role {actor.role!r} may not")


def may_see(uow: UnitOfWork, actor: Actor, order: Order) -> bool:
    """Tell whether this actor may see an order already loaded."""
    if sees_everything(actor):
        return True
    if actor.role == CHANNEL:
        return actor.channel is not None and order.channel == actor.channel
    return may_see_order(uow, actor, order.id)


def check_simulation(uow: UnitOfWork, actor: Actor, simulation_id: int) -> None:
    """Raises: NotFoundError: no such simulation, or another channel's."""
    if uow.session.scalar(select(Simulation.id).where(
            Simulation.id == simulation_id, simulations(actor))) is None:
        raise NotFoundError("simulation", simulation_id)


def imports(actor: Actor) -> ColumnElement[bool]:
    """A clause over `OrderImport`: a channel's own order imports, or all for people."""
    if sees_everything(actor):
        return true()
    if actor.role == CHANNEL and actor.channel is not None:
        return OrderImport.channel == actor.channel
    return false()


def check_import(uow: UnitOfWork, actor: Actor, import_id: int) -> None:
    """Raises: NotFoundError: no such order import, or another channel's."""
    if uow.session.scalar(select(OrderImport.id).where(
            OrderImport.id == import_id, imports(actor))) is None:
        raise NotFoundError("import", import_id)
