"""The round trip after allocation: release to the warehouse, shipments, delivery, invoicing
and completion.

Work that calls a partner runs in jobs, in three steps: read what to send (one
transaction), call the partner with an idempotency key (no transaction open), record what
it answered (another transaction). Each effect is recorded once per key
(`ExternalEffect`), so a job that runs twice, or dies between the call and the record,
calls again with the same key and the partner answers the first answer.

What the warehouse and the carrier tell us arrives as events (`apply_wms_event`,
`apply_tracking_event`), each kept by its id so a duplicate has no second effect, and
never moving a shipment backwards, so events that arrive out of order do no harm.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from engine import transitions, visibility
from engine.actors import Actor
from engine.carriers import choose_carriers
from engine.errors import (
    EventIdReusedError,
    FieldProblem,
    InputValidationError,
    NotFoundError,
    NotReadyError,
)
from engine.exceptions import Failure, handle_failure
from engine.holds import (
    SHIPPED_WHILE_HELD,
    HoldReason,
    put_on_hold,
    stop_released_groups,
)
from engine.inventory import lock_levels, move, unreserve
from engine.iso import minor_units
from engine.job_names import (
    COMPLETE_JOB,
    INVOICE_JOB,
    LABEL_JOB,
    NOTIFY_JOB,
    RELEASE_JOB,
    STOP_JOB,
    WITHDRAW_JOB,
    WMS_CANCEL_JOB,
)
from engine.models import (
    OPEN_GROUP_STATUSES,
    ExternalEffect,
    FulfilmentGroup,
    FulfilmentLine,
    InboundEvent,
    JournalEntry,
    JournalLine,
    Order,
    OrderEvent,
    OrderLine,
    Shipment,
    ShipmentLine,
    utcnow,
)
from engine.money import cumulative_share, share
from engine.orders import get_order, record_event
from engine.ports import (
    Address,
    FinanceReceipt,
    FulfilmentRequest,
    InvoiceLine,
    InvoiceRequest,
    ItemToShip,
    LabelRequest,
    UnitOfWork,
)
from engine.sourcing import source_order
from engine.status import OrderStatus
from engine.transitions import effective_status as effective_status  # returns reads it here
from rules.vocabulary import PAID_UP_FRONT

T = TypeVar("T", FulfilmentGroup, Shipment)

# How far along a shipment is; an event never moves it back.
PROGRESS = {"packed": 0, "shipped": 1, "in_transit": 2, "exception": 2,
            "out_for_delivery": 3, "delivered": 4}
TRACKING_STATUSES = ("in_transit", "out_for_delivery", "delivered", "exception")
WMS_EVENT_TYPES = ("picked", "packed", "shipped", "short_picked")


# --- effects recorded once -------------------------------------------------------------


def effect(uow: UnitOfWork, key: str) -> ExternalEffect | None:
    """Return the recorded effect of this idempotency key, if the call was made."""
    found: ExternalEffect | None = uow.session.scalars(
        select(ExternalEffect).where(ExternalEffect.key == key)).first()
    return found


def record_effect(uow: UnitOfWork, key: str, system: str, operation: str, order_id: int,
                  reference: str, amount: Decimal | None = None) -> ExternalEffect:
    """Record that a partner call took effect (the key is unique: a twin fails to commit)."""
    recorded = ExternalEffect(key=key, system=system, operation=operation, order_id=order_id,
                              reference=reference, amount=amount, created_at=utcnow())
    uow.session.add(recorded)
    return recorded


# --- release to the warehouse ----------------------------------------------------------


def request_release(uow: UnitOfWork, order: Order) -> None:
    """Ask for each allocated group with a carrier to be released to its warehouse, once
    the whole order is allocated (an order waiting for some units keeps its groups until
    they arrive, so it ships complete and its backorders can still be filled). An order
    on its way already (units re-sourced after a short pick) releases its new groups at
    once."""
    under_way = order.status in (OrderStatus.RELEASED, OrderStatus.PARTIALLY_SHIPPED)
    if not under_way and (order.status is not OrderStatus.ALLOCATED or any(
            line.quantity_backordered for line in order.lines)):
        return
    for group in order.fulfilment_groups:
        if group.status == "allocated" and group.carrier_code is not None:
            uow.enqueue_after_commit(RELEASE_JOB, group.id)


def release_key(group_id: int, releases: int = 0) -> str:
    """The key of a group's release; a group released again after a hold withdrew it is a
    new request, with a new key."""
    return f"wms-release-group-{group_id}" + (f"-{releases + 1}" if releases else "")


def release_request(uow: UnitOfWork, group_id: int) -> tuple[FulfilmentRequest, str] | None:
    """What to send the warehouse for a group, and its key; None when there is nothing to
    release (already released, or the order was cancelled or held meanwhile)."""
    locked = _locked(uow, FulfilmentGroup, group_id)  # a hold or cancel decided first
    if locked is None:
        return None
    order, group = locked
    if group.status != "allocated" or group.wms_reference is not None:
        return None
    if order.status is OrderStatus.ON_HOLD:
        return None  # releasing the hold asks again
    if order.status not in (OrderStatus.ALLOCATED, OrderStatus.RELEASED,
                            OrderStatus.PARTIALLY_SHIPPED):
        return None
    return FulfilmentRequest(
        group_id=group.id, order_id=order.id, location_code=group.location_code,
        carrier_code=group.carrier_code, service_code=group.service_code,
        ship_to=_address(order),
        items=tuple(ItemToShip(line.order_line_id, line.sku, line.quantity)
                    for line in group.lines)), release_key(group.id, group.releases)


def record_release(uow: UnitOfWork, actor: Actor, group_id: int, reference: str,
                   sent: tuple[ItemToShip, ...] = ()) -> bool:
    """Record the warehouse's reference for a released group; the order is released once
    all its groups are. Returns False when it was already recorded (a job run twice).

    Units of what was `sent` that a cancellation took while the call was out are then
    stopped at the warehouse."""
    locked = _locked(uow, FulfilmentGroup, group_id)
    if locked is None:
        return False
    order, group = locked
    if group.wms_reference is not None:
        return False
    group.wms_reference, group.released_at = reference, utcnow()
    record_effect(uow, release_key(group_id, group.releases), "wms", "release", order.id,
                  reference)
    group.releases += 1
    if group.status != "allocated":  # cancelled while the call was out: take it back
        record_event(uow, order, "group.released_after_cancel", actor, group=group.id,
                     wms_reference=reference)
        uow.enqueue_after_commit(WMS_CANCEL_JOB, group.id)
        return True
    group.status = "released"
    record_event(uow, order, "group.released", actor, group=group.id,
                 location=group.location_code, wms_reference=reference)
    _stop_cancelled_meanwhile(uow, actor, order, group, sent)
    if order.status is OrderStatus.ON_HOLD:  # held while the call was out: take it back
        stop_released_groups(uow, order)
    if effective_status(order) is OrderStatus.ALLOCATED and all(
            g.status != "allocated" for g in order.fulfilment_groups):
        _progress(uow, actor, order, OrderStatus.RELEASED, "order.released")
        uow.enqueue_after_commit(NOTIFY_JOB, order.id, "confirmation")
    return True


def _stop_cancelled_meanwhile(uow: UnitOfWork, actor: Actor, order: Order,
                              group: FulfilmentGroup, sent: tuple[ItemToShip, ...]) -> None:
    left = {line.order_line_id: line.quantity for line in group.lines}
    numbers = {line.id: line.line_no for line in order.lines}
    extra = [{"line_no": numbers[item.order_line_id], "sku": item.sku,
              "quantity": item.quantity - left.get(item.order_line_id, 0)}
             for item in sent if item.quantity > left.get(item.order_line_id, 0)]
    if extra:
        event = record_event(uow, order, "group.released_after_cancel", actor,
                             group=group.id, wms_reference=group.wms_reference,
                             groups=[{"group": group.id, "location": group.location_code,
                                      "withdrawn": False, "lines": extra}])
        uow.session.flush()
        uow.enqueue_after_commit(STOP_JOB, group.id, event.id)


def cancel_key(group_id: int) -> str:
    return f"wms-cancel-group-{group_id}"


def record_cancel(uow: UnitOfWork, actor: Actor, group_id: int) -> None:
    """Record that the warehouse gave back a cancelled group."""
    group = uow.session.get(FulfilmentGroup, group_id)
    if group is None or group.wms_reference is None or effect(uow, cancel_key(group_id)):
        return
    order = _lock_order(uow, group.order_id)
    record_effect(uow, cancel_key(group_id), "wms", "cancel", order.id, group.wms_reference)
    record_event(uow, order, "group.withdrawn", actor, group=group.id,
                 location=group.location_code, wms_reference=group.wms_reference)


@dataclass(frozen=True)
class Withdrawal:
    """A group to take back from its warehouse because its order is on hold."""

    order_id: int
    location_code: str
    reference: str
    key: str


def withdraw_key(group_id: int, releases: int) -> str:
    return f"wms-withdraw-group-{group_id}-{releases}"


def withdrawal(uow: UnitOfWork, group_id: int) -> Withdrawal | None:
    """What to ask a warehouse to stop for a held order; None when nothing (the hold was
    released before the warehouse was asked, or the group is withdrawn or cancelled)."""
    locked = _locked(uow, FulfilmentGroup, group_id)
    if locked is None:
        return None
    order, group = locked
    if (group.status not in ("on_hold", "cancelled") or group.wms_reference is None
            or effect(uow, cancel_key(group_id)) is not None):
        return None
    return Withdrawal(order.id, group.location_code, group.wms_reference,
                      withdraw_key(group.id, group.releases))


def record_withdrawal(uow: UnitOfWork, actor: Actor, group_id: int, stop: Withdrawal) -> bool:
    """Record that the warehouse stopped a held order's group: it no longer has it, and
    releasing the hold releases it again. Returns False when it was recorded already."""
    locked = _locked(uow, FulfilmentGroup, group_id)
    if locked is None:
        return False
    order, group = locked
    if group.wms_reference != stop.reference or effect(uow, stop.key) is not None:
        return False
    record_effect(uow, stop.key, "wms", "withdraw", order.id, stop.reference)
    group.wms_reference = group.released_at = None
    record_event(uow, order, "group.withdrawn", actor, group=group.id,
                 location=group.location_code, wms_reference=stop.reference,
                 reason="order on hold")
    if group.status == "released":  # the hold was released meanwhile: hand it back
        group.status = "allocated"
        uow.enqueue_after_commit(RELEASE_JOB, group.id)
    return True


# --- cancelling units -------------------------------------------------------------------


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
    claimed = {group.id: _claimed(uow, group, None) for group in groups}
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
        _take_from_group(group_line, units)
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
        _progress(uow, actor, order, OrderStatus.SHIPPED, "order.shipped")
        if all(line.quantity_delivered + line.quantity_cancelled == line.quantity_ordered
               for line in lines):
            _progress(uow, actor, order, OrderStatus.DELIVERED, "order.delivered")
        complete_if_done(uow, actor, order)
        return
    if any(line.quantity_backordered for line in lines):
        return
    if effective_status(order) is OrderStatus.BACKORDERED and any(
            line.quantity_allocated for line in lines):
        _progress(uow, actor, order, OrderStatus.ALLOCATED, "order.allocated")
    if effective_status(order) is not OrderStatus.ALLOCATED:
        return
    live = [g for g in order.fulfilment_groups if g.status != "cancelled"]
    if live and all(g.status != "allocated" for g in live):
        _progress(uow, actor, order, OrderStatus.RELEASED, "order.released")
    else:
        request_release(uow, order)


def stop_key(group_id: int, event_id: int) -> str:
    return f"wms-stop-group-{group_id}-event-{event_id}"


@dataclass(frozen=True)
class StopRequest:
    order_id: int
    location_code: str
    reference: str  # the warehouse's
    items: tuple[ItemToShip, ...]


def stop_request(uow: UnitOfWork, group_id: int, event_id: int) -> StopRequest | None:
    """The units a cancellation (its timeline event) took from a released group, as the
    warehouse is to be told to stop them; None once told, or when the whole group has
    been withdrawn since."""
    group = uow.session.get(FulfilmentGroup, group_id)
    event = uow.session.get(OrderEvent, event_id)
    if (group is None or event is None or group.wms_reference is None
            or group.status == "cancelled" or effect(uow, stop_key(group_id, event_id))):
        return None
    taken = next((entry["lines"] for entry in event.data.get("groups", ())
                  if entry["group"] == group_id), None)
    if not taken:
        return None
    line_ids = {line.line_no: line.id for line in group.order.lines}
    return StopRequest(group.order_id, group.location_code, group.wms_reference,
                       tuple(ItemToShip(line_ids[line["line_no"]], line["sku"],
                                        line["quantity"]) for line in taken))


def record_stop(uow: UnitOfWork, actor: Actor, group_id: int, event_id: int,
                request: StopRequest) -> None:
    """Record that the warehouse stopped the units of a cancellation (once)."""
    key = stop_key(group_id, event_id)
    order = _lock_order(uow, request.order_id)
    if effect(uow, key):
        return
    record_effect(uow, key, "wms", "stop", order.id, request.reference)
    lines = {line.id: line.line_no for line in order.lines}
    record_event(uow, order, "group.units_stopped", actor, group=group_id,
                 location=request.location_code, wms_reference=request.reference,
                 lines=[{"line_no": lines[item.order_line_id], "sku": item.sku,
                         "quantity": item.quantity} for item in request.items])


# --- events from the warehouse ---------------------------------------------------------


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


@dataclass(frozen=True)
class Applied:
    outcome: str  # applied, duplicate, ignored
    order_id: int | None
    detail: str | None = None
    shipment_id: int | None = None


def apply_wms_event(uow: UnitOfWork, actor: Actor, event: WmsEvent,
                    payload: dict[str, Any]) -> Applied:
    """Apply a warehouse confirmation once.

    Raises:
        NotFoundError: the fulfilment group does not exist.
        InputValidationError: lines that are not in the group, or more than it holds.
    """
    group = uow.session.scalar(select(FulfilmentGroup).where(
        FulfilmentGroup.id == event.group_id, visibility.groups(actor)))
    if group is None:  # another location's group is, for this warehouse, no group at all
        raise NotFoundError("fulfilment group", event.group_id)
    order = _lock_order(uow, group.order_id)  # twins of one event queue here
    seen = _seen(uow, "wms", event.event_id, payload)
    if seen is not None:
        return Applied("duplicate", seen.order_id, seen.detail)
    uow.session.refresh(group, with_for_update=True)
    if group.status == "allocated":  # the release is on its way: the sender tries again
        raise NotReadyError(f"fulfilment group {group.id} is not released yet")
    if group.status not in ("released", "on_hold", "shipped"):
        return _remember(uow, "wms", event.event_id, event.type, order, payload, "ignored",
                         f"the group is {group.status}, not released")
    packed = (_packed(uow, group, event.package_ref) if event.type in ("packed", "shipped")
              else None)
    if event.type == "shipped" and packed is not None and not event.lines:
        quantities: dict[str, int] = {}
        for packed_line in packed.lines:  # as packed
            quantities[packed_line.sku] = quantities.get(packed_line.sku, 0) + packed_line.quantity
    else:
        quantities = _check_lines(uow, group, event, packed)
    if event.tracking_number is not None:
        _check_tracking_free(uow, event.tracking_number, packed)
    shipment_id = None
    if event.type == "picked":
        record_event(uow, order, "group.picked", actor, group=group.id)
    elif event.type == "packed":
        shipment = packed or _new_shipment(uow, order, group, event, quantities)
        shipment_id = shipment.id
        if shipment.tracking_number is None and order.status is not OrderStatus.ON_HOLD:
            uow.enqueue_after_commit(LABEL_JOB, shipment.id)  # on hold: bought on release
    elif event.type == "shipped":
        shipment = packed or _new_shipment(uow, order, group, event, quantities)
        shipment_id = shipment.id
        _ship(uow, actor, order, group, shipment, event)
    else:  # short_picked
        _short_pick(uow, actor, order, group, quantities)
    return _remember(uow, "wms", event.event_id, event.type, order, payload, "applied",
                     None, shipment_id)


def _packed(uow: UnitOfWork, group: FulfilmentGroup, package: str | None) -> Shipment | None:
    """The package the event names, if the warehouse reported it before."""
    if package is None:
        return None
    found: Shipment | None = uow.session.scalars(select(Shipment).where(
        Shipment.group_id == group.id, Shipment.package_ref == package)
        .with_for_update()).first()
    return found


def _claimed(uow: UnitOfWork, group: FulfilmentGroup,
             packed: Shipment | None) -> dict[int, int]:
    """Units per order line already in other packages of the group not shipped yet."""
    claimed: dict[int, int] = {}
    for other in uow.session.scalars(select(Shipment).where(
            Shipment.group_id == group.id, Shipment.shipped_at.is_(None))):
        if packed is None or other.id != packed.id:
            for line in other.lines:
                claimed[line.order_line_id] = claimed.get(line.order_line_id, 0) + line.quantity
    return claimed


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


def _check_tracking_free(uow: UnitOfWork, tracking_number: str,
                         packed: Shipment | None) -> None:
    taken = uow.session.scalar(select(Shipment.id).where(
        Shipment.tracking_number == tracking_number))
    if taken is not None and (packed is None or taken != packed.id):
        raise InputValidationError([FieldProblem(
            "tracking_number", f"{tracking_number} is already shipment {taken}'s")])


def _check_lines(uow: UnitOfWork, group: FulfilmentGroup, event: WmsEvent,
                 packed: Shipment | None) -> dict[str, int]:
    """Units per SKU the event names, checked against what the group still holds and has
    not packed into another package yet (a package reported again must match itself)."""
    holds = _free(group, _claimed(uow, group, packed))
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


def _new_shipment(uow: UnitOfWork, order: Order, group: FulfilmentGroup, event: WmsEvent,
                  quantities: dict[str, int]) -> Shipment:
    """The shipment a package makes (without a package id, the event is its id)."""
    package = event.package_ref or event.event_id
    claimed = _claimed(uow, group, None)
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
    return shipment


def _ship(uow: UnitOfWork, actor: Actor, order: Order, group: FulfilmentGroup,
          shipment: Shipment, event: WmsEvent) -> None:
    """Goods leave: stock and reservation go down, the lines count them as shipped."""
    if shipment.shipped_at is not None:
        return
    if event.tracking_number and shipment.tracking_number is None:
        shipment.tracking_number = event.tracking_number
    shipment.status, shipment.shipped_at = "shipped", event.occurred_at or utcnow()
    _fix_amounts(uow, order, shipment)
    levels = lock_levels(uow, [(line.sku, group.location_code) for line in shipment.lines])
    by_line = {line.order_line_id: line for line in group.lines}
    for line in shipment.lines:
        move(uow, actor, levels[(line.sku, group.location_code)], "shipment", -line.quantity,
             -line.quantity, reference=f"shipment {shipment.id}", order_id=order.id)
        order_line = line.order_line
        order_line.quantity_allocated -= line.quantity
        order_line.quantity_shipped += line.quantity
        _take_from_group(by_line[line.order_line_id], line.quantity)
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
    _progress(uow, actor, order, target, event_type)
    if order.status is OrderStatus.ON_HOLD:
        # it happened, so it is recorded; but ops must look at it, and nothing is billed or
        # announced before the hold is released
        put_on_hold(uow, actor, order, "fulfilment", [HoldReason(
            SHIPPED_WHILE_HELD,
            f"Package {shipment.package_ref} (shipment {shipment.id}) left "
            f"{group.location_code} while the order was on hold; it is billed and announced "
            "once the hold is released.")], shipment=shipment.id)
        return
    uow.enqueue_after_commit(INVOICE_JOB, shipment.id)
    uow.enqueue_after_commit(NOTIFY_JOB, order.id, f"shipped:{shipment.id}")


def _take_from_group(line: FulfilmentLine, quantity: int) -> None:
    """A group's lines are what it still has to ship (and holds reserved): they shrink as
    it ships, and a line at zero goes."""
    line.quantity -= quantity
    if line.quantity == 0:
        line.group.lines.remove(line)


def _short_pick(uow: UnitOfWork, actor: Actor, order: Order, group: FulfilmentGroup,
                quantities: dict[str, int]) -> None:
    """The warehouse could not find the units: its stock is corrected down, the units
    leave the group (never billed: only shipments are), the customer is told, and the
    exceptions rules decide what becomes of them (stock_short): re-sourced elsewhere or
    backordered (`resource`, and when the rules say nothing), waiting on the order's
    hold (`hold`), or cancelled (`cancel`)."""
    levels = lock_levels(uow, [(sku, group.location_code) for sku in quantities])
    claimed = _claimed(uow, group, None)
    short: dict[int, int] = {}  # order line id -> units missing
    for sku, quantity in quantities.items():
        move(uow, actor, levels[(sku, group.location_code)], "short_pick", -quantity,
             -quantity, reason="short picked", reference=f"group {group.id}",
             order_id=order.id)
        for line, part in _spread(group, sku, quantity, claimed):
            line.order_line.quantity_allocated -= part
            short[line.order_line_id] = short.get(line.order_line_id, 0) + part
            _take_from_group(line, part)
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
        _close_if_done(uow, actor, order)
    elif order.status is OrderStatus.ON_HOLD:  # they wait with the order; its release
        for line_id, units in short.items():  # sources them again
            lines[line_id].quantity_backordered += units
    else:  # re-source them elsewhere, or backorder them until stock arrives
        source_order(uow, actor, order, excluded=frozenset({group.location_code}))
        choose_carriers(uow, actor, order)
        request_release(uow, order)


def _close_if_done(uow: UnitOfWork, actor: Actor, order: Order) -> None:
    """An order with every unit shipped or cancelled is shipped (or cancelled, if none
    shipped)."""
    lines = order.lines
    if all(line.quantity_shipped + line.quantity_cancelled == line.quantity_ordered
           for line in lines):
        if any(line.quantity_shipped for line in lines):
            _progress(uow, actor, order, OrderStatus.SHIPPED, "order.shipped")
        elif transitions.may_move(order, OrderStatus.CANCELLED):
            transitions.move(uow, actor, order, OrderStatus.CANCELLED, "order.cancelled")


# --- labels ----------------------------------------------------------------------------


def label_key(shipment_id: int) -> str:
    return f"carrier-label-shipment-{shipment_id}"


def label_request(uow: UnitOfWork, shipment_id: int) -> LabelRequest | None:
    """What to ask the carrier for; None when the shipment has its label already, or its
    order is on hold (releasing the hold asks again)."""
    locked = _locked(uow, Shipment, shipment_id)
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
                        origin_location=shipment.location_code, ship_to=_address(order),
                        weight_kg=shipment.weight_kg, declared_value=value)


def record_label(uow: UnitOfWork, actor: Actor, shipment_id: int, tracking_number: str,
                 cost: Decimal) -> bool:
    locked = _locked(uow, Shipment, shipment_id)
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


# --- carrier tracking ------------------------------------------------------------------


@dataclass(frozen=True)
class TrackingEvent:
    event_id: str
    tracking_number: str
    status: str  # in_transit, out_for_delivery, delivered, exception
    occurred_at: datetime
    detail: str | None = None


def apply_tracking_event(uow: UnitOfWork, actor: Actor, event: TrackingEvent,
                         payload: dict[str, Any]) -> Applied:
    """Apply a carrier's tracking event once, never moving the shipment backwards.

    Raises:
        NotFoundError: no shipment has this tracking number.
    """
    shipment = uow.session.scalars(select(Shipment).where(
        Shipment.tracking_number == event.tracking_number, visibility.shipments(actor))).first()
    if shipment is None:
        # another carrier's parcel is, for this carrier, no parcel at all
        raise NotFoundError("shipment with tracking number", event.tracking_number)
    order = _lock_order(uow, shipment.order_id)
    seen = _seen(uow, "carrier", event.event_id, payload)
    if seen is not None:
        return Applied("duplicate", seen.order_id, seen.detail, shipment.id)
    uow.session.refresh(shipment, with_for_update=True)
    if shipment.shipped_at is None:  # the warehouse's confirmation is on its way
        raise NotReadyError(f"shipment {event.tracking_number} has not been confirmed "
                            "shipped by the warehouse yet")
    if shipment.delivered_at is not None or (
            PROGRESS[event.status] <= PROGRESS[shipment.status] and event.status != "exception"):
        return _remember(uow, "carrier", event.event_id, event.status, order, payload,
                         "ignored", f"the shipment is already {shipment.status}", shipment.id)
    shipment.status = event.status
    record_event(uow, order, f"shipment.{event.status}", actor, shipment=shipment.id,
                 tracking_number=shipment.tracking_number, detail=event.detail,
                 occurred_at=event.occurred_at.isoformat())
    if event.status == "delivered":
        _deliver(uow, actor, order, shipment, event.occurred_at)
    return _remember(uow, "carrier", event.event_id, event.status, order, payload, "applied",
                     None, shipment.id)


def _deliver(uow: UnitOfWork, actor: Actor, order: Order, shipment: Shipment,
             at: datetime) -> None:
    shipment.delivered_at = at
    for line in shipment.lines:
        line.order_line.quantity_delivered += line.quantity
    if order.status is not OrderStatus.ON_HOLD:  # else told once the hold is released
        uow.enqueue_after_commit(NOTIFY_JOB, order.id, f"delivered:{shipment.id}")
    if effective_status(order) is OrderStatus.SHIPPED and all(
            line.quantity_delivered + line.quantity_cancelled == line.quantity_ordered
            for line in order.lines):
        _progress(uow, actor, order, OrderStatus.DELIVERED, "order.delivered")
    complete_if_done(uow, actor, order)


def in_transit(uow: UnitOfWork, carriers: set[str],
               limit: int = 1000) -> list[tuple[str, str]]:
    """(carrier, tracking number) of shipments of these carriers not yet delivered, the
    longest on the road first."""
    if not carriers:
        return []
    rows = uow.session.execute(select(Shipment.carrier_code, Shipment.tracking_number).where(
        Shipment.carrier_code.in_(carriers), Shipment.shipped_at.is_not(None),
        Shipment.delivered_at.is_(None), Shipment.tracking_number.is_not(None))
        .order_by(Shipment.shipped_at).limit(limit))
    return [(carrier, tracking) for carrier, tracking in rows if carrier and tracking]


# --- invoicing and payment -------------------------------------------------------------


@dataclass(frozen=True)
class Billing:
    """What one shipment bills, and the payment steps it needs (keys in order)."""

    order_id: int
    currency: str
    invoice: InvoiceRequest
    gross: Decimal
    paid_up_front: bool
    order_total: Decimal  # what the payment is authorised for, once per order (less what
    # was cancelled before the first shipment was billed)

    @property
    def authorise_key(self) -> str:
        return f"finance-authorise-order-{self.order_id}"

    @property
    def capture_key(self) -> str:
        return f"finance-capture-{self.invoice.reference}"

    @property
    def invoice_key(self) -> str:
        return f"finance-invoice-{self.invoice.reference}"


def billing(uow: UnitOfWork, shipment_id: int) -> Billing | None:
    """What to bill for a shipped shipment (its amounts were fixed as it shipped); None
    once it is invoiced, or while its order is on hold (releasing the hold bills it)."""
    locked = _locked(uow, Shipment, shipment_id)
    if locked is None:
        return None
    order, shipment = locked
    if (shipment.shipped_at is None or shipment.invoiced_at is not None
            or order.status is OrderStatus.ON_HOLD):
        return None
    assert shipment.net_amount is not None and shipment.tax_amount is not None
    places = _places(order)
    lines, running = [], Decimal(0)
    for line in shipment.lines:  # the shipment's tax spread over its lines, exactly
        net = (line.order_line.unit_price * line.quantity).quantize(places)
        tax = cumulative_share(shipment.tax_amount, running, net, shipment.net_amount, places)
        running += net
        lines.append(InvoiceLine(line.sku, line.quantity, net, tax))
    shipping = shipment.shipping_amount or Decimal(0)
    invoice = InvoiceRequest(order_id=order.id, customer_id=order.customer_id,
                             currency=order.currency, lines=tuple(lines), shipping=shipping,
                             reference=f"shipment-{shipment.id}")
    gross = shipment.net_amount + shipment.tax_amount + shipping
    return Billing(order.id, order.currency, invoice, gross,
                   order.payment_terms in PAID_UP_FRONT, billable_total(order))


def billable_total(order: Order) -> Decimal:
    """What the order bills in all once everything not cancelled has shipped (what its
    payment is authorised for): cancelled units are never billed, nor their tax."""
    places = _places(order)
    net = sum(((line.unit_price * (line.quantity_ordered - line.quantity_cancelled))
               .quantize(places) for line in order.lines), Decimal(0))
    if not net:
        return Decimal(0)
    return net + share(order.tax_amount, net, order.subtotal, places) + order.shipping_amount


def _fix_amounts(uow: UnitOfWork, order: Order, shipment: Shipment) -> None:
    """Fix what a shipment bills as it ships, under the order's lock: its lines' net, the
    order's tax spread by cumulative share of the net shipped so far (so an order's
    invoices add up to its tax exactly), and the shipping charge on the first shipment."""
    places = _places(order)
    earlier = [s for s in uow.session.scalars(select(Shipment).where(
        Shipment.order_id == order.id, Shipment.shipped_at.is_not(None),
        Shipment.id != shipment.id)) if s.net_amount is not None]
    before = sum((s.net_amount or Decimal(0) for s in earlier), Decimal(0))
    net = sum(((line.order_line.unit_price * line.quantity).quantize(places)
               for line in shipment.lines), Decimal(0))
    shipment.net_amount = net
    shipment.tax_amount = cumulative_share(order.tax_amount, before, net, order.subtotal, places)
    shipment.shipping_amount = Decimal(0) if earlier else order.shipping_amount


def _places(order: Order) -> Decimal:
    return Decimal(1).scaleb(-minor_units(order.currency))


def record_finance(uow: UnitOfWork, key: str, operation: str, order_id: int,
                   receipt: FinanceReceipt) -> None:
    """Record one finance effect (authorisation, capture) unless it already is; a twin
    job recording it at the same moment is no error."""
    if effect(uow, key) is not None:
        return
    try:
        with uow.session.begin_nested():
            record_effect(uow, key, "finance", operation, order_id, receipt.reference,
                          receipt.amount.amount)
    except IntegrityError:
        pass  # recorded by the twin


def record_invoice(uow: UnitOfWork, actor: Actor, shipment_id: int, bill: Billing,
                   receipt: FinanceReceipt) -> bool:
    locked = _locked(uow, Shipment, shipment_id)
    if locked is None or locked[1].invoiced_at is not None:
        return False
    order, shipment = locked
    shipment.invoice_reference, shipment.invoiced_at = receipt.reference, utcnow()
    record_finance(uow, bill.invoice_key, "invoice", order.id, receipt)
    record_event(uow, order, "shipment.invoiced", actor, shipment=shipment.id,
                 invoice=receipt.reference, amount=receipt.amount.amount,
                 currency=receipt.amount.currency)
    complete_if_done(uow, actor, order)
    return True


def complete_if_done(uow: UnitOfWork, actor: Actor, order: Order) -> None:
    """Complete a delivered order once every shipment of it is invoiced (an order on hold
    completes once the hold is released and the sweep finds it)."""
    if order.status is not OrderStatus.DELIVERED:
        return
    shipments = list(uow.session.scalars(select(Shipment).where(
        Shipment.order_id == order.id)))
    if all(s.invoiced_at is not None for s in shipments):
        transitions.move(uow, actor, order, OrderStatus.COMPLETED, "order.completed")


# --- holds -----------------------------------------------------------------------------


def on_hold(uow: UnitOfWork, order_id: int) -> bool:
    """Tell, under the order's lock, whether it is on hold: a job that bills checks it
    before each call, so a hold placed while it runs stops what is left of it."""
    order = _lock_order(uow, order_id)
    return order.status is OrderStatus.ON_HOLD


def resume_held_work(uow: UnitOfWork, order: Order) -> None:
    """Hand out again what a hold stopped, once the order is off hold: groups withdrawn from
    their warehouses are released again (a group the warehouse still has stays there),
    packed packages get their labels, shipped ones are billed, and the customer hears
    what shipped or arrived meanwhile. Every job runs once per key, so work that was never
    stopped is not done twice."""
    for group in order.fulfilment_groups:
        if group.status == "on_hold":
            group.status = "allocated" if group.wms_reference is None else "released"
            if group.wms_reference is None:
                uow.enqueue_after_commit(RELEASE_JOB, group.id)
    shipments = list(uow.session.scalars(select(Shipment).where(
        Shipment.order_id == order.id).order_by(Shipment.id)))
    for shipment in shipments:
        if shipment.shipped_at is None:
            if (shipment.tracking_number is None and shipment.carrier_code is not None
                    and shipment.group.status != "cancelled"):
                uow.enqueue_after_commit(LABEL_JOB, shipment.id)
            continue
        if shipment.invoiced_at is None:
            uow.enqueue_after_commit(INVOICE_JOB, shipment.id)
        uow.enqueue_after_commit(NOTIFY_JOB, order.id, f"shipped:{shipment.id}")
        if shipment.delivered_at is not None:
            uow.enqueue_after_commit(NOTIFY_JOB, order.id, f"delivered:{shipment.id}")
    if order.status is OrderStatus.DELIVERED:
        uow.enqueue_after_commit(COMPLETE_JOB, order.id)


# --- work that stalled -----------------------------------------------------------------


def stalled_work(uow: UnitOfWork, before: datetime) -> list[tuple[str, int]]:
    """Jobs whose work is still undone although it was asked for before `before`: a
    worker died mid-job, or a job was lost. Running them again is safe (each is
    idempotent), so a periodic sweep hands them out again."""
    releases = uow.session.scalars(
        select(FulfilmentGroup.id).join(Order, Order.id == FulfilmentGroup.order_id).where(
            FulfilmentGroup.status == "allocated", FulfilmentGroup.carrier_code.is_not(None),
            FulfilmentGroup.created_at < before,
            # released or shipping already: a group a hold withdrew, to hand back
            Order.status.in_((OrderStatus.ALLOCATED, OrderStatus.RELEASED,
                              OrderStatus.PARTIALLY_SHIPPED)),
            ~select(OrderLine.id).where(OrderLine.order_id == Order.id,
                                        OrderLine.quantity_backordered > 0).exists()))
    live = Shipment.order_id.in_(select(Order.id).where(
        Order.status.not_in((OrderStatus.ON_HOLD, OrderStatus.CANCELLED))))
    labels = uow.session.scalars(select(Shipment.id).join(FulfilmentGroup).where(
        Shipment.tracking_number.is_(None), Shipment.carrier_code.is_not(None),
        Shipment.shipped_at.is_(None), Shipment.created_at < before,
        FulfilmentGroup.status != "cancelled", live))
    bills = uow.session.scalars(select(Shipment.id).where(
        Shipment.shipped_at < before, Shipment.invoiced_at.is_(None), live))
    done = uow.session.scalars(select(Order.id).where(
        Order.status == OrderStatus.DELIVERED, Order.updated_at < before,
        ~select(Shipment.id).where(Shipment.order_id == Order.id,
                                   Shipment.invoiced_at.is_(None)).exists()))
    # held groups the warehouse still has: the job asking for them back was lost
    withdrawals = uow.session.scalars(select(FulfilmentGroup.id).where(
        FulfilmentGroup.status == "on_hold", FulfilmentGroup.wms_reference.is_not(None),
        FulfilmentGroup.released_at < before))
    return ([(RELEASE_JOB, group_id) for group_id in releases]
            + [(WITHDRAW_JOB, group_id) for group_id in withdrawals]
            + [(LABEL_JOB, shipment_id) for shipment_id in labels]
            + [(INVOICE_JOB, shipment_id) for shipment_id in bills]
            + [(COMPLETE_JOB, order_id) for order_id in done])


# --- shared ----------------------------------------------------------------------------


def order_shipments(uow: UnitOfWork, actor: Actor, order_id: int) -> list[Shipment]:
    """Return the order's shipments, oldest first, if this actor may see the order."""
    order = get_order(uow, actor, order_id)
    return list(uow.session.scalars(select(Shipment).where(Shipment.order_id == order.id)
                                    .order_by(Shipment.id)))


def journal(uow: UnitOfWork, actor: Actor, order_id: int) -> list[JournalEntry]:
    """Return the embedded ledger's entries for an order, in posting order."""
    order = get_order(uow, actor, order_id)
    return list(uow.session.scalars(select(JournalEntry).where(
        JournalEntry.order_id == order.id).order_by(JournalEntry.id)))


def trial_balance(uow: UnitOfWork) -> dict[str, tuple[Decimal, Decimal]]:
    """Debits and credits per account over the whole embedded ledger, exactly."""
    if uow.session.get_bind().dialect.name != "postgresql":
        # SQLite keeps amounts as text and would sum them as floats: add them up here
        totals: dict[str, tuple[Decimal, Decimal]] = {}
        for account, debit, credit in uow.session.execute(
                select(JournalLine.account, JournalLine.debit, JournalLine.credit)):
            before = totals.get(account, (Decimal(0), Decimal(0)))
            totals[account] = (before[0] + debit, before[1] + credit)
        return dict(sorted(totals.items()))
    rows = uow.session.execute(select(JournalLine.account, func.sum(JournalLine.debit),
                                      func.sum(JournalLine.credit))
                               .group_by(JournalLine.account).order_by(JournalLine.account))
    return {account: (Decimal(debit or 0), Decimal(credit or 0))
            for account, debit, credit in rows}


def released_work(uow: UnitOfWork, actor: Actor, location_code: str) -> list[FulfilmentGroup]:
    """What a location's warehouse has been given and not yet shipped: its pick list.

    Raises:
        NotFoundError: a location this actor does not work at.
    """
    visibility.check_location(actor, location_code)
    return list(uow.session.scalars(select(FulfilmentGroup).where(
        FulfilmentGroup.location_code == location_code, FulfilmentGroup.status == "released",
        visibility.groups(actor))
        .order_by(FulfilmentGroup.released_at, FulfilmentGroup.id).limit(500)))


def _address(order: Order) -> Address:
    return Address(order.ship_to_name, order.ship_to_line1, order.ship_to_city,
                   order.ship_to_postal_code, order.ship_to_country)


def _lock_order(uow: UnitOfWork, order_id: int) -> Order:
    order = uow.session.get(Order, order_id, with_for_update=True, populate_existing=True)
    if order is None:
        raise NotFoundError("order", order_id)
    return order


def _locked(uow: UnitOfWork, kind: type[T], row_id: int) -> tuple[Order, T] | None:
    """Lock the order a group or shipment belongs to, then the row: always in that order,
    as the event handlers do, so that jobs and events never deadlock."""
    row = uow.session.get(kind, row_id)
    if row is None:
        return None
    order = _lock_order(uow, row.order_id)
    uow.session.refresh(row, with_for_update=True)
    return order, row


def _progress(uow: UnitOfWork, actor: Actor, order: Order, target: OrderStatus,
              event_type: str) -> None:
    """Move the order forward to `target`, through `released` if it was still allocated
    (one group shipped before its sibling's release was recorded). An order on hold stays
    on hold: the hold remembers the new step, and releasing it returns there."""
    current = effective_status(order)
    if current is target:
        return
    if current is OrderStatus.ALLOCATED and target is not OrderStatus.RELEASED:
        transitions.progress(uow, actor, order, OrderStatus.RELEASED, "order.released")
    transitions.progress(uow, actor, order, target, event_type)


def _seen(uow: UnitOfWork, source: str, event_id: str,
          payload: dict[str, Any]) -> InboundEvent | None:
    """The event already received under this id, if it is this same event.

    Raises:
        EventIdReusedError: the id was first used for a different payload.
    """
    found: InboundEvent | None = uow.session.scalars(select(InboundEvent).where(
        InboundEvent.source == source, InboundEvent.event_id == event_id)).first()
    if found is not None and payload_fingerprint(found.payload) != payload_fingerprint(payload):
        raise EventIdReusedError(source, event_id)
    return found


def payload_fingerprint(payload: dict[str, Any]) -> str:
    """What identifies 'the same event': its payload as canonical JSON (the stored payload
    is the request as validated, so a field sent in another order or spelling matches)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _remember(uow: UnitOfWork, source: str, event_id: str, type: str, order: Order,
              payload: dict[str, Any], outcome: str, detail: str | None,
              shipment_id: int | None = None) -> Applied:
    uow.session.add(InboundEvent(source=source, event_id=event_id, type=type,
                                 order_id=order.id, payload=payload, outcome=outcome,
                                 detail=detail, received_at=utcnow()))
    return Applied(outcome, order.id, detail, shipment_id)
