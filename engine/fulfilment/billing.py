"""Billing shipped packages: amounts fixed at shipping, authorise, capture, invoice, complete."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from engine.actors import Actor
from engine.effects import effect, record_effect
from engine.iso import smallest_unit
from engine.money import cumulative_share, share
from engine.orders import transitions
from engine.orders.locking import lock_with_order
from engine.orders.reading import get_order
from engine.orders.timeline import record_event
from engine.ports import (
    FinanceReceipt,
    InvoiceLine,
    InvoiceRequest,
    UnitOfWork,
)
from engine.record import (
    JournalEntry,
    JournalLine,
    Order,
    Shipment,
    utcnow,
)
from engine.status import OrderStatus
from rules.vocabulary import PAID_UP_FRONT


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
    locked = lock_with_order(uow, Shipment, shipment_id)
    if locked is None:
        return None
    order, shipment = locked
    if (shipment.shipped_at is None or shipment.invoiced_at is not None
            or order.status is OrderStatus.ON_HOLD):
        return None
    assert shipment.net_amount is not None and shipment.tax_amount is not None
    places = smallest_unit(order.currency)
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
    places = smallest_unit(order.currency)
    net = sum(((line.unit_price * (line.quantity_ordered - line.quantity_cancelled))
               .quantize(places) for line in order.lines), Decimal(0))
    if not net:
        return Decimal(0)
    return net + share(order.tax_amount, net, order.subtotal, places) + order.shipping_amount


def fix_amounts(order: Order, shipment: Shipment, shipments: Iterable[Shipment]) -> None:
    """Fix what a shipment bills as it ships, under the order's lock: its lines' net, the
    order's tax spread by cumulative share of the net shipped so far (so an order's
    invoices add up to its tax exactly), and the shipping charge on the first shipment.
    `shipments`: the order's, as read under its lock."""
    places = smallest_unit(order.currency)
    earlier = [s for s in shipments if s.shipped_at is not None and s.id != shipment.id
               and s.net_amount is not None]
    before = sum((s.net_amount or Decimal(0) for s in earlier), Decimal(0))
    net = sum(((line.order_line.unit_price * line.quantity).quantize(places)
               for line in shipment.lines), Decimal(0))
    shipment.net_amount = net
    shipment.tax_amount = cumulative_share(order.tax_amount, before, net, order.subtotal, places)
    shipment.shipping_amount = Decimal(0) if earlier else order.shipping_amount


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
    locked = lock_with_order(uow, Shipment, shipment_id)
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


def complete_if_done(uow: UnitOfWork, actor: Actor, order: Order,
                     shipments: Iterable[Shipment] | None = None) -> None:
    """Complete a delivered order once every shipment of it is invoiced (an order on hold
    completes once the hold is released and the sweep finds it). `shipments`: the order's,
    when the caller has read them under its lock."""
    if order.status is not OrderStatus.DELIVERED:
        return
    if shipments is None:
        shipments = uow.session.scalars(select(Shipment).where(Shipment.order_id == order.id))
    if all(s.invoiced_at is not None for s in shipments):
        transitions.move(uow, actor, order, OrderStatus.COMPLETED, "order.completed")


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
