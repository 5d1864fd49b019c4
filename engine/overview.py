"""One order as a person reads it: lines with every quantity, where it ships from and how,
its shipments, returns and ledger, its open holds, and one timeline that merges what
happened (events), what the rules decided (each decision explained) and what people did.

Reads only; every part comes from the function that owns it (one visibility rule, through
`orders.reading.get_order`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from engine.actors import Actor
from engine.decisions.explaining import Detail, Explanation, explain_decision, show
from engine.decisions.sourcing import fulfilment_groups
from engine.finance.returns import RETURNABLE, order_returns
from engine.fulfilment.billing import journal
from engine.fulfilment.common import order_shipments
from engine.orders.holds import open_holds
from engine.orders.reading import OrderPage, OrderQuery, get_order, list_orders, order_events
from engine.orders.transitions import effective_status, may_move
from engine.ports import UnitOfWork
from engine.record import (
    Customer,
    FulfilmentGroup,
    Hold,
    JournalEntry,
    Location,
    Order,
    OrderDecision,
    OrderEvent,
    OrderReturn,
    Product,
    Shipment,
)
from engine.status import OrderStatus

# What each kind of event is called on a person's timeline (others: from their type).
EVENT_TITLES = {
    "order.received": "Order received",
    "order.validated": "Validated",
    "order.rejected": "Rejected",
    "order.allocated": "Allocated",
    "order.partially_allocated": "Partly allocated",
    "order.backordered": "Backordered: waiting for stock",
    "order.carrier_selected": "Carriers chosen",
    "order.released": "Released to the warehouse",
    "order.held": "Put on hold",
    "order.hold_released": "Hold released",
    "hold.released": "Hold released",
    "hold.assigned": "Hold assigned",
    "hold.commented": "Comment",
    "order.cancelled": "Cancelled",
    "order.lines_cancelled": "Units cancelled",
    "order.partially_shipped": "Partly shipped",
    "order.shipped": "Shipped",
    "order.delivered": "Delivered",
    "order.completed": "Completed",
    "order.returned": "Goods returned",
    "order.step_while_held": "Happened while on hold",
    "group.released": "Group released to its warehouse",
    "group.picked": "Group picked",
    "group.short_picked": "Short pick",
    "group.withdrawn": "Group withdrawn from its warehouse",
    "group.units_stopped": "Warehouse told to stop units",
    "group.released_after_cancel": "Group released after a cancellation",
    "shipment.labelled": "Label printed",
    "shipment.shipped": "Package shipped",
    "shipment.in_transit": "In transit",
    "shipment.out_for_delivery": "Out for delivery",
    "shipment.delivered": "Package delivered",
    "shipment.exception": "Carrier reports a problem",
    "shipment.invoiced": "Invoiced",
    "return.settled": "Return credited",
    "return.settlement_failed": "Return credit failed",
    "notification.requested": "Notification",
}
# Event data already shown elsewhere on the entry (the status change, the explanation).
_SHOWN_APART = frozenset({"previous_status", "status", "decision_id", "version", "stage",
                          "body", "reason", "note"})
COMMENT_EVENTS = frozenset({"hold.commented"})
PERSON = "user"  # the actor type of a person signed in to the console


@dataclass(frozen=True)
class LineView:
    line_no: int
    sku: str
    name: str
    unit_price: Decimal
    line_total: Decimal
    ordered: int
    allocated: int
    backordered: int
    shipped: int
    delivered: int
    cancelled: int
    returned: int

    @property
    def open(self) -> int:
        """Units neither shipped nor cancelled: what a cancellation may still take."""
        return self.ordered - self.shipped - self.cancelled

    @property
    def returnable(self) -> int:
        return self.shipped - self.returned


@dataclass(frozen=True)
class GroupView:
    group: FulfilmentGroup
    location_name: str
    lines: list[tuple[int, str, int]]  # line_no, sku, units


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened to the order, by whom, with the decision behind it."""

    at: datetime
    kind: str  # "event", "decision", "comment"
    type: str
    title: str
    actor: str  # "user:ana", "api_key:erp", "system:release"
    by_person: bool
    previous_status: str | None = None
    status: str | None = None
    note: str | None = None  # a comment, a reason
    details: list[Detail] = field(default_factory=list)
    explanation: Explanation | None = None

    @property
    def actor_name(self) -> str:
        return self.actor.split(":", 1)[1] if ":" in self.actor else self.actor

    @property
    def status_changed(self) -> bool:
        return bool(self.status and self.previous_status and self.status != self.previous_status)


@dataclass(frozen=True)
class Actions:
    """What may be done to the order now (the role check is the caller's: ops)."""

    hold: bool
    release: bool
    cancel: bool
    ret: bool  # record a return


@dataclass(frozen=True)
class OrderOverview:
    order: Order
    customer_name: str
    lines: list[LineView]
    groups: list[GroupView]
    shipments: list[Shipment]
    returns: list[OrderReturn]
    ledger: list[JournalEntry]
    ledger_balanced: bool
    holds: list[Hold]
    timeline: list[TimelineEntry]
    actions: Actions

    @property
    def totals(self) -> dict[str, int]:
        """Return each quantity summed over the lines."""
        names = ("ordered", "allocated", "backordered", "shipped", "delivered", "cancelled",
                 "returned")
        return {name: sum(getattr(line, name) for line in self.lines) for name in names}


def order_overview(uow: UnitOfWork, actor: Actor, order_id: int) -> OrderOverview:
    """Return everything a person needs to see about one order.

    Raises:
        NotFoundError: no such order, or one this actor may not see.
    """
    order = get_order(uow, actor, order_id)
    customer = uow.session.get(Customer, order.customer_id)
    names = _product_names(uow, [line.sku for line in order.lines])
    lines = [LineView(line.line_no, line.sku, names.get(line.sku, ""), line.unit_price,
                      line.line_total, line.quantity_ordered,
                      line.quantity_allocated, line.quantity_backordered,
                      line.quantity_shipped, line.quantity_delivered,
                      line.quantity_cancelled, line.quantity_returned)
             for line in order.lines]
    line_nos = {line.id: line.line_no for line in order.lines}
    groups = fulfilment_groups(uow, actor, order.id)
    places = _location_names(uow, [group.location_code for group in groups])
    group_views = [GroupView(group, places.get(group.location_code, ""),
                             [(line_nos.get(item.order_line_id, 0), item.sku, item.quantity)
                              for item in group.lines])
                   for group in groups]
    ledger = journal(uow, actor, order.id)
    decisions = list(uow.session.scalars(select(OrderDecision).where(
        OrderDecision.order_id == order.id).order_by(OrderDecision.id)))
    return OrderOverview(
        order=order, customer_name=customer.name if customer else "",
        lines=lines, groups=group_views,
        shipments=order_shipments(uow, actor, order.id),
        returns=order_returns(uow, actor, order.id),
        ledger=ledger,
        ledger_balanced=all(sum(line.debit for line in entry.lines)
                            == sum(line.credit for line in entry.lines) for entry in ledger),
        holds=open_holds(uow, order),
        timeline=merge_timeline(order_events(uow, actor, order.id), decisions),
        actions=available_actions(order, lines),
    )


def available_actions(order: Order, lines: Sequence[LineView]) -> Actions:
    """Return what the order's state allows: the engine refuses the rest anyway."""
    status = effective_status(order)
    held = order.status is OrderStatus.ON_HOLD
    cancellable = (status is OrderStatus.PARTIALLY_SHIPPED
                   or may_move(order, OrderStatus.CANCELLED))
    return Actions(
        hold=held or may_move(order, OrderStatus.ON_HOLD),
        release=held,
        cancel=cancellable and any(line.open > 0 for line in lines),
        ret=status in RETURNABLE and any(line.returnable > 0 for line in lines),
    )


def merge_timeline(events: Sequence[OrderEvent],
                   decisions: Sequence[OrderDecision]) -> list[TimelineEntry]:
    """Merge the order's events and its rule decisions into one list, oldest first.

    An event that names a decision (`decision_id`) carries its explanation; a decision no
    event names (a dry run never is one) stands on its own at the time it was made.
    """
    by_id = {decision.id: decision for decision in decisions}
    named: set[int] = set()
    entries: list[tuple[datetime, int, int, TimelineEntry]] = []
    for event in events:
        data = event.data or {}
        named_id = data.get("decision_id")
        decision = by_id.get(named_id) if isinstance(named_id, int) else None
        if decision is not None:
            named.add(decision.id)
        entries.append((event.occurred_at, 1, event.id, _event_entry(event, decision)))
    for decision in decisions:
        if decision.id not in named:
            explanation = explain_decision(decision)
            entries.append((decision.evaluated_at, 0, decision.id, TimelineEntry(
                at=decision.evaluated_at, kind="decision", type=f"decision.{decision.stage}",
                title=f"{explanation.stage_label} decided: {explanation.outcome_words}",
                actor="rules", by_person=False, explanation=explanation)))
    entries.sort(key=lambda entry: entry[:3])
    return [entry for *_, entry in entries]


def _event_entry(event: OrderEvent, decision: OrderDecision | None) -> TimelineEntry:
    data: Mapping[str, Any] = event.data or {}
    comment = event.type in COMMENT_EVENTS
    note = data.get("body") if comment else (data.get("reason") or data.get("note"))
    return TimelineEntry(
        at=event.occurred_at, kind="comment" if comment else "event", type=event.type,
        title=EVENT_TITLES.get(event.type, _title_of(event.type)),
        actor=f"{event.actor_type}:{event.actor_id}", by_person=event.actor_type == PERSON,
        previous_status=_text(data.get("previous_status")), status=_text(data.get("status")),
        note=str(note) if isinstance(note, str) and note else None,
        details=[Detail(name.replace("_", " ").capitalize(), describe(value))
                 for name, value in data.items()
                 if name not in _SHOWN_APART and value not in (None, [], {}, "")],
        explanation=explain_decision(decision) if decision is not None else None)


def describe(value: Any) -> str:
    """Return an event's value in words: lists of records one per item ("2 × LAMP-1")."""
    if isinstance(value, list) and value and all(isinstance(item, Mapping) for item in value):
        return "; ".join(_record(item) for item in value)
    if isinstance(value, Mapping):
        return _record(value)
    return show(value)


def _record(item: Mapping[str, Any]) -> str:
    if "sku" in item and "quantity" in item:
        line = f" (line {item['line_no']})" if "line_no" in item else ""
        return f"{item['quantity']} × {item['sku']}{line}"
    if "message" in item:
        return str(item["message"]) + (f" [{item['code']}]" if item.get("code") else "")
    if "location" in item and "units" in item:
        return f"{item['location']}: {item['units']} unit(s)"
    return ", ".join(f"{key.replace('_', ' ')} {describe(value)}" for key, value in item.items()
                     if value not in (None, [], {}))


def _title_of(event_type: str) -> str:
    return event_type.replace(".", " ").replace("_", " ").capitalize()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _product_names(uow: UnitOfWork, skus: Sequence[str]) -> dict[str, str]:
    if not skus:
        return {}
    return {sku: name for sku, name in uow.session.execute(
        select(Product.sku, Product.name).where(Product.sku.in_(set(skus))))}


def _location_names(uow: UnitOfWork, codes: Sequence[str]) -> dict[str, str]:
    if not codes:
        return {}
    return {code: name for code, name in uow.session.execute(
        select(Location.code, Location.name).where(Location.code.in_(set(codes))))}


@dataclass(frozen=True)
class OrderRow:
    """One order in a search result, with what a person scans a list for."""

    order: Order
    customer_name: str


@dataclass(frozen=True)
class SearchPage:
    rows: list[OrderRow]
    next_before_id: int | None


def search_orders(uow: UnitOfWork, actor: Actor, query: OrderQuery) -> SearchPage:
    """Return one page of orders (the REST list's query and order) with customers' names."""
    found: OrderPage = list_orders(uow, actor, query)
    ids = {order.customer_id for order in found.orders}
    names = {key: name for key, name in uow.session.execute(
        select(Customer.id, Customer.name).where(Customer.id.in_(ids)))} if ids else {}
    return SearchPage([OrderRow(order, names.get(order.customer_id, ""))
                       for order in found.orders], found.next_before_id)
