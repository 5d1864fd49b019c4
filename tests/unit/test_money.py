"""Sharing an amount (an order's tax) over parts (shipments, invoice lines, returns)."""

from __future__ import annotations

import random
from decimal import Decimal

from engine.money import cumulative_share, share

CENT = Decimal("0.01")
YEN = Decimal("1")


def shares_in_turn(total: Decimal, parts: list[Decimal], whole: Decimal,
                   places: Decimal = CENT) -> list[Decimal]:
    """What each part gets of total, the parts taken one after another."""
    got, before = [], Decimal(0)
    for part in parts:
        got.append(cumulative_share(total, before, part, whole, places))
        before += part
    return got


def test_an_orders_invoices_add_up_to_its_tax_to_the_cent():
    # given an order of 100.00 with 1.00 of tax, shipped in three nearly equal shipments
    parts = [Decimal("33.33"), Decimal("33.33"), Decimal("33.34")]
    # when each shipment's invoice takes its share of the tax in turn
    taxes = shares_in_turn(Decimal("1.00"), parts, Decimal("100.00"))
    # then no cent is lost to rounding (each alone would round to 0.33, 0.99 in all)
    assert share(Decimal("1.00"), parts[0], Decimal("100.00"), CENT) == Decimal("0.33")
    assert taxes == [Decimal("0.33"), Decimal("0.34"), Decimal("0.33")]
    assert sum(taxes) == Decimal("1.00")


def test_however_an_order_is_split_its_parts_add_up_to_its_tax():
    # given orders split at random into parts (shipments, invoice lines, credit notes)
    chooser = random.Random(7)
    for _ in range(500):
        parts = [Decimal(chooser.randint(1, 99_999)) / 100
                 for _ in range(chooser.randint(1, 8))]
        whole = sum(parts, Decimal(0))
        tax = Decimal(chooser.randint(0, 50_000)) / 100
        # when the tax is shared over them in turn
        taxes = shares_in_turn(tax, parts, whole)
        # then they add up to it exactly, none negative, each within a cent of its fair share
        assert sum(taxes) == tax, (tax, parts)
        assert all(t >= 0 for t in taxes)
        assert all(abs(t - tax * p / whole) <= CENT for t, p in zip(taxes, parts, strict=True))


def test_returns_never_credit_more_tax_than_was_invoiced():
    # given an order of 59.97 (three units of 19.99) with 5.40 of tax
    subtotal, tax = Decimal("59.97"), Decimal("5.40")
    # when the units come back one return at a time
    credited = shares_in_turn(tax, [Decimal("19.99")] * 3, subtotal)
    # then the tax credited after two returns is what two thirds of the order carried,
    # and after the last exactly what was invoiced
    assert sum(credited[:2]) == share(tax, Decimal("39.98"), subtotal, CENT) == Decimal("3.60")
    assert sum(credited) == tax


def test_shares_round_half_to_even():
    # given amounts that fall exactly between two cents
    # then they round to the even cent, so rounding favours neither side on average
    assert share(Decimal("0.05"), Decimal(1), Decimal(2), CENT) == Decimal("0.02")
    assert share(Decimal("0.15"), Decimal(1), Decimal(2), CENT) == Decimal("0.08")


def test_a_currency_without_minor_units_is_shared_in_whole_units():
    # given 100 yen of tax over three equal parts
    taxes = shares_in_turn(Decimal(100), [Decimal(1000)] * 3, Decimal(3000), YEN)
    # then each part gets whole yen, and they add up to 100
    assert taxes == [Decimal(33), Decimal(34), Decimal(33)]
    assert all(t == t.to_integral_value() for t in taxes)


def test_nothing_is_shared_out_of_an_order_worth_nothing():
    # given a free order (a subtotal of zero): no division by zero, no tax
    assert share(Decimal("5.00"), Decimal(0), Decimal(0), CENT) == Decimal(0)
    assert cumulative_share(Decimal("5.00"), Decimal(0), Decimal(0), Decimal(0), CENT) == 0
