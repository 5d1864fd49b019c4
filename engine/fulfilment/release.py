"""Release to the warehouse in waves, and taking back what it should no longer ship."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.orm import joinedload

from engine.actors import Actor
from engine.effects import effect, record_effect
from engine.fulfilment.common import progress_through, ship_to_address
from engine.fulfilment.waves import WavePolicy, nudge
from engine.job_names import (
    NOTIFY_JOB,
    RELEASE_WAVE_JOB,
    STOP_JOB,
    WMS_CANCEL_JOB,
)
from engine.orders.holds import stop_released_groups
from engine.orders.locking import lock_order, lock_orders, lock_with_order
from engine.orders.timeline import record_event
from engine.orders.transitions import effective_status
from engine.ports import (
    FulfilmentRequest,
    ItemToShip,
    UnitOfWork,
)
from engine.record import (
    FulfilmentGroup,
    Order,
    OrderEvent,
    utcnow,
)
from engine.status import GroupStatus, OrderStatus

# An order is released while it is allocated, or later on for groups re-sourced after a
# short pick, or handed back after a hold withdrew them; not while held or cancelled.
RELEASABLE = (OrderStatus.ALLOCATED, OrderStatus.RELEASED, OrderStatus.PARTIALLY_SHIPPED)


def request_release(uow: UnitOfWork, order: Order) -> None:
    """Put each allocated group with a carrier in the next wave to its warehouse, once the
    whole order is allocated (an order waiting for some units keeps its groups until they
    arrive, so it ships complete and its backorders can still be filled). An order on its
    way already (units re-sourced after a short pick) has its new groups released too."""
    under_way = order.status in (OrderStatus.RELEASED, OrderStatus.PARTIALLY_SHIPPED)
    if not under_way and (order.status is not OrderStatus.ALLOCATED or any(
            line.quantity_backordered for line in order.lines)):
        return
    for group in order.fulfilment_groups:
        if group.status == "allocated" and group.carrier_code is not None:
            ready_for_wave(uow, group)


def ready_for_wave(uow: UnitOfWork, group: FulfilmentGroup) -> None:
    """Put one group in the next wave to its warehouse (it keeps its place if it has one)."""
    if group.ready_at is None:
        group.ready_at = utcnow()
    nudge(uow, RELEASE_WAVE_JOB, group.location_code)


def release_key(group_id: int, releases: int = 0) -> str:
    """The key of a group's release; a group released again after a hold withdrew it is a
    new request, with a new key."""
    return f"wms-release-group-{group_id}" + (f"-{releases + 1}" if releases else "")


def _waiting(policy: WavePolicy, now: datetime) -> ColumnElement[bool]:
    """Groups in the next wave: ready, still to release, their order neither held nor
    cancelled, and no live wave job has them."""
    return and_(FulfilmentGroup.ready_at.is_not(None),
                FulfilmentGroup.status == GroupStatus.ALLOCATED,
                FulfilmentGroup.wms_reference.is_(None), Order.status.in_(RELEASABLE),
                policy.unclaimed(FulfilmentGroup.wave_claimed_at, now))


def due_release_waves(uow: UnitOfWork, policy: WavePolicy, now: datetime,
                      location_code: str | None = None) -> list[tuple[str, int]]:
    """The locations whose wave is due, with how many groups to send them now (one query
    for every location)."""
    statement = (select(FulfilmentGroup.location_code, func.count(),
                        func.count().filter(FulfilmentGroup.ready_at
                                            <= policy.overdue_before(now)))
                 .join(Order, Order.id == FulfilmentGroup.order_id)
                 .where(_waiting(policy, now))
                 .group_by(FulfilmentGroup.location_code)
                 .order_by(FulfilmentGroup.location_code))
    if location_code is not None:
        statement = statement.where(FulfilmentGroup.location_code == location_code)
    due = [(code, policy.to_cut(waiting, overdue))
           for code, waiting, overdue in uow.session.execute(statement)]
    return [(code, count) for code, count in due if count]


def claim_release_wave(uow: UnitOfWork, location_code: str, size: int, policy: WavePolicy,
                       now: datetime) -> list[tuple[FulfilmentRequest, str]]:
    """Claim the next wave to a warehouse, oldest groups first, at most `size`; return
    what to send for each group and its key. Groups and orders another transaction has
    locked (a hold or a cancel being decided, another wave job) are skipped: they go in a
    later wave if they still should."""
    ids = list(uow.session.scalars(
        select(FulfilmentGroup.id).join(Order, Order.id == FulfilmentGroup.order_id)
        .where(FulfilmentGroup.location_code == location_code, _waiting(policy, now))
        .order_by(FulfilmentGroup.id).limit(size)
        .with_for_update(skip_locked=True, of=(FulfilmentGroup.__table__, Order.__table__))))
    if not ids:
        return []
    uow.session.execute(update(FulfilmentGroup).where(FulfilmentGroup.id.in_(ids))
                        .values(wave_claimed_at=now))
    groups = uow.session.scalars(
        select(FulfilmentGroup).where(FulfilmentGroup.id.in_(ids))
        .order_by(FulfilmentGroup.id).options(joinedload(FulfilmentGroup.order))
        .execution_options(populate_existing=True))
    return [(FulfilmentRequest(
        group_id=group.id, order_id=group.order_id, location_code=group.location_code,
        carrier_code=group.carrier_code, service_code=group.service_code,
        ship_to=ship_to_address(group.order),
        items=tuple(ItemToShip(line.order_line_id, line.sku, line.quantity)
                    for line in group.lines)), release_key(group.id, group.releases))
        for group in groups]


def unclaim_release_wave(uow: UnitOfWork, group_ids: Sequence[int]) -> None:
    """Give back the groups of a wave whose call failed: the next wave sends them."""
    uow.session.execute(update(FulfilmentGroup).where(
        FulfilmentGroup.id.in_(group_ids), FulfilmentGroup.wms_reference.is_(None))
        .values(wave_claimed_at=None))


@dataclass(frozen=True)
class Released:
    """A group the warehouse took: its reference for it, and the units it was sent."""

    group_id: int
    reference: str
    sent: tuple[ItemToShip, ...] = ()


def record_releases(uow: UnitOfWork, actor: Actor, released: Sequence[Released]) -> int:
    """Record the warehouse's reference for each group of a wave; an order is released
    once all its groups are. Returns how many were recorded (a group recorded already, by
    a job run twice, is skipped).

    The orders are locked first, in key order, then the groups (the one lock order). Units
    of what was `sent` that a cancellation took while the call was out are then stopped at
    the warehouse; a group cancelled or held meanwhile is taken back."""
    group_ids = [item.group_id for item in released]
    orders = lock_orders(uow, uow.session.scalars(select(FulfilmentGroup.order_id).where(
        FulfilmentGroup.id.in_(group_ids))), with_groups=True)
    groups = {group.id: group for group in uow.session.scalars(
        select(FulfilmentGroup).where(FulfilmentGroup.id.in_(group_ids))
        .order_by(FulfilmentGroup.id).with_for_update()
        .execution_options(populate_existing=True))}
    recorded = 0
    for item in released:
        group = groups.get(item.group_id)
        if group is not None and _record_release(uow, actor, orders[group.order_id], group,
                                                  item.reference, item.sent):
            recorded += 1
    return recorded


def _record_release(uow: UnitOfWork, actor: Actor, order: Order, group: FulfilmentGroup,
                    reference: str, sent: tuple[ItemToShip, ...]) -> bool:
    if group.wms_reference is not None:
        return False
    group.wms_reference, group.released_at = reference, utcnow()
    group.ready_at = group.wave_claimed_at = None
    record_effect(uow, release_key(group.id, group.releases), "wms", "release", order.id,
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
        progress_through(uow, actor, order, OrderStatus.RELEASED, "order.released")
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
    order = lock_order(uow, group.order_id)
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
    locked = lock_with_order(uow, FulfilmentGroup, group_id)
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
    locked = lock_with_order(uow, FulfilmentGroup, group_id)
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
        ready_for_wave(uow, group)
    return True


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
    order = lock_order(uow, request.order_id)
    if effect(uow, key):
        return
    record_effect(uow, key, "wms", "stop", order.id, request.reference)
    lines = {line.id: line.line_no for line in order.lines}
    record_event(uow, order, "group.units_stopped", actor, group=group_id,
                 location=request.location_code, wms_reference=request.reference,
                 lines=[{"line_no": lines[item.order_line_id], "sku": item.sku,
                         "quantity": item.quantity} for item in request.items])
