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
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from engine.actors import Actor
from engine.errors import FieldProblem, InputValidationError, InvalidTransitionError
from engine.inventory.stock import lock_levels, move, offer_to_backorders
from engine.iso import smallest_unit
from engine.job_names import NOTIFY_JOB, SETTLE_JOB
from engine.money import cumulative_share
from engine.orders.reading import get_order
from engine.orders.timeline import record_event
from engine.orders.transitions import effective_status
from engine.ports import UnitOfWork
from engine.record import Order, OrderReturn, Shipment, ShipmentLine, utcnow
from engine.status import OrderStatus
from rules.vocabulary import PAID_UP_FRONT

MAX_SETTLE_FAILURES = 5  # then the sweep stops asking: the return waits for a person
RETURNABLE = (OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.DELIVERED,
              OrderStatus.COMPLETED)


@dataclass(frozen=True)
class ReturnedUnits:
    sku: str
    quantity: int


def record_return(uow: UnitOfWork, actor: Actor, order_id: int,
                  units: Sequence[ReturnedUnits], reason: str, restock: bool) -> OrderReturn:
    """Record goods coming back, each unit against the shipment it left in.

    Raises:
        NotFoundError: no such order (for this actor).
        InvalidTransitionError: nothing of the order has shipped.
        InputValidationError: more units of a SKU than shipped and not yet returned.
    """
    order = get_order(uow, actor, order_id, lock=True)
    if effective_status(order) not in RETURNABLE:
        raise InvalidTransitionError(order.status.value, "returned", order.held_from)
    places = smallest_unit(order.currency)
    lines = _attribute(uow, order, units)
    earlier = list(uow.session.scalars(select(OrderReturn.net_amount).where(
        OrderReturn.order_id == order.id)))
    before = sum(earlier, Decimal(0))
    net = sum((Decimal(line["net"]) for line in lines), Decimal(0))
    # credited tax follows returned net by cumulative share, as invoiced tax followed
    # shipped net: however many returns, never more tax back than was invoiced
    tax = cumulative_share(order.tax_amount, before, net, order.subtotal, places)
    returned = OrderReturn(order_id=order.id, reason=reason, lines=lines,
                           restock_location=None, net_amount=net, tax_amount=tax,
                           created_at=utcnow(), created_by=actor.label, settle_failures=0)
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


def _attribute(uow: UnitOfWork, order: Order,
               units: Sequence[ReturnedUnits]) -> list[dict[str, Any]]:
    """Spread each SKU's returned units over the shipments that carried it and have units
    left to return, oldest first; refuse more than shipped and not returned yet."""
    wanted: dict[str, int] = {}
    first_index: dict[str, int] = {}
    for index, unit in enumerate(units):
        wanted[unit.sku] = wanted.get(unit.sku, 0) + unit.quantity
        first_index.setdefault(unit.sku, index)
    taken: dict[tuple[int, int], int] = {}  # (shipment, order line): units returned before
    for earlier in uow.session.scalars(select(OrderReturn).where(
            OrderReturn.order_id == order.id)):
        for past in earlier.lines:
            key = (past["shipment_id"], past["order_line_id"])
            taken[key] = taken.get(key, 0) + past["quantity"]
    carried: list[tuple[ShipmentLine, Shipment]] = [
        (line, shipment) for line, shipment in uow.session.execute(
            select(ShipmentLine, Shipment)
            .join(Shipment, Shipment.id == ShipmentLine.shipment_id)
            .where(Shipment.order_id == order.id, Shipment.shipped_at.is_not(None))
            .order_by(Shipment.id, ShipmentLine.id))]
    places = smallest_unit(order.currency)
    problems: list[FieldProblem] = []
    lines: list[dict[str, Any]] = []
    for sku, quantity in wanted.items():
        left = quantity
        room = [(line, shipment, line.quantity - taken.get((shipment.id, line.order_line_id), 0))
                for line, shipment in carried if line.sku == sku]
        if not room:  # not a SKU this order shipped: the SKU is wrong, not the count
            problems.append(FieldProblem(f"lines/{first_index[sku]}/sku",
                                         f"{sku} was not shipped on this order"))
            continue
        if sum(free for _, _, free in room) < quantity:
            problems.append(FieldProblem(
                f"lines/{first_index[sku]}/quantity",
                f"{quantity} units of {sku} returned; "
                f"{sum(free for _, _, free in room)} shipped and not returned yet"))
            continue
        for line, shipment, free in room:
            part = min(left, free)
            if part <= 0:
                continue
            left -= part
            line.order_line.quantity_returned += part
            lines.append({"order_line_id": line.order_line_id, "sku": sku, "quantity": part,
                          "shipment_id": shipment.id, "location": shipment.location_code,
                          "net": str((line.order_line.unit_price * part).quantize(places))})
    if problems:
        raise InputValidationError(problems)
    return lines


def _restock(uow: UnitOfWork, actor: Actor, returned: OrderReturn) -> None:
    """Put the units back on the shelf they left from, and offer them to backorders."""
    levels = lock_levels(uow, [(line["sku"], line["location"]) for line in returned.lines])
    for line in returned.lines:
        move(uow, actor, levels[(line["sku"], line["location"])], "return_restock",
             line["quantity"], 0, reason=returned.reason[:200],
             reference=f"return {returned.id}", order_id=returned.order_id)
    returned.restock_location = returned.lines[0]["location"] if returned.lines else None
    offer_to_backorders(uow, {line["sku"] for line in returned.lines})


@dataclass(frozen=True)
class Credit:
    """One credit note: against one invoice, for the returned units it billed."""

    invoice: str
    amount: Decimal
    key: str


@dataclass(frozen=True)
class Settlement:
    """What settling a return asks of the finance system, and under which keys."""

    return_id: int
    order_id: int
    currency: str
    amount: Decimal
    reason: str
    credits: tuple[Credit, ...]
    refund: bool

    @property
    def refund_key(self) -> str:
        return f"finance-refund-return-{self.return_id}"


def settlement(uow: UnitOfWork, return_id: int) -> Settlement | None:
    """What to send for a return: a credit note per invoice its units were billed on (the
    return's tax spread over them exactly), and the refund; None once settled, or while
    one of those invoices is not posted yet (the stalled-work sweep asks again)."""
    returned = uow.session.get(OrderReturn, return_id)
    if returned is None or returned.settled_at is not None:
        return None
    order = uow.session.get(Order, returned.order_id)
    assert order is not None
    invoices: dict[int, str | None] = {
        shipment_id: invoice for shipment_id, invoice in uow.session.execute(
            select(Shipment.id, Shipment.invoice_reference).where(
                Shipment.order_id == order.id))}
    nets: dict[str, Decimal] = {}
    for line in returned.lines:
        invoice = invoices.get(line["shipment_id"])
        if invoice is None:
            return None
        nets[invoice] = nets.get(invoice, Decimal(0)) + Decimal(line["net"])
    places = smallest_unit(order.currency)
    credits, running = [], Decimal(0)
    for invoice, net in nets.items():
        tax = cumulative_share(returned.tax_amount, running, net, returned.net_amount, places)
        running += net
        credits.append(Credit(invoice, net + tax,
                              f"finance-credit-return-{returned.id}-{invoice}"))
    return Settlement(returned.id, order.id, order.currency,
                      returned.net_amount + returned.tax_amount, returned.reason,
                      tuple(credits), order.payment_terms in PAID_UP_FRONT)


def record_settled(uow: UnitOfWork, actor: Actor, return_id: int, credits: list[str],
                   refund: str | None, bill: Settlement) -> bool:
    """Mark a return settled (its credit notes and refund are recorded as each posts)."""
    returned = uow.session.get(OrderReturn, return_id, with_for_update=True,
                               populate_existing=True)
    if returned is None or returned.settled_at is not None:
        return False
    order = get_order(uow, actor, returned.order_id, lock=True)
    returned.credit_reference = ", ".join(credits)[:128]
    returned.refund_reference = refund
    returned.settled_at = utcnow()
    record_event(uow, order, "return.settled", actor, returned=returned.id,
                 credit_notes=credits, refund=refund, amount=bill.amount)
    return True


def order_returns(uow: UnitOfWork, actor: Actor, order_id: int) -> list[OrderReturn]:
    order = get_order(uow, actor, order_id)
    return list(uow.session.scalars(select(OrderReturn).where(
        OrderReturn.order_id == order.id).order_by(OrderReturn.id)))


def unsettled(uow: UnitOfWork, before: datetime) -> list[int]:
    """Returns not settled yet, recorded before `before`, that have not failed too often
    (for the stalled-work sweep)."""
    return list(uow.session.scalars(select(OrderReturn.id).where(
        OrderReturn.settled_at.is_(None), OrderReturn.created_at < before,
        OrderReturn.settle_failures < MAX_SETTLE_FAILURES)))


def record_settle_failure(uow: UnitOfWork, actor: Actor, return_id: int,
                          error: str) -> None:
    """Count a failed settlement; the last one puts it on the order's timeline for a
    person (the finance system keeps refusing the credit or the refund)."""
    returned = uow.session.get(OrderReturn, return_id, with_for_update=True)
    if returned is None or returned.settled_at is not None:
        return
    returned.settle_failures += 1
    returned.last_error = error[:500]
    if returned.settle_failures == MAX_SETTLE_FAILURES:
        order = get_order(uow, actor, returned.order_id, lock=True)
        record_event(uow, order, "return.settlement_failed", actor, returned=returned.id,
                     attempts=returned.settle_failures, error=returned.last_error)
