"""The embedded ledger: balanced entries, one per idempotency key, never rewritten."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from adapters.embedded import EmbeddedLedger, s10_number
from engine.fulfilment.billing import trial_balance
from engine.ports import InvoiceLine, InvoiceRequest, Money
from engine.record import JournalEntry
from tests.conftest import order_body


def balances(services) -> dict[str, Decimal]:
    with services.uow() as uow:
        return {account: debit - credit
                for account, (debit, credit) in trial_balance(uow).items()}


def test_every_posting_balances_and_a_key_posts_once(client, admin, catalog, services):
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    ledger = EmbeddedLedger(services.session_factory)
    invoice = InvoiceRequest(order_id, "C-ANA", "BRL",
                             (InvoiceLine("LAMP-1", 2, Decimal("179.80"), Decimal("8.85")),),
                             Decimal("15.00"), "shipment-1")
    first = ledger.invoice(invoice, "inv-1")
    assert ledger.invoice(invoice, "inv-1") == first  # the same key: the first answer
    assert first.amount == Money(Decimal("203.65"), "BRL")
    ledger.capture(order_id, "AUTH-1", Money(Decimal("203.65"), "BRL"), "cap-1")
    ledger.credit_note(order_id, first.reference, Money(Decimal("20.00"), "BRL"),
                       "damaged lamp", "cn-1")
    ledger.refund(order_id, Money(Decimal("20.00"), "BRL"), "damaged lamp", "ref-1")
    assert balances(services) == {
        "receivables": Decimal("0.00"),  # invoiced, paid, credited and refunded: square
        "revenue": Decimal("-159.80"), "tax_payable": Decimal("-8.85"),
        "shipping_revenue": Decimal("-15.00"), "cash": Decimal("183.65")}
    assert sum(balances(services).values()) == 0
    with services.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(JournalEntry)) == 4
    # an amount finer than the currency, or an unbalanced posting, is refused
    with pytest.raises(ValueError, match="finer than BRL"):
        ledger.refund(order_id, Money(Decimal("1.001"), "BRL"), "x", "ref-2")


def test_twins_racing_on_one_key_post_one_entry(client, admin, catalog, services):
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    ledger = EmbeddedLedger(services.session_factory)
    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(lambda _: ledger.capture(
            order_id, "AUTH-1", Money(Decimal("50.00"), "BRL"), "cap-race"), range(8)))
    assert len({receipt.reference for receipt in receipts}) == 1
    assert balances(services)["cash"] == Decimal("50.00")


def test_the_ledger_refuses_to_be_rewritten(client, admin, catalog, services):
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    EmbeddedLedger(services.session_factory).capture(
        order_id, "AUTH-1", Money(Decimal("50.00"), "BRL"), "cap-x")
    for statement in ("UPDATE journal_lines SET debit = 0", "DELETE FROM journal_entries"):
        with services.uow() as uow, pytest.raises(DBAPIError, match="append-only"):
            uow.session.execute(text(statement))


def test_label_numbers_carry_their_s10_check_digit():
    assert s10_number("RR", 47312482) == "RR473124829BR"  # the UPU's worked example
    assert s10_number("CORREIOS", 1) == "CO000000014BR"
