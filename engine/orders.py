"""Order use cases: capture, read, list, the timeline, and cancelling."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import Select, exists, select
from sqlalchemy.exc import IntegrityError

from engine import visibility
from engine.actors import Actor
from engine.errors import (
    DuplicateOrderError,
    FieldProblem,
    ForbiddenError,
    InputValidationError,
    NotFoundError,
    UnknownReferencesError,
)
from engine.holds import resolve_holds
from engine.inventory import offer_to_backorders
from engine.iso import decimals, minor_units
from engine.job_names import STOP_JOB
from engine.models import Customer, Order, OrderEvent, OrderLine, Product, utcnow
from engine.paging import fetch_page
from engine.ports import UnitOfWork
from engine.status import OrderStatus
from engine.timeline import record_event as record_event  # its home before the timeline had one
from engine.transitions import check_move, effective_status, move

MANUAL_CHANNEL = "manual"
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
    if order is None or not visibility.may_see(uow, actor, order):
        raise NotFoundError("order", order_id)
    return order


def list_orders(uow: UnitOfWork, actor: Actor, query: OrderQuery) -> OrderPage:
    """Return one page of orders, newest first, and the cursor of the next page."""
    statement: Select[Order] = select(Order).order_by(Order.id.desc())
    statement = statement.where(visibility.orders(actor))
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
    from engine import fulfilment  # builds on this module: imported here, not at the top

    order = _lock_order(uow, actor, order_id)
    previous = order.status
    if effective_status(order) is not OrderStatus.PARTIALLY_SHIPPED:
        check_move(order, OrderStatus.CANCELLED)
    wanted, first = _units_to_cancel(order, lines)
    plan = fulfilment.plan_cancel(uow, order, wanted)
    if plan.packed:
        raise InputValidationError([
            FieldProblem(f"lines/{first[line_id]}/quantity" if lines is not None else "lines",
                         message) for line_id, message in plan.packed.items()])
    outcome = fulfilment.cancel_units(uow, actor, order, plan,
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
        fulfilment.move_on(uow, actor, order)
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
    problems = _Problems()
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


def _lock_order(uow: UnitOfWork, actor: Actor, order_id: int) -> Order:
    return get_order(uow, actor, order_id, lock=True)


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
