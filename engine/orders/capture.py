"""Capture: an order drafted by a channel becomes the record, checked and never twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine.actors import Actor
from engine.errors import (
    DuplicateOrderError,
    FieldProblem,
    ForbiddenError,
    InputValidationError,
    OmsError,
    UnknownReferencesError,
    one_of_batch,
)
from engine.iso import decimals, minor_units
from engine.orders.timeline import command_time, record_event
from engine.ports import UnitOfWork
from engine.record import Customer, Order, OrderLine, Product
from engine.status import OrderStatus

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


@dataclass
class Problems:
    items: list[FieldProblem] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.items.append(FieldProblem(path, message))


def capture_order(uow: UnitOfWork, actor: Actor, draft: OrderDraft) -> Order:
    """Record one new order: `capture_orders` with a batch of one.

    Raises:
        the error `capture_orders` reports for it.
    """
    return one_of_batch(capture_orders(uow, actor, [draft]))


def capture_orders(uow: UnitOfWork, actor: Actor,
                   drafts: Sequence[OrderDraft]) -> list[Order | OmsError]:
    """Record new orders in status received, with their lines and first events; return, in
    the drafts' order, each order or why it was refused.

    A constant number of statements whatever the batch's size: the products, customers and
    references already taken are read once, the orders and lines written in one insert each.
    Refusals, each the order's own and leaving the others alone:
        ForbiddenError: an integration key submits for another channel.
        DuplicateOrderError: the channel already sent this reference (also earlier in the
            same batch: the first one is recorded).
        UnknownReferencesError: the customer or some SKUs are not in the record.
        InputValidationError: amounts do not fit the currency, or products are inactive.

    The orders are the first thing a capture writes: when a concurrent request records one
    of their references in the meantime, the transaction is undone and the batch captured
    again, that order refused as a duplicate.
    """
    for attempt in range(CAPTURE_ATTEMPTS):
        results = _checked(uow, actor, drafts, look_up_references=attempt > 0)
        orders = [order for order in results if isinstance(order, Order)]
        uow.session.add_all(orders)
        try:
            uow.session.flush()
            break
        except IntegrityError:
            uow.rollback()  # a twin committed meanwhile: the next round names it
            if attempt == CAPTURE_ATTEMPTS - 1:
                raise
    for order in orders:
        record_event(uow, order, "order.received", actor, status=OrderStatus.RECEIVED.value,
                     channel=order.channel, channel_order_ref=order.channel_order_ref,
                     lines=len(order.lines), total=order.total, currency=order.currency)
    for index, result in enumerate(results):
        if isinstance(result, _Twin):
            first = results[result.first]
            assert isinstance(first, Order)  # a twin's first is recorded
            results[index] = DuplicateOrderError(first.channel, result.reference, first.id)
    return results  # type: ignore[return-value]  # no twin is left


# Rounds of a capture racing twins committed meanwhile (each round names the ones it saw).
CAPTURE_ATTEMPTS = 3


@dataclass(frozen=True)
class _Twin:
    """An order repeating the reference of an earlier one in the batch (`first`)."""

    first: int
    reference: str


def _checked(uow: UnitOfWork, actor: Actor, drafts: Sequence[OrderDraft],
             look_up_references: bool) -> list[Order | OmsError | _Twin]:
    """Check every draft against the record, read once for the batch; build the orders.

    References the channel sent before are looked up only once the unique constraint has
    refused one (`look_up_references`): the common case costs no query for them.
    """
    products = _products_by_sku(uow, {line.sku for draft in drafts for line in draft.lines})
    customers = {customer.id: customer for customer in uow.session.scalars(
        select(Customer).where(Customer.id.in_(sorted({d.customer_id for d in drafts}))))}
    results: list[Order | OmsError | _Twin] = []
    channels: list[str | None] = []
    for draft in drafts:
        try:
            channel = _channel_for(actor, draft.channel)
            customer = _known_customer(draft, customers.get(draft.customer_id), products)
            _check_amounts(draft, products)
        except OmsError as error:
            results.append(error)
            channels.append(None)
            continue
        results.append(_build(actor, draft, channel, customer, products, command_time(uow)))
        channels.append(channel)
    sent = {(channel, draft.channel_order_ref)
            for channel, draft in zip(channels, drafts, strict=True)
            if channel is not None and draft.channel_order_ref}
    taken = _recorded_references(uow, sent) if look_up_references else {}
    first: dict[tuple[str, str], int] = {}
    for index, (known, draft) in enumerate(zip(channels, drafts, strict=True)):
        reference = draft.channel_order_ref
        if known is None or reference is None:
            continue
        channel = known
        if (channel, reference) in taken:
            results[index] = DuplicateOrderError(channel, reference, taken[channel, reference])
        elif (channel, reference) in first:
            results[index] = _Twin(first[channel, reference], reference)
        else:
            first[channel, reference] = index
    return results


def _build(actor: Actor, draft: OrderDraft, channel: str, customer: Customer,
           products: dict[str, Product], now: datetime) -> Order:
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
    return order


def _channel_for(actor: Actor, requested: str | None) -> str:
    if actor.channel is None:
        return requested or MANUAL_CHANNEL
    if requested is not None and requested != actor.channel:
        raise ForbiddenError(
            f"this API key submits orders for channel {actor.channel!r} only, "
            f"not {requested!r}"
        )
    return actor.channel


def _recorded_references(uow: UnitOfWork,
                         wanted: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Return the orders already recorded under these (channel, reference) pairs."""
    if not wanted:
        return {}
    found = uow.session.execute(select(Order.channel, Order.channel_order_ref, Order.id).where(
        Order.channel.in_(sorted({channel for channel, _ in wanted})),
        Order.channel_order_ref.in_(sorted({reference for _, reference in wanted}))))
    recorded: dict[tuple[str, str], int] = {}
    for channel, reference, order_id in found:
        if reference is not None and (channel, reference) in wanted:
            recorded[channel, reference] = order_id
    return recorded


def _products_by_sku(uow: UnitOfWork, skus: set[str]) -> dict[str, Product]:
    rows = uow.session.scalars(select(Product).where(Product.sku.in_(sorted(skus))))
    return {product.sku: product for product in rows}


def _known_customer(draft: OrderDraft, customer: Customer | None,
                    products: dict[str, Product]) -> Customer:
    """Return the order's customer once every reference is known to exist."""
    problems = Problems()
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
    problems = Problems()
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
