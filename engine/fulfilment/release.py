"""Release to the warehouse, and taking back what it should no longer ship (cancelled, held)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.actors import Actor
from engine.effects import effect, record_effect
from engine.fulfilment.common import progress_through, ship_to_address
from engine.job_names import (
    NOTIFY_JOB,
    RELEASE_JOB,
    STOP_JOB,
    WMS_CANCEL_JOB,
)
from engine.orders.holds import stop_released_groups
from engine.orders.locking import lock_order, lock_with_order
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
from engine.status import OrderStatus


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
    locked = lock_with_order(uow, FulfilmentGroup, group_id)  # a hold or cancel decided first
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
        ship_to=ship_to_address(order),
        items=tuple(ItemToShip(line.order_line_id, line.sku, line.quantity)
                    for line in group.lines)), release_key(group.id, group.releases)


def record_release(uow: UnitOfWork, actor: Actor, group_id: int, reference: str,
                   sent: tuple[ItemToShip, ...] = ()) -> bool:
    """Record the warehouse's reference for a released group; the order is released once
    all its groups are. Returns False when it was already recorded (a job run twice).

    Units of what was `sent` that a cancellation took while the call was out are then
    stopped at the warehouse."""
    locked = lock_with_order(uow, FulfilmentGroup, group_id)
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
        uow.enqueue_after_commit(RELEASE_JOB, group.id)
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
