"""Rating a parcel on a service's card: billable weight, distance band, surcharges, promise."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal

from engine.carriers.rate_cards import ServiceCard
from engine.catalog.geo import UNKNOWN_DISTANCE_KM

DELIVERY_HOUR = time(18)  # promises are "by the end of the day", UTC


CENT = Decimal("0.01")


@dataclass(frozen=True)
class Shipment:
    """What rating needs to know about one fulfilment group."""

    weight_kg: Decimal
    volume_cm3: Decimal
    value: Decimal
    contains_hazmat: bool
    distance: Decimal | None


@dataclass(frozen=True)
class Quote:
    service: ServiceCard
    billable_kg: Decimal
    cost: Decimal
    transit_days: int
    promised_at: datetime


def quote(service: ServiceCard, shipment: Shipment, now: datetime) -> Quote | None:
    """Rate one service for a shipment; None when its card does not reach that far."""
    billable = max(shipment.weight_kg,
                   (shipment.volume_cm3 / service.dim_divisor).quantize(Decimal("0.001")))
    kilometres = shipment.distance if shipment.distance is not None else UNKNOWN_DISTANCE_KM
    cells = [rate for rate in service.rates if rate.max_km >= kilometres]
    if not cells:
        return None
    band = cells[0].max_km  # the card is sorted by distance, then weight
    in_band = [rate for rate in cells if rate.max_km == band]
    # heavier than the card goes: the heaviest cell's price, and over_max_weight says so
    cell = next((rate for rate in in_band if rate.max_kg >= billable), in_band[-1])
    freight = cell.price * (1 + service.fuel_surcharge_pct / 100)
    cost = freight + (service.hazmat_fee if shipment.contains_hazmat else 0)
    if service.insured:
        cost += min(shipment.value, service.max_insured_value) * service.insurance_pct / 100
    ships = now.date() + timedelta(days=1 if now.hour >= service.cutoff_hour else 0)
    promised = datetime.combine(ships + timedelta(days=cell.transit_days), DELIVERY_HOUR,
                                tzinfo=now.tzinfo)
    return Quote(service, billable, cost.quantize(CENT), cell.transit_days, promised)
