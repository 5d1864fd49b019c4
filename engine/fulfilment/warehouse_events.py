"""What the warehouse tells us: picked, packed, shipped, short picked; each once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from engine import visibility
from engine.actors import Actor
from engine.decisions.carrier import choose_carriers_for
from engine.decisions.escalation import Failure, handle_failure
from engine.decisions.sourcing import source_order
from engine.errors import (
    FieldProblem,
    InputValidationError,
    NotFoundError,
    NotReadyError,
    OmsError,
    one_of_batch,
)
from engine.fulfilment.billing import fix_amounts, request_billing
from engine.fulfilment.cancelling import move_on
from engine.fulfilment.common import (
    Applied,
    Seen,
    each_on_its_own,
    progress_through,
    remember_event,
    repeat_of,
    seen_events,
    take_from_group,
    units_claimed,
)
from engine.fulfilment.labels import request_label
from engine.fulfilment.release import request_release
from engine.inventory.stock import Key, lock_levels, move
from engine.job_names import (
    NOTIFY_JOB,
)
from engine.orders.holds import SHIPPED_WHILE_HELD, HoldReason, put_on_hold
from engine.orders.locking import lock_orders
from engine.orders.timeline import record_event
from engine.ports import (
    UnitOfWork,
)
from engine.record import (
    FulfilmentGroup,
    FulfilmentLine,
    Order,
    Shipment,
    ShipmentLine,
    StockLevel,
    utcnow,
)
from engine.status import OrderStatus


@dataclass(frozen=True)
class PackedLine:
    sku: str
    quantity: int


@dataclass(frozen=True)
class WmsEvent:
    event_id: str
    type: str  # picked, packed, shipped, short_picked
    group_id: int
    package_ref: str | None = None
    lines: tuple[PackedLine, ...] = ()
    tracking_number: str | None = None
    weight_kg: Decimal = Decimal(0)
    occurred_at: datetime | None = None


@dataclass
class _Read:
    """What a batch of warehouse events works on, read once for the whole batch and locked
    in the one lock order: its orders, then its groups, their packages, their stock levels,
    each in key order."""

    groups: dict[int, FulfilmentGroup]  # only those the actor may see
    orders: dict[int, Order]
    packages: dict[int, list[Shipment]]  # every shipment of each order, by order id
    tracking: dict[str, int]  # tracking numbers the events name -> the shipment holding it
    levels: dict[Key, StockLevel]
    seen: dict[str, Seen]

    def packages_of(self, group: FulfilmentGroup) -> list[Shipment]:
        return [package for package in self.packages[group.order_id]
                if package.group_id == group.id]

    def forget_undone(self, uow: UnitOfWork) -> None:
        """Forget packages an event refused had made (its savepoint took them back)."""
        for order_id, packages in self.packages.items():
            self.packages[order_id] = [package for package in packages if package in uow.session]


def apply_wms_event(uow: UnitOfWork, actor: Actor, event: WmsEvent,
                    payload: dict[str, Any]) -> Applied:
    """Apply a warehouse confirmation once (a batch of one).

    Raises:
        NotFoundError: the fulfilment group does not exist.
        InputValidationError: lines that are not in the group, or more than it holds.
    """
    return one_of_batch(apply_wms_events(uow, actor, [(event, payload)]))


def apply_wms_events(uow: UnitOfWork, actor: Actor,
                     events: Sequence[tuple[WmsEvent, dict[str, Any]]]
                     ) -> list[Applied | OmsError]:
    """Apply a batch of warehouse confirmations, each once and each on its own: what they
    name is read in one query per kind, then each event is applied in its own savepoint,
    in order; one refused (an unknown group, too many units...) answers its error and the
    others stand. `payload`: the event as validated, kept to recognise a repeat."""
    if not events:
        return []
    read = _read(uow, actor, [event for event, _ in events])
    return each_on_its_own(uow, events, lambda item: _apply(uow, actor, read, *item),
                           lambda: read.forget_undone(uow))


def _read(uow: UnitOfWork, actor: Actor, events: list[WmsEvent]) -> _Read:
    visible = {group_id: order_id for group_id, order_id in uow.session.execute(
        select(FulfilmentGroup.id, FulfilmentGroup.order_id).where(
            FulfilmentGroup.id.in_(sorted({event.group_id for event in events})),
            visibility.groups(actor)))}
    orders = lock_orders(uow, visible.values())  # twins of one event queue here
    groups: dict[int, FulfilmentGroup] = {}
    packages: dict[int, list[Shipment]] = {order_id: [] for order_id in orders}
    if visible:
        groups = {group.id: group for group in uow.session.scalars(
            select(FulfilmentGroup).where(FulfilmentGroup.id.in_(sorted(visible)))
            .order_by(FulfilmentGroup.id).with_for_update()
            .execution_options(populate_existing=True))}
        for package in uow.session.scalars(
                select(Shipment).where(Shipment.order_id.in_(sorted(orders)))
                .order_by(Shipment.id).with_for_update()
                .execution_options(populate_existing=True)):
            packages[package.order_id].append(package)
    tracking: dict[str, int] = {}
    numbers = sorted({event.tracking_number for event in events if event.tracking_number})
    if numbers:
        for number, shipment_id in uow.session.execute(
                select(Shipment.tracking_number, Shipment.id).where(
                    Shipment.tracking_number.in_(numbers))):
            if number is not None:  # always, under IN (...): for the type checker
                tracking[number] = shipment_id
    moving = {event.group_id for event in events if event.type in ("shipped", "short_picked")}
    stock = {(line.sku, group.location_code) for group in groups.values()
             if group.id in moving for line in group.lines}
    stock |= {(line.sku, package.location_code) for listed in packages.values()
              for package in listed if package.group_id in moving for line in package.lines}
    return _Read(groups, orders, packages, tracking, lock_levels(uow, stock),
                 seen_events(uow, "wms", (event.event_id for event in events)))


def _apply(uow: UnitOfWork, actor: Actor, read: _Read, event: WmsEvent,
           payload: dict[str, Any]) -> Applied:
    group = read.groups.get(event.group_id)
    if group is None:  # another location's group is, for this warehouse, no group at all
        raise NotFoundError("fulfilment group", event.group_id)
    order = read.orders[group.order_id]
    seen = repeat_of(read.seen, "wms", event.event_id, payload)
    if seen is not None:
        return Applied("duplicate", seen.order_id, seen.detail)
    if group.status == "allocated":  # the release is on its way: the sender tries again
        raise NotReadyError(f"fulfilment group {group.id} is not released yet")
    if group.status not in ("released", "on_hold", "shipped"):
        return remember_event(uow, read.seen, "wms", event.event_id, event.type, order,
                              payload, "ignored", f"the group is {group.status}, not released")
    packed = (_packed(read, group, event.package_ref) if event.type in ("packed", "shipped")
              else None)
    if event.type == "shipped" and packed is not None and not event.lines:
        quantities: dict[str, int] = {}
        for packed_line in packed.lines:  # as packed
            quantities[packed_line.sku] = quantities.get(packed_line.sku, 0) + packed_line.quantity
    else:
        quantities = _check_lines(read, group, event, packed)
    if event.tracking_number is not None:
        _check_tracking_free(read, event.tracking_number, packed)
    shipment_id = None
    if event.type == "picked":
        record_event(uow, order, "group.picked", actor, group=group.id)
    elif event.type == "packed":
        shipment = packed or _new_shipment(uow, read, order, group, event, quantities)
        shipment_id = shipment.id
        if order.status is not OrderStatus.ON_HOLD:  # on hold: bought on release
            request_label(uow, shipment)
    elif event.type == "shipped":
        shipment = packed or _new_shipment(uow, read, order, group, event, quantities)
        shipment_id = shipment.id
        _ship(uow, actor, read, order, group, shipment, event)
    else:  # short_picked
        _short_pick(uow, actor, read, order, group, quantities)
    return remember_event(uow, read.seen, "wms", event.event_id, event.type, order, payload,
                          "applied", None, shipment_id)


def _packed(read: _Read, group: FulfilmentGroup, package: str | None) -> Shipment | None:
    """The package the event names, if the warehouse reported it before."""
    if package is None:
        return None
    return next((found for found in read.packages_of(group) if found.package_ref == package),
                None)


def _free(group: FulfilmentGroup, claimed: dict[int, int]) -> dict[str, int]:
    """Units per SKU the group still holds and no other package has claimed."""
    free: dict[str, int] = {}
    for line in group.lines:
        free[line.sku] = (free.get(line.sku, 0) + line.quantity
                          - claimed.get(line.order_line_id, 0))
    return free


def _spread(group: FulfilmentGroup, sku: str, quantity: int,
            claimed: dict[int, int]) -> list[tuple[FulfilmentLine, int]]:
    """Spread a SKU's units over the group's lines of it (an order may list a SKU twice)."""
    parts = []
    for line in group.lines:
        if line.sku == sku and quantity > 0:
            take = min(quantity, line.quantity - claimed.get(line.order_line_id, 0))
            if take > 0:
                parts.append((line, take))
                quantity -= take
    return parts


def _check_tracking_free(read: _Read, tracking_number: str, packed: Shipment | None) -> None:
    taken = read.tracking.get(tracking_number)
    if taken is not None and (packed is None or taken != packed.id):
        raise InputValidationError([FieldProblem(
            "tracking_number", f"{tracking_number} is already shipment {taken}'s")])


def _check_lines(read: _Read, group: FulfilmentGroup, event: WmsEvent,
                 packed: Shipment | None) -> dict[str, int]:
    """Units per SKU the event names, checked against what the group still holds and has
    not packed into another package yet (a package reported again must match itself)."""
    holds = _free(group, units_claimed(read.packages_of(group), packed))
    quantities: dict[str, int] = {}
    for line in event.lines:
        quantities[line.sku] = quantities.get(line.sku, 0) + line.quantity
    problems = [(f"lines/{index}/sku",
                 f"fulfilment group {group.id} has no {line.sku} left to pack or ship")
                for index, line in enumerate(event.lines) if line.sku not in holds]
    problems += [(f"lines/{index}/quantity",
                  f"{quantities[line.sku]} units of {line.sku} named; the group has "
                  f"{holds[line.sku]} left to pack and ship")
                 for index, line in enumerate(event.lines)
                 if line.sku in holds and quantities[line.sku] > holds[line.sku]]
    if event.type != "picked" and not event.lines:
        problems.append(("lines", f"a {event.type} event names at least one line"))
    as_packed: dict[str, int] = {}
    for packed_line in packed.lines if packed is not None else ():
        as_packed[packed_line.sku] = as_packed.get(packed_line.sku, 0) + packed_line.quantity
    if packed is not None and event.lines and quantities != as_packed:
        problems.append(("lines", f"package {packed.package_ref} was packed with other "
                                  "lines; send them as packed, or none"))
    if problems:
        raise InputValidationError([FieldProblem(path, message) for path, message in problems])
    return quantities


def _new_shipment(uow: UnitOfWork, read: _Read, order: Order, group: FulfilmentGroup,
                  event: WmsEvent, quantities: dict[str, int]) -> Shipment:
    """The shipment a package makes (without a package id, the event is its id)."""
    package = event.package_ref or event.event_id
    claimed = units_claimed(read.packages_of(group), None)
    shipment = Shipment(
        order_id=order.id, group_id=group.id, package_ref=package,
        location_code=group.location_code, carrier_code=group.carrier_code,
        service_code=group.service_code, status="packed",
        tracking_number=event.tracking_number, weight_kg=event.weight_kg, created_at=utcnow(),
        lines=[ShipmentLine(order_line_id=line.order_line_id, sku=sku, quantity=part)
               for sku, quantity in quantities.items()
               for line, part in _spread(group, sku, quantity, claimed)])
    uow.session.add(shipment)
    uow.session.flush()
    read.packages[order.id].append(shipment)
    if shipment.tracking_number is not None:
        read.tracking[shipment.tracking_number] = shipment.id
    return shipment


def _ship(uow: UnitOfWork, actor: Actor, read: _Read, order: Order, group: FulfilmentGroup,
          shipment: Shipment, event: WmsEvent) -> None:
    """Goods leave: stock and reservation go down, the lines count them as shipped."""
    if shipment.shipped_at is not None:
        return
    if event.tracking_number and shipment.tracking_number is None:
        shipment.tracking_number = event.tracking_number
        read.tracking[event.tracking_number] = shipment.id
    shipment.status, shipment.shipped_at = "shipped", event.occurred_at or utcnow()
    fix_amounts(order, shipment, read.packages[order.id])
    levels = _levels(uow, read, [(line.sku, group.location_code) for line in shipment.lines])
    by_line = {line.order_line_id: line for line in group.lines}
    for line in shipment.lines:
        move(uow, actor, levels[(line.sku, group.location_code)], "shipment", -line.quantity,
             -line.quantity, reference=f"shipment {shipment.id}", order_id=order.id)
        order_line = line.order_line
        order_line.quantity_allocated -= line.quantity
        order_line.quantity_shipped += line.quantity
        take_from_group(by_line[line.order_line_id], line.quantity)
    if not group.lines:
        group.status = "shipped"
    uow.session.flush()
    everything_shipped = all(
        line.quantity_shipped + line.quantity_cancelled == line.quantity_ordered
        for line in order.lines)
    target = OrderStatus.SHIPPED if everything_shipped else OrderStatus.PARTIALLY_SHIPPED
    record_event(uow, order, "shipment.shipped", actor, shipment=shipment.id,
                 tracking_number=shipment.tracking_number, carrier=shipment.carrier_code,
                 lines=[{"sku": line.sku, "quantity": line.quantity}
                        for line in shipment.lines])
    event_type = "order.shipped" if everything_shipped else "order.partially_shipped"
    progress_through(uow, actor, order, target, event_type)
    if order.status is OrderStatus.ON_HOLD:
        # it happened, so it is recorded; but ops must look at it, and nothing is billed or
        # announced before the hold is released
        put_on_hold(uow, actor, order, "fulfilment", [HoldReason(
            SHIPPED_WHILE_HELD,
            f"Package {shipment.package_ref} (shipment {shipment.id}) left "
            f"{group.location_code} while the order was on hold; it is billed and announced "
            "once the hold is released.")], shipment=shipment.id)
        return
    request_billing(uow)
    uow.enqueue_after_commit(NOTIFY_JOB, order.id, f"shipped:{shipment.id}")


def _short_pick(uow: UnitOfWork, actor: Actor, read: _Read, order: Order,
                group: FulfilmentGroup, quantities: dict[str, int]) -> None:
    """The warehouse could not find the units: its stock is corrected down, the units
    leave the group (never billed: only shipments are), the customer is told, and the
    exceptions rules decide what becomes of them (stock_short): re-sourced elsewhere or
    backordered (`resource`, and when the rules say nothing), waiting on the order's
    hold (`hold`), or cancelled (`cancel`)."""
    levels = _levels(uow, read, [(sku, group.location_code) for sku in quantities])
    claimed = units_claimed(read.packages_of(group), None)
    short: dict[int, int] = {}  # order line id -> units missing
    for sku, quantity in quantities.items():
        move(uow, actor, levels[(sku, group.location_code)], "short_pick", -quantity,
             -quantity, reason="short picked", reference=f"group {group.id}",
             order_id=order.id)
        for line, part in _spread(group, sku, quantity, claimed):
            line.order_line.quantity_allocated -= part
            short[line.order_line_id] = short.get(line.order_line_id, 0) + part
            take_from_group(line, part)
    if not group.lines:
        group.status = "cancelled"
    record_event(uow, order, "group.short_picked", actor, group=group.id,
                 location=group.location_code,
                 lines=[{"sku": sku, "quantity": q} for sku, q in quantities.items()])
    uow.session.flush()  # the rules' decision reads the order afresh
    uow.enqueue_after_commit(NOTIFY_JOB, order.id, f"short:{group.id}")
    decided = handle_failure(uow, actor, order.id, Failure(
        "stock_short", "short_pick", "wms",
        ", ".join(f"{q} x {sku} missing at {group.location_code}"
                  for sku, q in quantities.items())))
    resolution = decided.outcome if decided is not None else "none"
    if order.status is OrderStatus.CANCELLED:  # the rules cancelled the whole order
        return
    lines = {line.id: line for line in order.lines}
    if resolution == "cancel" and decided is not None:  # not cancellable whole (part
        for line_id, units in short.items():  # has shipped): these units are
            lines[line_id].quantity_cancelled += units
        decided.decision = {**{key: value for key, value in decided.decision.items()
                               if key != "not_applied"},
                            "cancelled_units": sum(short.values())}
        record_event(uow, order, "order.lines_cancelled", actor, reason="short picked",
                     lines=[{"sku": lines[line_id].sku, "quantity": units}
                            for line_id, units in short.items()])
        move_on(uow, actor, order)  # shipped, and further, once nothing is left to ship
    elif order.status is OrderStatus.ON_HOLD:  # they wait with the order; its release
        for line_id, units in short.items():  # sources them again
            lines[line_id].quantity_backordered += units
    else:  # re-source them elsewhere, or backorder them until stock arrives
        source_order(uow, actor, order, excluded=frozenset({group.location_code}))
        choose_carriers_for(uow, actor, [order])
        request_release(uow, order)


def _levels(uow: UnitOfWork, read: _Read, keys: list[Key]) -> dict[Key, StockLevel]:
    """The stock levels these events move, locked when the batch was read (a level the
    batch did not foresee is locked now)."""
    missing = [key for key in keys if key not in read.levels]
    return {**{key: read.levels[key] for key in keys if key in read.levels},
            **lock_levels(uow, missing)}
