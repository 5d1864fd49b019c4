"""Splitting an amount in proportion, so the parts add up to the whole exactly."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal


def share(total: Decimal, part: Decimal, whole: Decimal, places: Decimal) -> Decimal:
    """Return what `part` of `whole` gets of `total`, rounded half-even to `places` (the
    currency's quantum); nothing when the whole is nothing."""
    if not whole:
        return Decimal(0)
    return (total * part / whole).quantize(places, rounding=ROUND_HALF_EVEN)


def cumulative_share(total: Decimal, before: Decimal, part: Decimal, whole: Decimal,
                     places: Decimal) -> Decimal:
    """Return what `part` gets of `total` when `before` of `whole` was shared out already.

    Each part gets the rounded share of everything so far minus what the earlier parts
    got, so rounding never accumulates: parts taken one after another add up to the share
    of their sum, and to `total` exactly once they make up the whole (an order's tax over
    its invoices, a return's tax over its credit notes).
    """
    return (share(total, before + part, whole, places)
            - share(total, before, whole, places))
