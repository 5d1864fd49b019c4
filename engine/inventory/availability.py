"""Availability to promise: what each location can give a new order of a SKU, and when.

Units that backorders wait for are not promised again: they first take stock, location by
location in code order (as sourcing holds them back), then the earliest expected supply.
A promise is the earliest day one location can ship the whole quantity, plus its transit:
from stock, today; from supply, the day enough of it has arrived (overdue supply counts as
arriving today).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select

from engine.catalog.geo import distance_km, locate, transit_days
from engine.errors import NotFoundError
from engine.inventory.stock import today, waiting_backorders
from engine.ports import UnitOfWork
from engine.record import ExpectedSupply, Location, Product, StockLevel


@dataclass
class SupplyAvailability:
    reference: str
    expected_on: date
    quantity: int  # outstanding: not received yet
    promisable: int = 0  # what backorders leave of it


@dataclass
class LocationAvailability:
    location: Location
    on_hand: int = 0
    reserved: int = 0
    safety_stock: int = 0
    held_back: int = 0  # available units that waiting backorders take first
    supply: list[SupplyAvailability] = field(default_factory=list)
    distance_km: Decimal | None = None
    transit_days: int = 0
    promise_date: date | None = None
    promise_source: str | None = None  # stock, supply

    @property
    def location_code(self) -> str:
        return self.location.code

    @property
    def available(self) -> int:
        return max(self.on_hand - self.reserved - self.safety_stock, 0)

    @property
    def available_to_promise(self) -> int:
        return self.available - self.held_back


@dataclass(frozen=True)
class Promise:
    date: date
    location_code: str
    source: str  # stock, supply


@dataclass(frozen=True)
class Availability:
    sku: str
    quantity: int
    country: str
    postal_code: str | None
    destination_known: bool
    promise: Promise | None
    reason: str | None  # why there is no promise
    locations: list[LocationAvailability]


def availability(uow: UnitOfWork, sku: str, quantity: int, country: str,
                 postal_code: str | None, on: date | None = None) -> Availability:
    """Return, per active location, the stock and supply of a SKU and the earliest promise.

    Raises:
        NotFoundError: the SKU does not exist.
    """
    if uow.session.get(Product, sku) is None:
        raise NotFoundError("product", sku)
    day = on or today()
    found = _locations(uow, sku)
    _hold_back(found, waiting_backorders(uow, [sku]).get(sku, 0), day)
    destination = locate(uow, country, postal_code)
    for entry in found:
        if destination is not None:
            entry.distance_km = distance_km(
                destination, (float(entry.location.latitude), float(entry.location.longitude)))
        entry.transit_days = transit_days(entry.distance_km)
        _promise(entry, quantity, day)
    promised = [entry for entry in found if entry.promise_date is not None]
    best = min(promised, default=None, key=lambda entry: (
        entry.promise_date, entry.promise_source != "stock", entry.location_code))
    promise = None
    reason = None
    if best is not None:
        assert best.promise_date is not None and best.promise_source is not None
        promise = Promise(best.promise_date, best.location_code, best.promise_source)
    elif not found:
        reason = f"no active location stocks or expects {sku}"
    else:
        reason = (f"no location has or expects {quantity} unit(s) of {sku} that waiting "
                  "orders do not already need")
    return Availability(sku=sku, quantity=quantity, country=country, postal_code=postal_code,
                        destination_known=destination is not None, promise=promise,
                        reason=reason, locations=found)


def _locations(uow: UnitOfWork, sku: str) -> list[LocationAvailability]:
    """Read the SKU's levels and outstanding supply at active locations: two queries."""
    found: dict[str, LocationAvailability] = {}
    for level, location in uow.session.execute(
            select(StockLevel, Location).join(Location, Location.code == StockLevel.location_code)
            .where(StockLevel.sku == sku, Location.active.is_(True))):
        found[location.code] = LocationAvailability(
            location, on_hand=level.on_hand, reserved=level.reserved,
            safety_stock=level.safety_stock)
    for supply, location in uow.session.execute(
            select(ExpectedSupply, Location)
            .join(Location, Location.code == ExpectedSupply.location_code)
            .where(ExpectedSupply.sku == sku, Location.active.is_(True),
                   ExpectedSupply.received < ExpectedSupply.quantity)
            .order_by(ExpectedSupply.expected_on, ExpectedSupply.id)):
        entry = found.setdefault(location.code, LocationAvailability(location))
        entry.supply.append(SupplyAvailability(supply.reference, supply.expected_on,
                                               supply.outstanding, supply.outstanding))
    return [found[code] for code in sorted(found)]


def _hold_back(found: list[LocationAvailability], owed: int, day: date) -> None:
    """Set aside what backorders wait for: stock in location-code order, then the earliest
    supply (by the day it arrives, then location code)."""
    for entry in found:  # in code order, as sourcing holds units back
        entry.held_back = min(owed, entry.available)
        owed -= entry.held_back
    arriving = sorted(((max(supply.expected_on, day), entry.location_code, supply)
                       for entry in found for supply in entry.supply),
                      key=lambda item: (item[0], item[1]))
    for _, _, supply in arriving:
        if owed <= 0:
            break
        taken = min(owed, supply.promisable)
        supply.promisable -= taken
        owed -= taken


def _promise(entry: LocationAvailability, quantity: int, day: date) -> None:
    """Set the earliest day this location alone could deliver the quantity, if any."""
    transit = timedelta(days=entry.transit_days)
    if entry.available_to_promise >= quantity:
        entry.promise_date, entry.promise_source = day + transit, "stock"
        return
    covered = entry.available_to_promise
    for supply in entry.supply:  # earliest first
        covered += supply.promisable
        if covered >= quantity:
            arrives = max(supply.expected_on, day)
            entry.promise_date, entry.promise_source = arrives + transit, "supply"
            return
