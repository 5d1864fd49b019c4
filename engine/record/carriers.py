"""Carriers, their services and rate cards."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.record.base import Base, utcnow


class Carrier(Base):
    """A carrier and, through its services, what it can ship, how fast and at what price."""

    __tablename__ = "carriers"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    services: Mapped[list[CarrierService]] = relationship(
        back_populates="carrier", order_by="CarrierService.code", lazy="selectin",
        cascade="all, delete-orphan")


class CarrierService(Base):
    """One service of a carrier: its level, limits, surcharges and rate card."""

    __tablename__ = "carrier_services"
    __table_args__ = (
        UniqueConstraint("carrier_code", "code", name="uq_carrier_services_carrier_code_code"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    carrier_code: Mapped[str] = mapped_column(
        ForeignKey("carriers.code", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    service_level: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16))  # ground, air
    max_weight_kg: Mapped[Decimal]
    insured: Mapped[bool] = mapped_column(Boolean, default=False)
    max_insured_value: Mapped[Decimal] = mapped_column(default=Decimal(0))
    hazmat_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    cutoff_hour: Mapped[int] = mapped_column(Integer, default=16)  # UTC; later ships next day
    dim_divisor: Mapped[int] = mapped_column(Integer, default=6000)  # cm3 per billable kg
    fuel_surcharge_pct: Mapped[Decimal] = mapped_column(default=Decimal(0))
    hazmat_fee: Mapped[Decimal] = mapped_column(default=Decimal(0))
    insurance_pct: Mapped[Decimal] = mapped_column(default=Decimal(0))  # of declared value

    carrier: Mapped[Carrier] = relationship(back_populates="services")
    rates: Mapped[list[CarrierRate]] = relationship(
        order_by="(CarrierRate.max_km, CarrierRate.max_kg)", lazy="selectin",
        cascade="all, delete-orphan")


class CarrierRate(Base):
    """One cell of a rate card: up to a distance and a billable weight, a price and transit."""

    __tablename__ = "carrier_rates"
    __table_args__ = (
        UniqueConstraint("service_id", "max_km", "max_kg",
                         name="uq_carrier_rates_service_id_max_km_max_kg"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[int] = mapped_column(
        ForeignKey("carrier_services.id", ondelete="CASCADE"))
    max_km: Mapped[int] = mapped_column(Integer)
    max_kg: Mapped[Decimal]
    price: Mapped[Decimal]
    transit_days: Mapped[int] = mapped_column(Integer)
