"""Stock per SKU per location, changed only through the movement ledger.

Every change to a level writes one movement with the change and the level after it, so a
level is always the sum of its ledger. Levels are changed under a row lock (taken in key
order, so two transactions never wait on each other in a circle), and the database's
CHECK constraints refuse a reservation above what is on hand even if code got it wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.exc import IntegrityError

from engine import visibility
from engine.actors import Actor
from engine.errors import (
    FieldProblem,
    InputValidationError,
    InsufficientStockError,
    NotFoundError,
    OmsError,
    UnknownReferencesError,
)
from engine.job_names import BACKORDER_JOB
from engine.paging import fetch_page
from engine.ports import UnitOfWork
from engine.record import (
    ExpectedSupply,
    Location,
    Order,
    OrderLine,
    Product,
    StockLevel,
    StockMovement,
    utcnow,
)
from engine.status import OrderStatus

Key = tuple[str, str]  # (sku, location code)
# Orders whose backordered units wait for stock (a held order waits for a person first).
WAITING_STATUSES = (OrderStatus.BACKORDERED, OrderStatus.ALLOCATED, OrderStatus.RELEASED,
                    OrderStatus.PARTIALLY_SHIPPED)
# Levels are INTEGER columns: refuse a change that would take one past this, not overflow.
MAX_ON_HAND = 10_000_000


@dataclass(frozen=True)
class StockChange:
    """One requested change: a count (absolute), an adjustment (relative) or a receipt."""

    kind: str  # count, adjustment, receipt
    sku: str
    location_code: str
    quantity: int  # count: the new on hand; adjustment: the change; receipt: units received
    reason: str | None = None
    reference: str | None = None
    safety_stock: int | None = None  # counts may also set the safety stock

    @property
    def key(self) -> Key:
        return self.sku, self.location_code


@dataclass(frozen=True)
class ChangeOutcome:
    level: StockLevel | None
    error: OmsError | None = None


def apply_change(uow: UnitOfWork, actor: Actor, change: StockChange) -> StockLevel:
    """Apply one stock change and return the level after it.

    Raises:
        UnknownReferencesError: the SKU or location does not exist.
        InsufficientStockError: the level would fall below what is reserved.
    """
    outcome = apply_changes(uow, actor, [change])[0]
    if outcome.error is not None:
        raise outcome.error
    assert outcome.level is not None
    return outcome.level


def apply_changes(uow: UnitOfWork, actor: Actor,
                  changes: Sequence[StockChange]) -> list[ChangeOutcome]:
    """Apply many stock changes in one transaction; each succeeds or fails on its own.

    Nothing is written for a change that fails: every check happens before the level moves.
    Waiting backorders of the SKUs that gained stock are allocated by a job after commit.
    """
    unknown = _unknown_references(uow, changes)
    levels = lock_levels(uow, {change.key for change in changes
                               if change.key not in unknown})
    outcomes: list[ChangeOutcome] = []
    gained: set[str] = set()
    for change in changes:
        if change.key in unknown:
            outcomes.append(ChangeOutcome(None, unknown[change.key]))
            continue
        if not visibility.may_work_at(actor, change.location_code):
            outcomes.append(ChangeOutcome(None, NotFoundError("location",
                                                              change.location_code)))
            continue
        level = levels[change.key]
        try:
            before = level.on_hand
            _apply(uow, actor, level, change)
        except OmsError as error:
            outcomes.append(ChangeOutcome(None, error))
            continue
        if level.on_hand > before:
            gained.add(level.sku)
        outcomes.append(ChangeOutcome(level))
    uow.session.flush()
    offer_to_backorders(uow, gained)
    return outcomes


def _apply(uow: UnitOfWork, actor: Actor, level: StockLevel, change: StockChange) -> None:
    if change.kind == "count":
        target = change.quantity
    elif change.kind == "adjustment":
        target = level.on_hand + change.quantity
    elif change.kind == "receipt":
        target = level.on_hand + change.quantity
    else:
        raise ValueError(f"unknown stock change {change.kind!r}")
    if target < level.reserved:
        raise InsufficientStockError(level.sku, level.location_code, level.on_hand,
                                     level.reserved, target)
    if target > MAX_ON_HAND:
        field = "on_hand" if change.kind == "count" else "quantity"
        raise InputValidationError([FieldProblem(field, f"would take {level.sku} at "
                                                 f"{level.location_code} to {target} on hand; "
                                                 f"a level holds at most {MAX_ON_HAND}")])
    # Side effects only once the change is accepted: a refused change writes nothing.
    if change.kind == "count" and change.safety_stock is not None:
        level.safety_stock = change.safety_stock
    if change.kind == "receipt" and change.reference:
        _receive_supply(uow, change)
    move(uow, actor, level, change.kind, target - level.on_hand, 0,
         reason=change.reason, reference=change.reference)


def _receive_supply(uow: UnitOfWork, change: StockChange) -> None:
    """Count a receipt against the expected supply it answers, if one is on record."""
    supply = uow.session.scalars(select(ExpectedSupply).where(
        ExpectedSupply.sku == change.sku, ExpectedSupply.location_code == change.location_code,
        ExpectedSupply.reference == change.reference).with_for_update()).first()
    if supply is not None:
        supply.received = min(supply.quantity, supply.received + change.quantity)


def move(uow: UnitOfWork, actor: Actor, level: StockLevel, kind: str, on_hand_change: int,
         reserved_change: int, *, reason: str | None = None, reference: str | None = None,
         order_id: int | None = None) -> None:
    """Change a locked level and write the movement that records it: the only way levels move."""
    level.on_hand += on_hand_change
    level.reserved += reserved_change
    level.updated_at = utcnow()
    uow.session.add(StockMovement(
        sku=level.sku, location_code=level.location_code, kind=kind,
        on_hand_change=on_hand_change, reserved_change=reserved_change,
        on_hand_after=level.on_hand, reserved_after=level.reserved, reason=reason,
        reference=reference, order_id=order_id, actor=actor.label, occurred_at=utcnow()))


def lock_levels(uow: UnitOfWork, keys: Iterable[Key]) -> dict[Key, StockLevel]:
    """Lock the levels of these (sku, location) pairs in key order, creating missing ones."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    statement = (select(StockLevel)
                 .where(tuple_(StockLevel.sku, StockLevel.location_code).in_(wanted))
                 .order_by(StockLevel.sku, StockLevel.location_code).with_for_update())
    found = {(level.sku, level.location_code): level
             for level in uow.session.scalars(statement)}
    missing = [key for key in wanted if key not in found]
    if missing:
        try:
            with uow.session.begin_nested():
                uow.session.add_all(StockLevel(sku=sku, location_code=code, on_hand=0,
                                               reserved=0, safety_stock=0, updated_at=utcnow())
                                    for sku, code in missing)
        except IntegrityError:
            pass  # a concurrent change created some of them: the locking read finds them
        found = {(level.sku, level.location_code): level
                 for level in uow.session.scalars(statement.execution_options(
                     populate_existing=True))}
    return found


def _unknown_references(uow: UnitOfWork,
                        changes: Sequence[StockChange]) -> dict[Key, OmsError]:
    skus = {change.sku for change in changes}
    codes = {change.location_code for change in changes}
    known_skus = set(uow.session.scalars(select(Product.sku).where(Product.sku.in_(skus))))
    known_codes = set(uow.session.scalars(
        select(Location.code).where(Location.code.in_(codes))))
    unknown: dict[Key, OmsError] = {}
    for change in changes:
        problems = []
        if change.sku not in known_skus:
            problems.append(FieldProblem("sku", f"unknown SKU {change.sku}"))
        if change.location_code not in known_codes:
            problems.append(FieldProblem("location", f"unknown location {change.location_code}"))
        if problems:
            error = UnknownReferencesError(
                None, [change.sku] if change.sku not in known_skus else [], problems)
            error.detail = "; ".join(problem.message for problem in problems)  # names both
            unknown[change.key] = error
    return unknown


def expect_supply(uow: UnitOfWork, actor: Actor, sku: str, location_code: str,
                  reference: str, quantity: int, expected_on: date) -> ExpectedSupply:
    """Record (or change) units expected at a location on a date, under a reference.

    Raises:
        UnknownReferencesError: the SKU or location does not exist.
    """
    visibility.check_location(actor, location_code)
    probe = StockChange("receipt", sku, location_code, quantity)
    unknown = _unknown_references(uow, [probe])
    if unknown:
        raise unknown[probe.key]
    supply = uow.session.scalars(select(ExpectedSupply).where(
        ExpectedSupply.sku == sku, ExpectedSupply.location_code == location_code,
        ExpectedSupply.reference == reference).with_for_update()).first()
    if supply is None:
        supply = ExpectedSupply(sku=sku, location_code=location_code, reference=reference,
                                quantity=quantity, received=0, expected_on=expected_on,
                                created_by=actor.label, created_at=utcnow())
        try:
            with uow.session.begin_nested():
                uow.session.add(supply)
        except IntegrityError:  # a concurrent request recorded it first: update that one
            return expect_supply(uow, actor, sku, location_code, reference, quantity,
                                 expected_on)
    else:
        supply.quantity = max(quantity, supply.received)
        supply.expected_on = expected_on
    return supply


def waiting_backorders(uow: UnitOfWork, skus: Iterable[str],
                       excluding_order: int | None = None) -> dict[str, int]:
    """Return, per SKU, the units orders are waiting for (backordered, not held)."""
    statement = (select(OrderLine.sku, func.sum(OrderLine.quantity_backordered))
                 .join(Order, Order.id == OrderLine.order_id)
                 .where(OrderLine.sku.in_(set(skus)), OrderLine.quantity_backordered > 0,
                        Order.status.in_(WAITING_STATUSES))
                 .group_by(OrderLine.sku))
    if excluding_order is not None:
        statement = statement.where(OrderLine.order_id != excluding_order)
    return {sku: int(total) for sku, total in uow.session.execute(statement)}


def skus_to_fill(uow: UnitOfWork) -> list[str]:
    """Return the SKUs that orders wait for and that some active location has available:
    what a sweep gives to the backorder job, should a wake-up have been missed."""
    waiting = (select(OrderLine.sku).join(Order, Order.id == OrderLine.order_id)
               .where(OrderLine.quantity_backordered > 0, Order.status.in_(WAITING_STATUSES)))
    return list(uow.session.scalars(
        select(StockLevel.sku).distinct()
        .join(Location, Location.code == StockLevel.location_code)
        .where(StockLevel.sku.in_(waiting), Location.active.is_(True),
               StockLevel.on_hand > StockLevel.reserved + StockLevel.safety_stock)
        .order_by(StockLevel.sku)))


def offer_to_backorders(uow: UnitOfWork, skus: Iterable[str]) -> None:
    """Start the backorder job for each SKU that gained stock and has orders waiting for it."""
    for sku in sorted(waiting_backorders(uow, skus)):
        uow.enqueue_after_commit(BACKORDER_JOB, sku)


def stock_page(uow: UnitOfWork, actor: Actor, *, skus: Sequence[str] = (),
               location_codes: Sequence[str] = (), after: Key | None,
               limit: int) -> tuple[list[StockLevel], Key | None]:
    """Return one page of levels in (sku, location) order, filtered by any of these SKUs
    and any of these locations (none given: all)."""
    statement = select(StockLevel).order_by(StockLevel.sku, StockLevel.location_code).where(
        visibility.locations(actor, StockLevel.location_code))
    if skus:
        statement = statement.where(StockLevel.sku.in_(skus))
    if location_codes:
        statement = statement.where(StockLevel.location_code.in_(location_codes))
    if after is not None:
        statement = statement.where(
            tuple_(StockLevel.sku, StockLevel.location_code) > tuple_(*after))
    return fetch_page(uow.session, statement, limit,
                      lambda level: (level.sku, level.location_code))


def ledger_page(uow: UnitOfWork, actor: Actor, *, skus: Sequence[str] = (),
                location_codes: Sequence[str] = (), order_ids: Sequence[int] = (),
                after: int | None, limit: int) -> tuple[list[StockMovement], int | None]:
    """Return one page of movements, oldest first, filtered by any of these SKUs, any of
    these locations and any of these orders (none given: all)."""
    statement = select(StockMovement).order_by(StockMovement.id)
    filters: list[Any] = [visibility.movements(actor)]
    if skus:
        filters.append(StockMovement.sku.in_(skus))
    if location_codes:
        filters.append(StockMovement.location_code.in_(location_codes))
    if order_ids:
        filters.append(StockMovement.order_id.in_(order_ids))
    if after is not None:
        filters.append(StockMovement.id > after)
    return fetch_page(uow.session, statement.where(*filters), limit, lambda move: move.id)


def supply_for(uow: UnitOfWork, actor: Actor, sku: str) -> list[ExpectedSupply]:
    """Return the supply of a SKU still expected (overdue included), earliest first."""
    return list(uow.session.scalars(
        select(ExpectedSupply).where(ExpectedSupply.sku == sku,
                                     ExpectedSupply.received < ExpectedSupply.quantity,
                                     visibility.locations(actor, ExpectedSupply.location_code))
        .order_by(ExpectedSupply.expected_on, ExpectedSupply.id)))


def today(moment: datetime | None = None) -> date:
    """Return the calendar day (UTC) of a moment, now by default."""
    return (moment or utcnow()).date()


def unreserve(uow: UnitOfWork, actor: Actor, order_id: int, units: dict[Key, int],
              reason: str) -> set[str]:
    """Give back stock reserved for an order, per (sku, location), one `release` movement
    each; return the SKUs that gained available stock.

    The fulfilment groups and order lines that held the units are left to the caller.
    """
    levels = lock_levels(uow, units)
    for key in sorted(units):
        if units[key]:
            move(uow, actor, levels[key], "release", 0, -units[key], reason=reason,
                 order_id=order_id)
    return {sku for (sku, _), quantity in units.items() if quantity}
