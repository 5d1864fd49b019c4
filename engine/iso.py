"""ISO 3166 country and ISO 4217 currency codes, with each currency's minor units."""

from __future__ import annotations

from decimal import Decimal
from functools import cache

import pycountry

# ISO 4217 minor units that differ from the usual two decimals.
_ZERO_DECIMALS = frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split()
)
_THREE_DECIMALS = frozenset("BHD IQD JOD KWD LYD OMR TND".split())
# Funds, metals and testing codes: not money an order is priced in.
_NOT_TENDER = frozenset(
    "XAG XAU XBA XBB XBC XBD XDR XPD XPT XSU XTS XUA XXX BOV CHE CHW CLF COU MXV USN UYW".split()
)


@cache
def country_codes() -> frozenset[str]:
    """Return every ISO 3166-1 alpha-2 code."""
    return frozenset(country.alpha_2 for country in pycountry.countries)


@cache
def currency_codes() -> frozenset[str]:
    """Return every ISO 4217 code an order can be priced in."""
    return frozenset(c.alpha_3 for c in pycountry.currencies) - _NOT_TENDER


def decimals(amount: Decimal) -> int:
    """Return how many decimals an amount is written with (trailing zeros do not count)."""
    exponent = amount.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def minor_units(currency: str) -> int:
    """Return how many decimals an amount in this currency may have."""
    if currency in _ZERO_DECIMALS:
        return 0
    if currency in _THREE_DECIMALS:
        return 3
    return 2


def smallest_unit(currency: str) -> Decimal:
    """Return the smallest amount of this currency (0.01 BRL, 1 JPY): what amounts are
    quantized to."""
    return Decimal(1).scaleb(-minor_units(currency))
