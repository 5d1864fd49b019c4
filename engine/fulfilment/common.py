"""What fulfilment's parts share: shipment progress, inbound events, the ship-to address."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select

from engine import visibility
from engine.actors import Actor
from engine.errors import (
    EventIdReusedError,
    OmsError,
)
from engine.orders import transitions
from engine.orders.reading import get_order
from engine.orders.transitions import effective_status
from engine.ports import (
    Address,
    UnitOfWork,
)
from engine.record import (
    FulfilmentGroup,
    FulfilmentLine,
    InboundEvent,
    Order,
    Shipment,
    utcnow,
)
from engine.status import OrderStatus

# How far along a shipment is; an event never moves it back.
PROGRESS = {"packed": 0, "shipped": 1, "in_transit": 2, "exception": 2,
            "out_for_delivery": 3, "delivered": 4}


TRACKING_STATUSES = ("in_transit", "out_for_delivery", "delivered", "exception")


WMS_EVENT_TYPES = ("picked", "packed", "shipped", "short_picked")

T = TypeVar("T")

@dataclass(frozen=True)
class Applied:
    """What became of an inbound event from a warehouse or a carrier."""

    outcome: str  # applied, duplicate, ignored
    order_id: int | None
    detail: str | None = None
    shipment_id: int | None = None


def claimed_units(uow: UnitOfWork, group: FulfilmentGroup,
             packed: Shipment | None) -> dict[int, int]:
    """Units per order line already in other packages of the group not shipped yet."""
    return units_claimed(uow.session.scalars(select(Shipment).where(
        Shipment.group_id == group.id, Shipment.shipped_at.is_(None))), packed)


def units_claimed(packages: Iterable[Shipment], packed: Shipment | None) -> dict[int, int]:
    """Units per order line in these packages not shipped yet, but for `packed`."""
    claimed: dict[int, int] = {}
    for other in packages:
        if other.shipped_at is None and (packed is None or other.id != packed.id):
            for line in other.lines:
                claimed[line.order_line_id] = claimed.get(line.order_line_id, 0) + line.quantity
    return claimed


def take_from_group(line: FulfilmentLine, quantity: int) -> None:
    """A group's lines are what it still has to ship (and holds reserved): they shrink as
    it ships, and a line at zero goes."""
    line.quantity -= quantity
    if line.quantity == 0:
        line.group.lines.remove(line)


def order_shipments(uow: UnitOfWork, actor: Actor, order_id: int) -> list[Shipment]:
    """Return the order's shipments, oldest first, if this actor may see the order."""
    order = get_order(uow, actor, order_id)
    return list(uow.session.scalars(select(Shipment).where(Shipment.order_id == order.id)
                                    .order_by(Shipment.id)))


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


def ship_to_address(order: Order) -> Address:
    return Address(order.ship_to_name, order.ship_to_line1, order.ship_to_city,
                   order.ship_to_postal_code, order.ship_to_country)


def progress_through(uow: UnitOfWork, actor: Actor, order: Order, target: OrderStatus,
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


@dataclass(frozen=True)
class Seen:
    """An inbound event received before: what it was (its payload's fingerprint) and what
    became of it."""

    fingerprint: str
    order_id: int | None
    detail: str | None


def seen_events(uow: UnitOfWork, source: str, event_ids: Iterable[str]) -> dict[str, Seen]:
    """The events already received from `source` under these ids, read in one query."""
    wanted = sorted(set(event_ids))
    if not wanted:
        return {}
    return {found.event_id: Seen(payload_fingerprint(found.payload), found.order_id,
                                 found.detail)
            for found in uow.session.scalars(select(InboundEvent).where(
                InboundEvent.source == source, InboundEvent.event_id.in_(wanted)))}


def repeat_of(seen: dict[str, Seen], source: str, event_id: str,
              payload: dict[str, Any]) -> Seen | None:
    """The event already received under this id, if it is this same event.

    Raises:
        EventIdReusedError: the id was first used for a different payload.
    """
    found = seen.get(event_id)
    if found is not None and found.fingerprint != payload_fingerprint(payload):
        raise EventIdReusedError(source, event_id)
    return found


def payload_fingerprint(payload: dict[str, Any]) -> str:
    """What identifies 'the same event': its payload as canonical JSON (the stored payload
    is the request as validated, so a field sent in another order or spelling matches)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def remember_event(uow: UnitOfWork, seen: dict[str, Seen], source: str, event_id: str,
                   type: str, order: Order, payload: dict[str, Any], outcome: str,
                   detail: str | None, shipment_id: int | None = None) -> Applied:
    """Keep the event under its id (a repeat, in this batch or later, is a duplicate)."""
    uow.session.add(InboundEvent(source=source, event_id=event_id, type=type,
                                 order_id=order.id, payload=payload, outcome=outcome,
                                 detail=detail, received_at=utcnow()))
    seen[event_id] = Seen(payload_fingerprint(payload), order.id, detail)
    return Applied(outcome, order.id, detail, shipment_id)


def each_on_its_own(uow: UnitOfWork, items: Sequence[T], apply: Callable[[T], Applied],
                    undone: Callable[[], None]) -> list[Applied | OmsError]:
    """Apply each item of a batch in its own savepoint: one refused is undone alone and
    answers its error, and the others stand (`undone` forgets what a refused one left in
    the caller's reads)."""
    outcomes: list[Applied | OmsError] = []
    for item in items:
        try:
            with uow.session.begin_nested():
                outcome = apply(item)
        except OmsError as error:
            undone()
            outcomes.append(error)
        else:
            outcomes.append(outcome)
    return outcomes
