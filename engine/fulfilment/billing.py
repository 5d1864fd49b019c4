"""Billing shipped packages in runs: amounts fixed at shipping, authorise, capture, invoice."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from engine.actors import Actor
from engine.effects import effect, record_effect
from engine.fulfilment.waves import WavePolicy, nudge
from engine.iso import smallest_unit
from engine.job_names import BILLING_WAVE_JOB
from engine.money import cumulative_share, share
from engine.orders import transitions
from engine.orders.locking import lock_orders
from engine.orders.reading import get_order
from engine.orders.timeline import record_event
from engine.ports import (
    FinanceReceipt,
    InvoiceLine,
    InvoiceRequest,
    UnitOfWork,
)
from engine.record import (
    ExternalEffect,
    FulfilmentGroup,
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

    shipment_id: int
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


def request_billing(uow: UnitOfWork) -> None:
    """Put what shipped in the next billing run."""
    nudge(uow, BILLING_WAVE_JOB)


def _waiting(policy: WavePolicy, now: datetime) -> ColumnElement[bool]:
    """Shipments to bill: shipped, not invoiced, their order not on hold (releasing the
    hold bills them), and no live billing run has them."""
    return and_(Shipment.shipped_at.is_not(None), Shipment.invoiced_at.is_(None),
                Order.status != OrderStatus.ON_HOLD,
                policy.unclaimed(Shipment.billing_claimed_at, now))


def due_billing(uow: UnitOfWork, policy: WavePolicy, now: datetime) -> int:
    """How many shipments to bill now: all once one shipped the period ago, else the full
    runs."""
    waiting, overdue = uow.session.execute(
        select(func.count(), func.count().filter(
            Shipment.shipped_at <= policy.overdue_before(now)))
        .select_from(Shipment).join(Order, Order.id == Shipment.order_id)
        .where(_waiting(policy, now))).one()
    return policy.to_cut(waiting, overdue)


def claim_billing_run(uow: UnitOfWork, size: int, policy: WavePolicy,
                      now: datetime) -> list[Billing]:
    """Claim the next billing run, oldest shipments first, at most `size`; return what each
    bills (its amounts were fixed as it shipped)."""
    ids = list(uow.session.scalars(
        select(Shipment.id).join(Order, Order.id == Shipment.order_id)
        .where(_waiting(policy, now)).order_by(Shipment.id).limit(size)
        .with_for_update(skip_locked=True, of=(Shipment.__table__, Order.__table__))))
    if not ids:
        return []
    uow.session.execute(update(Shipment).where(Shipment.id.in_(ids))
                        .values(billing_claimed_at=now))
    shipments = uow.session.scalars(
        select(Shipment).where(Shipment.id.in_(ids)).order_by(Shipment.id)
        .options(joinedload(Shipment.group).joinedload(FulfilmentGroup.order))
        .execution_options(populate_existing=True))
    return [_billing(shipment.group.order, shipment) for shipment in shipments]


def _billing(order: Order, shipment: Shipment) -> Billing:
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
    return Billing(shipment.id, order.id, order.currency, invoice, gross,
                   order.payment_terms in PAID_UP_FRONT, billable_total(order))


def unclaim_billing(uow: UnitOfWork, shipment_ids: Sequence[int]) -> None:
    """Give back shipments a run did not invoice (held meanwhile, or the call failed)."""
    uow.session.execute(update(Shipment).where(Shipment.id.in_(shipment_ids))
                        .values(billing_claimed_at=None))


def held_orders(uow: UnitOfWork, order_ids: Iterable[int]) -> set[int]:
    """Which of these orders are on hold now: a billing run checks before each step, so a
    hold placed while it runs stops what is left of it (one query for the run)."""
    return set(uow.session.scalars(select(Order.id).where(
        Order.id.in_(sorted(set(order_ids))), Order.status == OrderStatus.ON_HOLD)))


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


def record_finances(uow: UnitOfWork, operation: str,
                    posted: Sequence[tuple[str, int, FinanceReceipt]]) -> None:
    """Record finance effects of one kind (key, order, receipt) in one go, each once."""
    known = recorded_references(uow, [key for key, _, _ in posted])
    for key, order_id, receipt in posted:
        if key not in known:
            known[key] = receipt.reference
            record_effect(uow, key, "finance", operation, order_id, receipt.reference,
                          receipt.amount.amount)


def recorded_references(uow: UnitOfWork, keys: Sequence[str]) -> dict[str, str]:
    """The references of the effects already recorded under these keys (one query)."""
    return dict(uow.session.execute(select(ExternalEffect.key, ExternalEffect.reference)
                                    .where(ExternalEffect.key.in_(sorted(set(keys))))).all())


def record_invoices(uow: UnitOfWork, actor: Actor,
                    invoiced: Sequence[tuple[Billing, FinanceReceipt]]) -> int:
    """Record a run's invoices (orders locked first, in key order), and complete the orders
    delivered and now fully invoiced. Returns how many were new."""
    orders = lock_orders(uow, (bill.order_id for bill, _ in invoiced), with_groups=True)
    shipments: dict[int, list[Shipment]] = {}
    for shipment in uow.session.scalars(
            select(Shipment).where(Shipment.order_id.in_(sorted(orders)))
            .order_by(Shipment.id).with_for_update(of=Shipment.__table__)
            .execution_options(populate_existing=True)):
        shipments.setdefault(shipment.order_id, []).append(shipment)
    by_id = {shipment.id: shipment for found in shipments.values() for shipment in found}
    record_finances(uow, "invoice", [(bill.invoice_key, bill.order_id, receipt)
                                     for bill, receipt in invoiced
                                     if by_id[bill.shipment_id].invoiced_at is None])
    recorded = 0
    for bill, receipt in invoiced:
        shipment, order = by_id[bill.shipment_id], orders[bill.order_id]
        if shipment.invoiced_at is not None:
            continue
        shipment.invoice_reference, shipment.invoiced_at = receipt.reference, utcnow()
        shipment.billing_claimed_at = None
        record_event(uow, order, "shipment.invoiced", actor, shipment=shipment.id,
                     invoice=receipt.reference, amount=receipt.amount.amount,
                     currency=receipt.amount.currency)
        recorded += 1
    for order in orders.values():
        complete_if_done(uow, actor, order, shipments.get(order.id, []))
    return recorded


def complete_if_done(uow: UnitOfWork, actor: Actor, order: Order,
                     shipments: Iterable[Shipment] | None = None) -> None:
    """Complete a delivered order once every shipment of it (read here unless given) is
    invoiced (an order on hold completes once the hold is released and the sweep finds
    it)."""
    if order.status is not OrderStatus.DELIVERED:
        return
    if shipments is None:
        shipments = list(uow.session.scalars(select(Shipment).where(
            Shipment.order_id == order.id)))
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
