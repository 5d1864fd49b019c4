"""Order use cases: capture, read, list, the timeline, and the status commands."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import Select, exists, select
from sqlalchemy.exc import IntegrityError

from engine.actors import Actor
from engine.errors import (
    DuplicateOrderError,
    FieldProblem,
    ForbiddenError,
    InputValidationError,
    NotFoundError,
    NotOnHoldError,
    UnknownReferencesError,
)
from engine.inventory import offer_to_backorders, release_groups
from engine.iso import decimals, minor_units
from engine.models import Customer, Hold, Order, OrderEvent, OrderLine, Product, utcnow
from engine.paging import fetch_page
from engine.ports import UnitOfWork
from engine.status import OrderStatus, check_transition
from engine.webhooks import fan_out

MANUAL_CHANNEL = "manual"
MANUAL_QUEUE = "manual"  # holds a person puts on an order
# What the record's amount columns hold (NUMERIC(18, 4)): 14 digits before the point.
MAX_AMOUNT = Decimal(10) ** 14
LIMIT = "99,999,999,999,999.99"


@dataclass(frozen=True)
class Address:
    name: str
    line1: str
    city: str
    country: str
    line2: str | None = None
    region: str | None = None
    postal_code: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class LineDraft:
    sku: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class OrderDraft:
    """An order as a channel submits it, already well-formed."""

    customer_id: str
    currency: str
    service_level: str
    shipping_address: Address
    lines: Sequence[LineDraft]
    channel: str | None = None
    channel_order_ref: str | None = None
    payment_terms: str | None = None  # None: the customer's terms
    shipping_amount: Decimal = Decimal("0")
    tax_amount: Decimal = Decimal("0")


@dataclass(frozen=True)
class OrderQuery:
    # Each filter matches any of its values; an empty one does not filter.
    status: tuple[OrderStatus, ...] = ()
    channel: tuple[str, ...] = ()
    customer_id: tuple[str, ...] = ()
    sku: tuple[str, ...] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    limit: int = 50
    before_id: int | None = None  # the cursor: orders come newest first


@dataclass(frozen=True)
class OrderPage:
    orders: list[Order]
    next_before_id: int | None


@dataclass
class _Problems:
    items: list[FieldProblem] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.items.append(FieldProblem(path, message))


def record_event(uow: UnitOfWork, order: Order, type: str, actor: Actor,
                 **data: Any) -> OrderEvent:
    """Append one entry to the order's timeline; amounts (`Decimal`) are written with the
    decimals of the order's currency ("15.00" in BRL, "1500" in JPY)."""
    places = Decimal(1).scaleb(-minor_units(order.currency))
    data = {name: str(value.quantize(places, rounding=ROUND_HALF_EVEN))
            if isinstance(value, Decimal) else value for name, value in data.items()}
    event = OrderEvent(order_id=order.id, type=type, actor_type=actor.type,
                       actor_id=actor.id, data=data, occurred_at=utcnow())
    uow.session.add(event)
    fan_out(uow, order, event)  # the webhooks owed for it, sent once the transaction commits
    return event


def capture_order(uow: UnitOfWork, actor: Actor, draft: OrderDraft) -> Order:
    """Record a new order in status received, with its lines and first event.

    Raises:
        ForbiddenError: an integration key submits for another channel.
        DuplicateOrderError: the channel already sent this reference.
        UnknownReferencesError: the customer or some SKUs are not in the record.
        InputValidationError: amounts do not fit the currency, or products are inactive.
    """
    channel = _channel_for(actor, draft.channel)
    products = _products_by_sku(uow, {line.sku for line in draft.lines})
    customer = _known_customer(draft, uow.session.get(Customer, draft.customer_id), products)
    _check_amounts(draft, products)

    places = minor_units(draft.currency)
    lines = [
        OrderLine(line_no=number, sku=line.sku, product=products[line.sku],
                  unit_price=line.unit_price,
                  quantity_ordered=line.quantity,
                  line_total=_round(line.unit_price * line.quantity, places),
                  quantity_allocated=0, quantity_shipped=0, quantity_delivered=0,
                  quantity_cancelled=0, quantity_returned=0)
        for number, line in enumerate(draft.lines, start=1)
    ]
    subtotal = sum((line.line_total for line in lines), Decimal("0"))
    address = draft.shipping_address
    now = utcnow()
    order = Order(
        channel=channel, channel_order_ref=draft.channel_order_ref,
        customer_id=customer.id, status=OrderStatus.RECEIVED, currency=draft.currency,
        service_level=draft.service_level,
        payment_terms=draft.payment_terms or customer.payment_terms,
        ship_to_name=address.name, ship_to_line1=address.line1, ship_to_line2=address.line2,
        ship_to_city=address.city, ship_to_region=address.region,
        ship_to_postal_code=address.postal_code, ship_to_country=address.country,
        ship_to_phone=address.phone,
        subtotal=subtotal, shipping_amount=draft.shipping_amount,
        tax_amount=draft.tax_amount,
        total=subtotal + draft.shipping_amount + draft.tax_amount,
        created_by=actor.label, created_at=now, updated_at=now, lines=lines,
        fulfilment_groups=[],
    )
    order.customer = customer  # the stages that follow read it, without asking again
    _insert_once(uow, order)
    record_event(uow, order, "order.received", actor, status=OrderStatus.RECEIVED.value,
                 channel=channel, channel_order_ref=draft.channel_order_ref,
                 lines=len(lines), total=order.total, currency=order.currency)
    return order


def get_order(uow: UnitOfWork, actor: Actor, order_id: int, lock: bool = False) -> Order:
    """Return the order if it exists and this actor may see it.

    With `lock`, the order's row is locked until the transaction ends, and read afresh.

    Raises:
        NotFoundError: also for another channel's order, so that its existence does not leak.
    """
    order = (uow.session.get(Order, order_id, with_for_update=True, populate_existing=True)
             if lock else uow.session.get(Order, order_id))
    if order is None or not _may_see(actor, order):
        raise NotFoundError("order", order_id)
    return order


def list_orders(uow: UnitOfWork, actor: Actor, query: OrderQuery) -> OrderPage:
    """Return one page of orders, newest first, and the cursor of the next page."""
    statement: Select[Order] = select(Order).order_by(Order.id.desc())
    if actor.channel is not None:
        statement = statement.where(Order.channel == actor.channel)
    if query.status:
        statement = statement.where(Order.status.in_(query.status))
    if query.channel:
        statement = statement.where(Order.channel.in_(query.channel))
    if query.customer_id:
        statement = statement.where(Order.customer_id.in_(query.customer_id))
    if query.sku:
        statement = statement.where(
            exists().where(OrderLine.order_id == Order.id, OrderLine.sku.in_(query.sku))
        )
    if query.created_from is not None:
        statement = statement.where(Order.created_at >= query.created_from)
    if query.created_to is not None:
        statement = statement.where(Order.created_at < query.created_to)
    if query.before_id is not None:
        statement = statement.where(Order.id < query.before_id)
    orders, next_before = fetch_page(uow.session, statement, query.limit, lambda o: o.id)
    return OrderPage(orders, next_before)


def order_events(uow: UnitOfWork, actor: Actor, order_id: int) -> list[OrderEvent]:
    """Return the order's timeline, oldest first."""
    order = get_order(uow, actor, order_id)
    return list(uow.session.scalars(
        select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)
    ))


def cancel_order(uow: UnitOfWork, actor: Actor, order_id: int, reason: str) -> Order:
    """Cancel everything on the order that has not shipped.

    Raises:
        InvalidTransitionError: the order has shipped, or is already closed.
    """
    order = _lock_order(uow, actor, order_id)
    previous = order.status
    _move(order, OrderStatus.CANCELLED)
    order.held_from = None
    resolve_holds(uow, actor, order, "cancelled")
    freed = release_groups(uow, actor, order.id, "order cancelled")
    for line in order.lines:
        line.quantity_cancelled = line.quantity_ordered - line.quantity_shipped
        line.quantity_allocated = line.quantity_backordered = 0
    uow.session.flush()
    offer_to_backorders(uow, freed)
    record_event(uow, order, "order.cancelled", actor, reason=reason,
                 previous_status=previous.value, status=order.status.value)
    return order


def hold_order(uow: UnitOfWork, actor: Actor, order_id: int, reason: str) -> Order:
    """Put the order on hold for review; releasing it returns it to where it was."""
    order = _lock_order(uow, actor, order_id)
    previous = order.status
    _move(order, OrderStatus.ON_HOLD)
    order.held_from = previous.value
    uow.session.add(Hold(order_id=order.id, stage="manual", queue=MANUAL_QUEUE, reason=reason,
                         created_by=actor.label, created_at=utcnow()))
    record_event(uow, order, "order.held", actor, reason=reason,
                 previous_status=previous.value, status=order.status.value)
    return order


def release_hold(uow: UnitOfWork, actor: Actor, order_id: int, note: str | None) -> Order:
    """Take the order off hold, back to the status it was held at."""
    order = _lock_order(uow, actor, order_id)
    previous = order.status
    if previous is not OrderStatus.ON_HOLD or order.held_from is None:
        raise NotOnHoldError(order.id, previous.value)
    _move(order, OrderStatus(order.held_from))
    order.held_from = None
    resolve_holds(uow, actor, order, "released")
    record_event(uow, order, "order.hold_released", actor, note=note,
                 previous_status=previous.value, status=order.status.value)
    return order


def open_holds(uow: UnitOfWork, order: Order) -> list[Hold]:
    """Return the order's holds that nobody has resolved yet."""
    return list(uow.session.scalars(select(Hold).where(Hold.order_id == order.id,
                                                       Hold.resolved_at.is_(None))))


def resolve_holds(uow: UnitOfWork, actor: Actor, order: Order, resolution: str) -> list[Hold]:
    """Close every open hold of the order with this resolution; return them."""
    holds = open_holds(uow, order)
    now = utcnow()
    for hold in holds:
        hold.resolved_at, hold.resolved_by, hold.resolution = now, actor.label, resolution
    return holds


def _move(order: Order, target: OrderStatus) -> None:
    check_transition(order.status, target,
                     OrderStatus(order.held_from) if order.held_from else None)
    order.status = target
    order.updated_at = utcnow()


def _lock_order(uow: UnitOfWork, actor: Actor, order_id: int) -> Order:
    return get_order(uow, actor, order_id, lock=True)


def _may_see(actor: Actor, order: Order) -> bool:
    return actor.channel is None or actor.channel == order.channel


def _channel_for(actor: Actor, requested: str | None) -> str:
    if actor.channel is None:
        return requested or MANUAL_CHANNEL
    if requested is not None and requested != actor.channel:
        raise ForbiddenError(
            f"this API key submits orders for channel {actor.channel!r} only, "
            f"not {requested!r}"
        )
    return actor.channel


def _refuse_duplicate(uow: UnitOfWork, channel: str, reference: str) -> None:
    existing = uow.session.scalar(
        select(Order.id).where(Order.channel == channel, Order.channel_order_ref == reference)
    )
    if existing is not None:
        raise DuplicateOrderError(channel, reference, existing)


def _insert_once(uow: UnitOfWork, order: Order) -> None:
    """Insert the order; the unique (channel, reference) constraint refuses a twin.

    The constraint, not a prior look-up, decides: it also settles concurrent twins, and
    the common case costs no extra query. On a refusal the transaction is undone (the
    order is the first thing a capture writes) and the existing order is named.
    """
    uow.session.add(order)
    try:
        uow.session.flush()
    except IntegrityError:
        uow.rollback()
        if order.channel_order_ref is not None:
            _refuse_duplicate(uow, order.channel, order.channel_order_ref)
        raise


def _products_by_sku(uow: UnitOfWork, skus: set[str]) -> dict[str, Product]:
    rows = uow.session.scalars(select(Product).where(Product.sku.in_(sorted(skus))))
    return {product.sku: product for product in rows}


def _known_customer(draft: OrderDraft, customer: Customer | None,
                    products: dict[str, Product]) -> Customer:
    """Return the order's customer once every reference is known to exist."""
    problems = _Problems()
    if customer is None:
        problems.add("customer_id", f"no customer {draft.customer_id!r}")
    unknown: list[str] = []
    for index, line in enumerate(draft.lines):
        if line.sku not in products:
            problems.add(f"lines/{index}/sku", f"no product with SKU {line.sku!r}")
            if line.sku not in unknown:
                unknown.append(line.sku)
    if problems.items:
        raise UnknownReferencesError(
            draft.customer_id if customer is None else None, unknown, problems.items
        )
    assert customer is not None  # a missing customer is a problem above: narrows the type
    return customer


def _check_amounts(draft: OrderDraft, products: dict[str, Product]) -> None:
    problems = _Problems()
    places = minor_units(draft.currency)
    for index, line in enumerate(draft.lines):
        if not products[line.sku].active:
            problems.add(f"lines/{index}/sku", f"product {line.sku!r} is not active")
        if decimals(line.unit_price) > places:
            problems.add(f"lines/{index}/unit_price",
                         f"{draft.currency} amounts have at most {places} decimals")
    for name in ("shipping_amount", "tax_amount"):
        if decimals(getattr(draft, name)) > places:
            problems.add(name, f"{draft.currency} amounts have at most {places} decimals")
    line_totals = [line.unit_price * line.quantity for line in draft.lines]
    for index, total in enumerate(line_totals):
        if total >= MAX_AMOUNT:
            problems.add(f"lines/{index}/quantity", f"the line total {total} is over {LIMIT}")
    if sum(line_totals) + draft.shipping_amount + draft.tax_amount >= MAX_AMOUNT:
        problems.add("lines", f"the order total is over {LIMIT}")
    if problems.items:
        raise InputValidationError(problems.items)


def _round(amount: Decimal, places: int) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
