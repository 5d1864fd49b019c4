"""Returns: goods back from the customer, back on the shelf, credited and refunded.

Recording a return is one transaction: the order lines count the units returned, the
units go back into stock where they shipped from (unless they are not fit to sell), the
backorders waiting for them get their chance, and `order.returned` is on the timeline. A
job then settles it with the finance system: a credit note against the order's invoice,
and, for orders paid up front, a refund; each once, by its own key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import select

from engine.actors import Actor
from engine.errors import FieldProblem, InputValidationError, InvalidTransitionError
from engine.fulfilment import NOTIFY_JOB, PAID_UP_FRONT, effective_status, record_finance
from engine.inventory import lock_levels, move, offer_to_backorders
from engine.iso import minor_units
from engine.models import Order, OrderLine, OrderReturn, Shipment, ShipmentLine, utcnow
from engine.orders import get_order, record_event
from engine.ports import FinanceReceipt, UnitOfWork
from engine.status import OrderStatus

SETTLE_JOB = "jobs.fulfilment.settle_return"
RETURNABLE = (OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.DELIVERED,
              OrderStatus.COMPLETED)


@dataclass(frozen=True)
class ReturnedUnits:
    sku: str
    quantity: int


def record_return(uow: UnitOfWork, actor: Actor, order_id: int,
                  units: Sequence[ReturnedUnits], reason: str, restock: bool) -> OrderReturn:
    """Record goods coming back.

    Raises:
        NotFoundError: no such order (for this actor).
        InvalidTransitionError: nothing of the order has shipped.
        InputValidationError: more units of a SKU than shipped and not yet returned.
    """
    order = get_order(uow, actor, order_id, lock=True)
    if effective_status(order) not in RETURNABLE:
        raise InvalidTransitionError(order.status.value, "returned", order.held_from)
    parts = _spread(order, units)
    origins = _origins(uow, order.id)
    places = Decimal(1).scaleb(-minor_units(order.currency))
    lines, net = [], Decimal(0)
    for line, quantity in parts:
        line.quantity_returned += quantity
        net += (line.unit_price * quantity).quantize(places)
        lines.append({"order_line_id": line.id, "sku": line.sku, "quantity": quantity,
                      "location": origins.get(line.id)})
    tax = (order.tax_amount * net / order.subtotal).quantize(
        places, rounding=ROUND_HALF_EVEN) if order.subtotal else Decimal(0)
    returned = OrderReturn(order_id=order.id, reason=reason, lines=lines,
                           restock_location=None, net_amount=net, tax_amount=tax,
                           created_at=utcnow(), created_by=actor.label)
    uow.session.add(returned)
    uow.session.flush()
    if restock:
        _restock(uow, actor, returned)
    record_event(uow, order, "order.returned", actor, returned=returned.id, reason=reason,
                 lines=[{"sku": line["sku"], "quantity": line["quantity"]} for line in lines],
                 restocked=restock, credit=str(net + tax))
    uow.enqueue_after_commit(SETTLE_JOB, returned.id)
    uow.enqueue_after_commit(NOTIFY_JOB, order.id, f"returned:{returned.id}")
    return returned


def _spread(order: Order, units: Sequence[ReturnedUnits]) -> list[tuple[OrderLine, int]]:
    """Spread each SKU's returned units over the order's lines of it; refuse more than
    shipped and not returned yet."""
    problems: list[FieldProblem] = []
    parts: list[tuple[OrderLine, int]] = []
    for index, unit in enumerate(units):
        lines = [line for line in order.lines if line.sku == unit.sku]
        open_units = sum(line.quantity_shipped - line.quantity_returned for line in lines)
        if unit.quantity > open_units:
            problems.append(FieldProblem(
                f"lines/{index}/quantity",
                f"{unit.quantity} units of {unit.sku} returned; {open_units} shipped and not "
                "returned yet"))
            continue
        left = unit.quantity
        for line in lines:
            take = min(left, line.quantity_shipped - line.quantity_returned)
            if take > 0:
                parts.append((line, take))
                left -= take
    if problems:
        raise InputValidationError(problems)
    return parts


def _origins(uow: UnitOfWork, order_id: int) -> dict[int, str]:
    """Where each order line shipped from (its first shipment's location)."""
    rows = uow.session.execute(
        select(ShipmentLine.order_line_id, Shipment.location_code)
        .join(Shipment, Shipment.id == ShipmentLine.shipment_id)
        .where(Shipment.order_id == order_id).order_by(Shipment.id.desc()))
    return dict(rows.all())


def _restock(uow: UnitOfWork, actor: Actor, returned: OrderReturn) -> None:
    """Put the units back on the shelf they left, and offer them to waiting backorders."""
    placed = [line for line in returned.lines if line["location"]]
    levels = lock_levels(uow, [(line["sku"], line["location"]) for line in placed])
    for line in placed:
        move(uow, actor, levels[(line["sku"], line["location"])], "return_restock",
             line["quantity"], 0, reason=returned.reason[:200],
             reference=f"return {returned.id}", order_id=returned.order_id)
    returned.restock_location = placed[0]["location"] if placed else None
    offer_to_backorders(uow, {line["sku"] for line in placed})


@dataclass(frozen=True)
class Settlement:
    """What settling a return asks of the finance system, and under which keys."""

    return_id: int
    order_id: int
    currency: str
    amount: Decimal
    reason: str
    invoice: str
    refund: bool

    @property
    def credit_key(self) -> str:
        return f"finance-credit-return-{self.return_id}"

    @property
    def refund_key(self) -> str:
        return f"finance-refund-return-{self.return_id}"


def settlement(uow: UnitOfWork, return_id: int) -> Settlement | None:
    """What to send for a return; None once settled, or while the order has no invoice yet
    (the stalled-work sweep asks again later)."""
    returned = uow.session.get(OrderReturn, return_id)
    if returned is None or returned.settled_at is not None:
        return None
    order = uow.session.get(Order, returned.order_id)
    assert order is not None
    invoice = uow.session.scalar(select(Shipment.invoice_reference).where(
        Shipment.order_id == order.id, Shipment.invoice_reference.is_not(None))
        .order_by(Shipment.id))
    if invoice is None:
        return None
    return Settlement(returned.id, order.id, order.currency,
                      returned.net_amount + returned.tax_amount, returned.reason, invoice,
                      order.payment_terms in PAID_UP_FRONT)


def record_settled(uow: UnitOfWork, actor: Actor, return_id: int, credit: FinanceReceipt,
                   refund: FinanceReceipt | None, bill: Settlement) -> bool:
    returned = uow.session.get(OrderReturn, return_id, with_for_update=True,
                               populate_existing=True)
    if returned is None or returned.settled_at is not None:
        return False
    order = get_order(uow, actor, returned.order_id, lock=True)
    record_finance(uow, bill.credit_key, "credit_note", order.id, credit)
    if refund is not None:
        record_finance(uow, bill.refund_key, "refund", order.id, refund)
    returned.credit_reference = credit.reference
    returned.refund_reference = refund.reference if refund else None
    returned.settled_at = utcnow()
    record_event(uow, order, "return.settled", actor, returned=returned.id,
                 credit_note=credit.reference,
                 refund=refund.reference if refund else None, amount=str(bill.amount))
    return True


def order_returns(uow: UnitOfWork, actor: Actor, order_id: int) -> list[OrderReturn]:
    order = get_order(uow, actor, order_id)
    return list(uow.session.scalars(select(OrderReturn).where(
        OrderReturn.order_id == order.id).order_by(OrderReturn.id)))


def unsettled(uow: UnitOfWork, before: datetime) -> list[int]:
    """Returns not settled yet, recorded before `before` (for the stalled-work sweep)."""
    return list(uow.session.scalars(select(OrderReturn.id).where(
        OrderReturn.settled_at.is_(None), OrderReturn.created_at < before)))
