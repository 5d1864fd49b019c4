"""Carriers, their services and rate cards: kept, listed, installed, cached per version
(`reference_cache`: every change to a carrier, service or rate bumps the carriers' version)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import NotFoundError
from engine.ports import UnitOfWork
from engine.record import (
    Carrier,
    CarrierRate,
    CarrierService,
    utcnow,
)
from engine.reference_cache import CARRIERS, cached


def replace_carrier(uow: UnitOfWork, data: Mapping[str, Any]) -> tuple[Carrier, bool]:
    """Create a carrier or replace it whole (services and rate cards); True if created."""
    carrier = uow.session.get(Carrier, data["code"], with_for_update=True)
    created = carrier is None
    if carrier is None:
        carrier = Carrier(code=data["code"])
        uow.session.add(carrier)
    carrier.name, carrier.active = data["name"], data.get("active", True)
    carrier.updated_at = utcnow()
    carrier.services.clear()
    uow.session.flush()  # the old services go before their codes are used again
    for service in data["services"]:
        rates = [CarrierRate(**rate) for rate in service["rates"]]
        carrier.services.append(CarrierService(
            **{key: value for key, value in service.items() if key != "rates"}, rates=rates))
    uow.session.flush()
    return carrier, created


def list_carriers(uow: UnitOfWork) -> list[Carrier]:
    """Return every carrier with its services and rate cards, by code."""
    return list(uow.session.scalars(select(Carrier).order_by(Carrier.code)))


def get_carrier(uow: UnitOfWork, code: str) -> Carrier:
    """Raises NotFoundError when there is no such carrier."""
    carrier = uow.session.get(Carrier, code)
    if carrier is None:
        raise NotFoundError("carrier", code)
    return carrier


def install_default_carriers(uow: UnitOfWork,
                             shipped: Callable[[], Sequence[Mapping[str, Any]]]) -> int:
    """Load the shipped carriers (read only then) when there are none yet; return how many
    were loaded."""
    if uow.session.scalar(select(Carrier.code).limit(1)) is not None:
        return 0
    rows = shipped()
    for carrier in rows:
        replace_carrier(uow, carrier)
    return len(rows)


@dataclass(frozen=True)
class RateCell:
    max_km: int
    max_kg: Decimal
    price: Decimal
    transit_days: int


@dataclass(frozen=True)
class ServiceCard:
    """A service and its rate card as rating reads them: a snapshot, shared across requests."""

    carrier_code: str
    code: str
    service_level: str
    mode: str
    max_weight_kg: Decimal
    insured: bool
    max_insured_value: Decimal
    hazmat_allowed: bool
    cutoff_hour: int
    dim_divisor: int
    fuel_surcharge_pct: Decimal
    hazmat_fee: Decimal
    insurance_pct: Decimal
    rates: tuple[RateCell, ...]  # by distance, then weight

    @classmethod
    def of(cls, service: CarrierService) -> ServiceCard:
        return cls(
            service.carrier_code, service.code, service.service_level, service.mode,
            service.max_weight_kg, service.insured, service.max_insured_value,
            service.hazmat_allowed, service.cutoff_hour, service.dim_divisor,
            service.fuel_surcharge_pct, service.hazmat_fee, service.insurance_pct,
            tuple(sorted((RateCell(r.max_km, r.max_kg, r.price, r.transit_days)
                          for r in service.rates), key=lambda r: (r.max_km, r.max_kg))))


def rate_cards(uow: UnitOfWork) -> tuple[ServiceCard, ...]:
    """Return the active services with their rate cards: kept per process, read again only
    after a carrier changes anywhere (`reference_cache`)."""
    return cached(uow.session, CARRIERS, _read_cards)


def _read_cards(session: Session) -> tuple[ServiceCard, ...]:
    with session.no_autoflush:
        services = session.scalars(
            select(CarrierService).join(Carrier).where(Carrier.active.is_(True))
            .order_by(CarrierService.carrier_code, CarrierService.code)).all()
        return tuple(ServiceCard.of(service) for service in services)
