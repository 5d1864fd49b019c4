"""Who, what and where: customers, products, locations, postal areas."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import (
    Boolean,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.record.base import COORDINATE, Base, Timestamped


class Customer(Timestamped, Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    tier: Mapped[str] = mapped_column(String(16), default="standard")
    credit_limit: Mapped[Decimal | None]
    payment_terms: Mapped[str] = mapped_column(String(16), default="prepaid")
    postal_code: Mapped[str | None] = mapped_column(String(16))
    country: Mapped[str | None] = mapped_column(String(2))
    latitude: Mapped[Decimal | None] = mapped_column(COORDINATE)
    longitude: Mapped[Decimal | None] = mapped_column(COORDINATE)


class Product(Timestamped, Base):
    __tablename__ = "products"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(100))
    weight_g: Mapped[int] = mapped_column(Integer)
    length_cm: Mapped[Decimal]
    width_cm: Mapped[Decimal]
    height_cm: Mapped[Decimal]
    value: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    hazmat: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Location(Timestamped, Base):
    __tablename__ = "locations"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    line1: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(16))
    country: Mapped[str] = mapped_column(String(2))
    latitude: Mapped[Decimal] = mapped_column(COORDINATE)
    longitude: Mapped[Decimal] = mapped_column(COORDINATE)
    daily_capacity: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class PostalArea(Base):
    """Where a postal code (by its leading digits) lies: distances and promises start here."""

    __tablename__ = "postal_areas"

    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    latitude: Mapped[Decimal] = mapped_column(COORDINATE)
    longitude: Mapped[Decimal] = mapped_column(COORDINATE)
    city: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
