"""Where places are and what distance means: postal areas, great-circle distance, and the
transit time and cost estimates sourcing and promises use until carrier rate cards exist."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, tuple_

from engine.ports import UnitOfWork
from engine.record import Customer, Order, PostalArea

Point = tuple[float, float]
EARTH_RADIUS_KM = 6371.0088
# Road distance is longer than the great circle; trucks cover about 500 km a day.
KM_PER_TRANSIT_DAY = 500
# Where a distance cannot be known (no geocode), rate and promise as for a national parcel.
UNKNOWN_DISTANCE_KM = Decimal(1500)
HANDLING_DAYS = 1
# A parcel costs a base plus a rate per kg per 100 km (BRL, from Olist's median freight).
BASE_COST = Decimal("8.00")
COST_PER_KG_PER_100_KM = Decimal("0.90")


def distance_km(a: Point, b: Point) -> Decimal:
    """Return the great-circle distance between two (latitude, longitude) points, in km."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return Decimal(2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))).quantize(
        Decimal("0.1"))


def transit_days(distance: Decimal | None) -> int:
    """Return the days from handing a parcel over to its delivery, by distance."""
    if distance is None:
        return HANDLING_DAYS + 5  # unknown: a cautious national average
    return HANDLING_DAYS + max(1, math.ceil(distance / KM_PER_TRANSIT_DAY))


def shipping_cost(distance: Decimal | None, weight_kg: Decimal) -> Decimal:
    """Return the estimated cost of shipping a weight over a distance."""
    kilometres = distance if distance is not None else UNKNOWN_DISTANCE_KM
    billable = max(weight_kg, Decimal("0.5"))
    return (BASE_COST + COST_PER_KG_PER_100_KM * billable * kilometres / 100).quantize(
        Decimal("0.01"))


def locate(uow: UnitOfWork, country: str, postal_code: str | None) -> Point | None:
    """Return the coordinates of a postal code: its longest known prefix, if any."""
    area = area_of(uow, country, postal_code)
    return (float(area.latitude), float(area.longitude)) if area is not None else None


def area_of(uow: UnitOfWork, country: str, postal_code: str | None) -> PostalArea | None:
    """Return the postal area a code falls in: the longest stored prefix of its letters and
    digits (so "01310-100" finds "01310" when that is the finest area known)."""
    prefixes = _prefixes(postal_code)
    if not prefixes:
        return None
    return uow.session.scalars(
        select(PostalArea).where(PostalArea.country == country,
                                 PostalArea.prefix.in_(prefixes))
        .order_by(func.length(PostalArea.prefix).desc()).limit(1)).first()


def _prefixes(postal_code: str | None) -> list[str]:
    """The prefixes an area of the code may be stored under, longest first."""
    digits = postal_prefix(postal_code or "")
    return [digits[:length] for length in range(len(digits), 1, -1)]


def postal_prefix(postal_code: str) -> str:
    """Return a postal code as areas are keyed: letters and digits only, upper case."""
    return "".join(ch for ch in postal_code if ch.isalnum()).upper()


def upsert_postal_areas(uow: UnitOfWork, rows: list[dict[str, Any]]) -> list[str]:
    """Create or replace postal areas by (country, prefix); return created/updated per row."""
    keys = {(row["country"], row["prefix"]) for row in rows}
    existing = {(area.country, area.prefix): area for area in uow.session.scalars(
        select(PostalArea).where(tuple_(PostalArea.country, PostalArea.prefix).in_(keys))
        .with_for_update())}
    outcomes = []
    for row in rows:
        area = existing.get((row["country"], row["prefix"]))
        if area is None:
            area = existing[(row["country"], row["prefix"])] = PostalArea(**row)
            uow.session.add(area)
            outcomes.append("created")
        else:
            for name, value in row.items():
                setattr(area, name, value)
            outcomes.append("updated")
    uow.session.flush()
    return outcomes


def prefetch_destinations(uow: UnitOfWork, orders: Sequence[Order]) -> None:
    """Look up where a batch of orders goes in one query (`destination_of` then answers
    from what it found)."""
    known: dict[int, Point | None] = uow.session.info.setdefault("destinations", {})
    wanted = [order for order in orders if order.id not in known]
    if len(wanted) < 2:
        return  # one order: `destination_of` asks for it
    prefixes = {order.id: _prefixes(order.ship_to_postal_code) for order in wanted}
    countries = sorted({order.ship_to_country for order in wanted})
    every = sorted({prefix for found in prefixes.values() for prefix in found})
    areas = {(area.country, area.prefix): area for area in uow.session.scalars(
        select(PostalArea).where(PostalArea.country.in_(countries),
                                 PostalArea.prefix.in_(every)))} if every else {}
    for order in wanted:
        area = next((areas[order.ship_to_country, prefix] for prefix in prefixes[order.id]
                     if (order.ship_to_country, prefix) in areas), None)
        known[order.id] = ((float(area.latitude), float(area.longitude)) if area is not None
                           else _customer_point(uow, order))


def destination_of(uow: UnitOfWork, order: Order) -> Point | None:
    """Return where an order goes: its postal code's area, else its customer's coordinates.

    Looked up once per order and transaction (sourcing and carrier selection both ask).
    """
    known: dict[int, Point | None] = uow.session.info.setdefault("destinations", {})
    if order.id not in known:
        known[order.id] = _destination(uow, order)
    return known[order.id]


def _destination(uow: UnitOfWork, order: Order) -> Point | None:
    found = locate(uow, order.ship_to_country, order.ship_to_postal_code)
    return found if found is not None else _customer_point(uow, order)


def _customer_point(uow: UnitOfWork, order: Order) -> Point | None:
    customer = uow.session.get(Customer, order.customer_id)
    if customer is not None and customer.latitude is not None and customer.longitude is not None:
        return float(customer.latitude), float(customer.longitude)
    return None
