"""Where places are and what distance means: postal areas, great-circle distance, and the
transit time and cost estimates sourcing and promises use until carrier rate cards exist."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select, tuple_

from engine.ports import UnitOfWork
from engine.record import Customer, Order, PostalArea
from engine.reference_cache import POSTAL_AREAS, cached

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
    prefixes = _prefixes(postal_code)
    points = _points(uow, [(country, prefix) for prefix in prefixes])
    return next((points[country, prefix] for prefix in prefixes
                 if points[country, prefix] is not None), None)


def area_of(uow: UnitOfWork, country: str, postal_code: str | None) -> PostalArea | None:
    """Return the postal area a code falls in: the longest stored prefix of its letters and
    digits (so "01310-100" finds "01310" when that is the finest area known)."""
    prefixes = _prefixes(postal_code)
    points = _points(uow, [(country, prefix) for prefix in prefixes])
    prefix = next((prefix for prefix in prefixes if points[country, prefix] is not None), None)
    return uow.session.get(PostalArea, (country, prefix)) if prefix is not None else None


# (country, prefix) -> where it lies, or None for no such area: kept per process until a
# postal area changes anywhere (`reference_cache`), and started afresh past this size.
KNOWN_AREAS_LIMIT = 200_000


def _points(uow: UnitOfWork,
            keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Point | None]:
    """Return where each (country, prefix) lies (None: no such area): from the process's
    cache, asking the database, in one query, only for those it has not seen."""
    known: dict[tuple[str, str], Point | None] = cached(uow.session, POSTAL_AREAS,
                                                        lambda _session: {})
    found: dict[tuple[str, str], Point | None] = {}
    unseen: set[tuple[str, str]] = set()
    for key in keys:
        try:
            found[key] = known[key]
        except KeyError:
            unseen.add(key)
    if unseen:
        with uow.session.no_autoflush:
            rows = uow.session.execute(
                select(PostalArea.country, PostalArea.prefix, PostalArea.latitude,
                       PostalArea.longitude)
                .where(PostalArea.country.in_(sorted({country for country, _ in unseen})),
                       PostalArea.prefix.in_(sorted({prefix for _, prefix in unseen})))).all()
        read: dict[tuple[str, str], Point | None] = dict.fromkeys(unseen)
        read.update({(row.country, row.prefix): (float(row.latitude), float(row.longitude))
                     for row in rows})
        if len(known) + len(read) > KNOWN_AREAS_LIMIT:
            known.clear()
        known.update(read)  # one step: a thread reading it sees all of it or none
        found.update(read)
    return found


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
    """Look up where a batch of orders goes, at most one query for the postal areas the
    process has not seen yet (`destination_of` then answers from what it found)."""
    known: dict[int, Point | None] = uow.session.info.setdefault("destinations", {})
    wanted = [order for order in orders if order.id not in known]
    if len(wanted) < 2:
        return  # one order: `destination_of` asks for it
    prefixes = {order.id: _prefixes(order.ship_to_postal_code) for order in wanted}
    points = _points(uow, sorted({(order.ship_to_country, prefix) for order in wanted
                                  for prefix in prefixes[order.id]}))
    for order in wanted:
        point = next((points[order.ship_to_country, prefix] for prefix in prefixes[order.id]
                      if points[order.ship_to_country, prefix] is not None), None)
        known[order.id] = point if point is not None else _customer_point(uow, order)


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
