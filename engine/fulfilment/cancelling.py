"""Cancelling units not shipped: where each comes from, what is freed, what the order does next."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from engine.actors import Actor
from engine.errors import (
    FieldProblem,
    InputValidationError,
)
from engine.fulfilment.billing import complete_if_done
from engine.fulfilment.common import claimed_units, progress_through, take_from_group
from engine.fulfilment.release import request_release
from engine.inventory.stock import offer_to_backorders, unreserve
from engine.job_names import (
    STOP_JOB,
    WMS_CANCEL_JOB,
)
from engine.orders.capture import Problems
from engine.orders.holds import resolve_holds
from engine.orders.reading import lock_visible_order
from engine.orders.timeline import record_event
from engine.orders.transitions import check_move, effective_status, move
from engine.ports import (
    UnitOfWork,
)
from engine.record import (
    OPEN_GROUP_STATUSES,
    FulfilmentGroup,
    FulfilmentLine,
    Order,
)
from engine.status import OrderStatus


@dataclass(frozen=True)
class LineToCancel:
    """Units of one order line to cancel, the line named by its number or by its SKU (a
    SKU the order lists twice: spread over its lines in order)."""

    quantity: int
    line_no: int | None = None
    sku: str | None = None


def cancel_order(uow: UnitOfWork, actor: Actor, order_id: int, reason: str,
                 lines: Sequence[LineToCancel] | None = None) -> Order:
    """Cancel what has not shipped: all of it, or these units of these lines.

    The units' reservations are given back and offered to waiting orders, a released
    group is withdrawn from its warehouse (or told which units to stop), and nothing is
    billed for them. An order left with nothing to ship is cancelled, or shipped if some
    of it did ship; one left waiting for nothing moves on.

    Raises:
        InvalidTransitionError: the order has shipped, or is already closed.
        InputValidationError: an unknown line, or more units than are left to cancel.
    """
    order = lock_visible_order(uow, actor, order_id)
    previous = order.status
    if effective_status(order) is not OrderStatus.PARTIALLY_SHIPPED:
        check_move(order, OrderStatus.CANCELLED)
    wanted, first = _units_to_cancel(order, lines)
    plan = plan_cancel(uow, order, wanted)
    if plan.packed:
        raise InputValidationError([
            FieldProblem(f"lines/{first[line_id]}/quantity" if lines is not None else "lines",
                         message) for line_id, message in plan.packed.items()])
    outcome = cancel_units(uow, actor, order, plan,
                                      "order cancelled" if lines is None else "lines cancelled")
    cancelled = [{"line_no": line.line_no, "sku": line.sku, "quantity": wanted[line.id]}
                 for line in order.lines if line.id in wanted]
    if all(line.quantity_cancelled == line.quantity_ordered for line in order.lines):
        event = move(uow, actor, order, OrderStatus.CANCELLED, "order.cancelled", reason=reason,
                     lines=cancelled, groups=outcome.groups)
        resolve_holds(uow, actor, order, "cancelled")
    else:
        event = record_event(uow, order, "order.lines_cancelled", actor, reason=reason,
                             status=previous.value, lines=cancelled, groups=outcome.groups)
        move_on(uow, actor, order)
    uow.session.flush()
    for group_id in outcome.stopped:
        uow.enqueue_after_commit(STOP_JOB, group_id, event.id)
    offer_to_backorders(uow, outcome.skus)
    return order


def _units_to_cancel(order: Order, requested: Sequence[LineToCancel] | None,
                     ) -> tuple[dict[int, int], dict[int, int]]:
    """Return the units to cancel per order line id, and per line the index of the first
    request naming it; with no request, every unit not shipped yet."""
    left = {line.id: line.quantity_ordered - line.quantity_shipped - line.quantity_cancelled
            for line in order.lines}
    if requested is None:
        return {line_id: units for line_id, units in left.items() if units > 0}, {}
    by_number = {line.line_no: line for line in order.lines}
    wanted: dict[int, int] = {}
    first: dict[int, int] = {}
    problems = Problems()
    for index, request in enumerate(requested):
        if request.line_no is not None:
            if request.line_no not in by_number:
                problems.add(f"lines/{index}/line_no",
                             f"order {order.id} has no line {request.line_no}")
                continue
            targets = [by_number[request.line_no]]
        else:
            targets = [line for line in order.lines if line.sku == request.sku]
            if not targets:
                problems.add(f"lines/{index}/sku", f"order {order.id} has no line of "
                                                   f"SKU {request.sku!r}")
                continue
        available = sum(left[line.id] - wanted.get(line.id, 0) for line in targets)
        if request.quantity > available:
            shipped = sum(line.quantity_shipped for line in targets)
            cancelled = sum(line.quantity_cancelled for line in targets)
            ordered = sum(line.quantity_ordered for line in targets)
            name = (f"line {request.line_no} ({targets[0].sku})" if request.line_no
                    is not None else f"SKU {request.sku}")
            problems.add(f"lines/{index}/quantity",
                         f"{request.quantity} units of {name} to cancel; {available} left "
                         f"to cancel ({ordered} ordered, {shipped} shipped, {cancelled} "
                         "cancelled" + (", the rest named above)" if available < ordered
                                        - shipped - cancelled else ")"))
            continue
        units = request.quantity
        for line in targets:
            take = min(units, left[line.id] - wanted.get(line.id, 0))
            if take > 0:
                wanted[line.id] = wanted.get(line.id, 0) + take
                first.setdefault(line.id, index)
                units -= take
    if problems.items:
        raise InputValidationError(problems.items)
    return wanted, first


@dataclass
class CancelPlan:
    """Where the units an order no longer wants are taken from, decided before anything
    changes: waiting for stock, not sourced yet, or reserved in a fulfilment group."""

    wanted: dict[int, int]  # order line id -> units to cancel
    backordered: dict[int, int] = field(default_factory=dict)
    reserved: list[tuple[FulfilmentGroup, FulfilmentLine, int]] = field(default_factory=list)
    # order line id -> why its packed units cannot go without the rest of their group
    packed: dict[int, str] = field(default_factory=dict)


@dataclass
class CancelOutcome:
    """What cancelling units did: the SKUs it freed stock of, and per group what it took."""

    skus: set[str]
    groups: list[dict[str, Any]]
    stopped: list[int]  # released groups the warehouse must stop some units of


def plan_cancel(uow: UnitOfWork, order: Order, wanted: dict[int, int]) -> CancelPlan:
    """Decide where each unit to cancel comes from, on the locked order: units waiting for
    stock first, then units not sourced yet, then reservations of groups not released
    yet, then of released groups (units the warehouse has not packed before packed ones).

    Packed units leave with their package: they can only be taken with everything else
    left in their group (the warehouse withdraws the whole fulfilment order then).
    """
    plan = CancelPlan(wanted)
    groups = sorted(uow.session.scalars(select(FulfilmentGroup).where(
        FulfilmentGroup.order_id == order.id,
        FulfilmentGroup.status.in_(OPEN_GROUP_STATUSES))
        .with_for_update().execution_options(populate_existing=True)),
        key=lambda group: (group.status != "allocated", group.id))
    claimed = {group.id: claimed_units(uow, group, None) for group in groups}
    lines = {line.id: line for line in order.lines}
    packed_in: dict[int, set[int]] = {}  # group id -> order lines taking packed units
    planned: dict[int, int] = {}  # group line id -> units taken from it
    for line_id, units in wanted.items():
        line = lines[line_id]
        left = units - min(units, line.quantity_backordered)
        if units > left:
            plan.backordered[line_id] = units - left
        left -= min(left, max(0, line.quantity_ordered - line.quantity_allocated
                               - line.quantity_shipped - line.quantity_cancelled
                               - line.quantity_backordered))  # not sourced yet
        for packed in (False, True):
            for group in groups:
                for group_line in group.lines:
                    if group_line.order_line_id != line_id or left == 0:
                        continue
                    boxed = 0 if packed else min(claimed[group.id].get(line_id, 0),
                                                 group_line.quantity)
                    take = min(left, group_line.quantity - boxed
                               - planned.get(group_line.id, 0))
                    if take > 0:
                        plan.reserved.append((group, group_line, take))
                        planned[group_line.id] = planned.get(group_line.id, 0) + take
                        left -= take
                        if packed:
                            packed_in.setdefault(group.id, set()).add(line_id)
    for group in groups:
        if group.id in packed_in and any(
                group_line.quantity > planned.get(group_line.id, 0)
                for group_line in group.lines):
            for line_id in packed_in[group.id]:
                plan.packed[line_id] = (
                    f"units of {lines[line_id].sku} are packed for shipping in fulfilment "
                    f"group {group.id} and leave with their package; cancel everything "
                    "left in that group, or return them once delivered")
    return plan


def cancel_units(uow: UnitOfWork, actor: Actor, order: Order, plan: CancelPlan,
                 reason: str) -> CancelOutcome:
    """Cancel the planned units: counted as cancelled on their lines, their reservations
    given back (ledger movements), their groups shrunk; a group left empty is cancelled
    (and withdrawn from its warehouse if it was released), a released group that keeps
    some units is to be told which units to stop (`STOP_JOB`, once the caller knows the
    timeline event that says so)."""
    lines = {line.id: line for line in order.lines}
    for line_id, units in plan.wanted.items():
        lines[line_id].quantity_cancelled += units
    for line_id, units in plan.backordered.items():
        lines[line_id].quantity_backordered -= units
    freeing: dict[tuple[str, str], int] = {}
    touched: dict[int, tuple[FulfilmentGroup, list[dict[str, Any]]]] = {}
    for group, group_line, units in plan.reserved:
        key = (group_line.sku, group.location_code)
        freeing[key] = freeing.get(key, 0) + units
        group_line.order_line.quantity_allocated -= units
        touched.setdefault(group.id, (group, []))[1].append(
            {"line_no": group_line.order_line.line_no, "sku": group_line.sku,
             "quantity": units})
        take_from_group(group_line, units)
    skus = unreserve(uow, actor, order.id, freeing, reason)
    groups, stopped = [], []
    for group, taken in touched.values():
        released = group.status == "released"
        if not group.lines:
            group.status = "cancelled"
            if released:  # the warehouse has it: take all of it back
                uow.enqueue_after_commit(WMS_CANCEL_JOB, group.id)
        elif released:
            stopped.append(group.id)
        groups.append({"group": group.id, "location": group.location_code,
                       "withdrawn": not group.lines, "lines": taken})
    return CancelOutcome(skus, groups, stopped)


def move_on(uow: UnitOfWork, actor: Actor, order: Order) -> None:
    """Take an order on once units of it were cancelled (not all of them): shipped, and
    delivered or completed, when what is left has all gone; allocated and released when
    what it was waiting for is no longer wanted."""
    lines = order.lines
    if all(line.quantity_shipped + line.quantity_cancelled == line.quantity_ordered
           for line in lines):
        progress_through(uow, actor, order, OrderStatus.SHIPPED, "order.shipped")
        if all(line.quantity_delivered + line.quantity_cancelled == line.quantity_ordered
               for line in lines):
            progress_through(uow, actor, order, OrderStatus.DELIVERED, "order.delivered")
        complete_if_done(uow, actor, order)
        return
    if any(line.quantity_backordered for line in lines):
        return
    if effective_status(order) is OrderStatus.BACKORDERED and any(
            line.quantity_allocated for line in lines):
        progress_through(uow, actor, order, OrderStatus.ALLOCATED, "order.allocated")
    if effective_status(order) is not OrderStatus.ALLOCATED:
        return
    live = [g for g in order.fulfilment_groups if g.status != "cancelled"]
    if live and all(g.status != "allocated" for g in live):
        progress_through(uow, actor, order, OrderStatus.RELEASED, "order.released")
    else:
        request_release(uow, order)
