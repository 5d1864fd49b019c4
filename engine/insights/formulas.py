"""The KPIs' formulas and definitions, as plain values: what each number means, written once.

The SQL in `kpis.py` computes the numerators, denominators and ranks; these functions turn
them into the figures shown, and the tests check them without a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

N = TypeVar("N")

PERCENTILES = (50, 90)
# Open holds and waiting backorders are shown by age, in days: [0, 1), [1, 3), [3, 7), 7 on.
AGE_BUCKETS = (("under_1d", 0, 1), ("1_to_3d", 1, 3), ("3_to_7d", 3, 7), ("over_7d", 7, None))
DAMAGE_WORD = "damag"  # a return whose reason mentions damage ("damaged", "damage in transit")


@dataclass(frozen=True)
class Definition:
    key: str
    name: str
    unit: str
    text: str


DEFINITIONS: tuple[Definition, ...] = (
    Definition("orders", "Orders captured", "orders",
               "Orders received in the period (by their capture time, UTC), counted by the "
               "status each has now."),
    Definition("cycle_to_shipment", "Cycle time, capture to shipment", "hours",
               "Hours from capture to the first package leaving its location, over orders "
               "captured in the period that have shipped. p50 and p90 are nearest-rank "
               "percentiles: the time at rank ⌈p × n⌉ of the n sorted times (orwiki RS1, "
               "measured to shipment)."),
    Definition("cycle_to_delivery", "Cycle time, capture to delivery", "hours",
               "Hours from capture to the delivery of the order's last package, over orders "
               "captured in the period that are delivered or completed; nearest-rank "
               "percentiles (orwiki RS1: order date to delivery)."),
    Definition("fill_rate", "Fill rate", "share of units",
               "Units shipped from the order's first allocation (the groups of its first "
               "sourcing decision, not a later backorder allocation) ÷ units ordered, over "
               "orders captured in the period whose fulfilment is over (shipped, delivered "
               "or completed). Units cancelled or filled later count as not filled "
               "(orwiki RS2)."),
    Definition("on_time_delivery", "On-time delivery", "share of orders",
               "Delivered orders whose every package arrived by the date the carrier stage "
               "promised ÷ delivered orders that carry a promise (captured in the period). "
               "Target date: the original commitment (orwiki DP13)."),
    Definition("perfect_order", "Perfect-order rate", "share of orders",
               "APQC 101741, count form: delivered orders that were on time (as above), "
               "complete (every unit ordered delivered, none cancelled), undamaged (no "
               "return whose reason mentions damage) and without exception (never held) ÷ "
               "delivered orders captured in the period. The four shares are shown beside "
               "it; APQC's product form multiplies them."),
    Definition("backorders", "Backorders", "units",
               "Units waiting for stock now (backordered) on orders captured in the period, "
               "the orders they belong to, and their age from the order's first sourcing "
               "decision to now (ISM: items ordered but not shipped for a stockout)."),
    Definition("return_rate", "Return rate", "share of units",
               "Units returned ÷ units shipped, for orders captured in the period (APQC "
               "104859: products returned ÷ products sold). Reasons: returns by the reason "
               "given, most frequent first."),
    Definition("exceptions", "Exceptions", "holds",
               "Holds raised on orders captured in the period, by queue; the open ones by "
               "their age now (under 1 day, 1–3, 3–7, over 7 days)."),
    Definition("carrier_scorecard", "Carrier scorecard", "packages",
               "Per carrier, the packages of orders captured in the period: on-time share = "
               "packages delivered by their promised date ÷ delivered packages with a "
               "promise; average cost = the average label cost; average transit = days from "
               "leaving the location to delivery, over delivered packages."),
)
DEFINITION = {definition.key: definition for definition in DEFINITIONS}


def nearest_rank(percent: N, count: Any) -> Any:
    """Return the rank (1-based) of the p-th percentile among `count` sorted values: ⌈p·n/100⌉.

    Integer arithmetic only, so the same expression works on SQL columns.
    """
    return (count * percent + 99) // 100


def share(numerator: float | None, denominator: float | None) -> float | None:
    """Return numerator ÷ denominator, or None when there is nothing to divide by."""
    if not denominator:
        return None
    return float(numerator or 0) / float(denominator)


def perfect_order_product(*shares: float | None) -> float | None:
    """APQC's product form: the product of the component shares (None if one is unknown)."""
    result = 1.0
    for component in shares:
        if component is None:
            return None
        result *= component
    return result


def age_bucket(days: float) -> str:
    """Return the name of the age bucket a number of days falls in."""
    for name, low, high in AGE_BUCKETS:
        if days >= low and (high is None or days < high):
            return name
    return AGE_BUCKETS[0][0]  # a clock a little ahead of ours: as new


def day_keys(start: datetime, end: datetime) -> list[str]:
    """Return the days (YYYY-MM-DD, UTC) from start up to, not including, end."""
    first: date = start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def hour_keys(start: datetime, end: datetime) -> list[str]:
    """Return the hours (YYYY-MM-DDTHH, UTC) from start up to, not including, end."""
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    keys = []
    while hour < end:
        keys.append(hour.strftime("%Y-%m-%dT%H"))
        hour += timedelta(hours=1)
    return keys
