"""Stock per SKU and location, its append-only ledger, expected supply."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.record.base import Base, utcnow


class StockLevel(Base):
    """Units of one SKU at one location; always the sum of its movements in the ledger."""

    __tablename__ = "stock_levels"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="reserved_within_on_hand"),
        CheckConstraint("safety_stock >= 0", name="safety_stock_not_negative"),
        Index("ix_stock_levels_location_code_sku", "location_code", "sku"),
    )

    sku: Mapped[str] = mapped_column(ForeignKey("products.sku"), primary_key=True)
    location_code: Mapped[str] = mapped_column(ForeignKey("locations.code"), primary_key=True)
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    safety_stock: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def available(self) -> int:
        return max(self.on_hand - self.reserved - self.safety_stock, 0)


class StockMovement(Base):
    """One change to a stock level: the ledger, which is never edited."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        Index("ix_stock_movements_sku_location_code_id", "sku", "location_code", "id"),
        Index("ix_stock_movements_order_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(String(64))
    location_code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    on_hand_change: Mapped[int] = mapped_column(Integer)
    reserved_change: Mapped[int] = mapped_column(Integer)
    on_hand_after: Mapped[int] = mapped_column(Integer)
    reserved_after: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(200))
    reference: Mapped[str | None] = mapped_column(String(128))
    order_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    actor: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExpectedSupply(Base):
    """Units on their way to a location (a purchase order or a transfer), by date."""

    __tablename__ = "expected_supply"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("received >= 0 AND received <= quantity", name="received_within_quantity"),
        UniqueConstraint("location_code", "reference", "sku",
                         name="uq_expected_supply_location_reference_sku"),
        Index("ix_expected_supply_sku_expected_on", "sku", "expected_on"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(ForeignKey("products.sku"))
    location_code: Mapped[str] = mapped_column(ForeignKey("locations.code"))
    reference: Mapped[str] = mapped_column(String(128))
    quantity: Mapped[int] = mapped_column(Integer)
    received: Mapped[int] = mapped_column(Integer, default=0)
    expected_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))

    @property
    def outstanding(self) -> int:
        return self.quantity - self.received
