"""Orders, their lines, their timeline and their holds."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.record.base import Base, Timestamped, utcnow
from engine.status import OrderStatus

if TYPE_CHECKING:
    from engine.record.catalog import Customer, Product
    from engine.record.fulfilment import FulfilmentGroup


class Order(Timestamped, Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("channel", "channel_order_ref", name="uq_orders_channel_ref"),
        Index("ix_orders_created_at_id", "created_at", "id"),
        Index("ix_orders_status_id", "status", "id"),
        Index("ix_orders_customer_id_id", "customer_id", "id"),
        Index("ix_orders_updated_at_id", "updated_at", "id"),  # what changed since (sync)
        Index("ix_orders_channel_order_ref", "channel_order_ref"),  # any channel's reference
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(64))
    channel_order_ref: Mapped[str | None] = mapped_column(String(128))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    status: Mapped[OrderStatus] = mapped_column(
        Enum(OrderStatus, native_enum=False, length=32, validate_strings=True,
             values_callable=lambda statuses: [s.value for s in statuses]),
        default=OrderStatus.RECEIVED,
    )
    currency: Mapped[str] = mapped_column(String(3))
    service_level: Mapped[str] = mapped_column(String(16))
    payment_terms: Mapped[str] = mapped_column(String(16))
    ship_to_name: Mapped[str] = mapped_column(String(200))
    ship_to_line1: Mapped[str] = mapped_column(String(200))
    ship_to_line2: Mapped[str | None] = mapped_column(String(200))
    ship_to_city: Mapped[str] = mapped_column(String(100))
    ship_to_region: Mapped[str | None] = mapped_column(String(100))
    ship_to_postal_code: Mapped[str | None] = mapped_column(String(16))
    ship_to_country: Mapped[str] = mapped_column(String(2))
    ship_to_phone: Mapped[str | None] = mapped_column(String(40))
    subtotal: Mapped[Decimal]
    shipping_amount: Mapped[Decimal]
    tax_amount: Mapped[Decimal]
    total: Mapped[Decimal]
    held_from: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(200))

    customer: Mapped[Customer] = relationship(lazy="raise")
    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", order_by="OrderLine.line_no", lazy="selectin",
        cascade="all, delete-orphan",
    )
    fulfilment_groups: Mapped[list[FulfilmentGroup]] = relationship(
        back_populates="order", order_by="FulfilmentGroup.id")


QUANTITY_CHECKS = (
    CheckConstraint("quantity_ordered > 0", name="ordered_positive"),
    CheckConstraint(
        "quantity_allocated >= 0 AND quantity_shipped >= 0 AND quantity_delivered >= 0 "
        "AND quantity_cancelled >= 0 AND quantity_returned >= 0",
        name="quantities_not_negative",
    ),
    CheckConstraint(
        "quantity_allocated + quantity_shipped + quantity_cancelled <= quantity_ordered",
        name="quantities_within_ordered",
    ),
    CheckConstraint(
        "quantity_backordered >= 0 AND quantity_backordered + quantity_allocated "
        "+ quantity_shipped + quantity_cancelled <= quantity_ordered",
        name="backordered_within_ordered",
    ),
    CheckConstraint("quantity_delivered <= quantity_shipped", name="delivered_within_shipped"),
    CheckConstraint("quantity_returned <= quantity_shipped", name="returned_within_shipped"),
)


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "line_no", name="uq_order_lines_order_line_no"),
        Index("ix_order_lines_sku_order_id", "sku", "order_id"),
        Index("ix_order_lines_backordered_sku", "sku",
              postgresql_where=text("quantity_backordered > 0"),
              sqlite_where=text("quantity_backordered > 0")),
        *QUANTITY_CHECKS,
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(ForeignKey("products.sku"))
    unit_price: Mapped[Decimal]
    line_total: Mapped[Decimal]
    # quantity_allocated counts units reserved but not yet shipped.
    quantity_ordered: Mapped[int] = mapped_column(Integer)
    quantity_allocated: Mapped[int] = mapped_column(Integer, default=0)
    quantity_shipped: Mapped[int] = mapped_column(Integer, default=0)
    quantity_delivered: Mapped[int] = mapped_column(Integer, default=0)
    quantity_cancelled: Mapped[int] = mapped_column(Integer, default=0)
    quantity_returned: Mapped[int] = mapped_column(Integer, default=0)
    # Units waiting for stock: a backorder job allocates them as stock arrives.
    quantity_backordered: Mapped[int] = mapped_column(Integer, default=0,
                                                      server_default=text("0"))

    order: Mapped[Order] = relationship(back_populates="lines")
    product: Mapped[Product] = relationship()


class OrderEvent(Base):
    """One entry of an order's timeline; the table refuses updates and deletes."""

    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order_id_id", "order_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    type: Mapped[str] = mapped_column(String(64))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Hold(Base):
    """A reason an order waits for a person: its queue, what raised it, how it ended."""

    __tablename__ = "holds"
    __table_args__ = (
        Index("ix_holds_open_queue", "resolved_at", "queue", "id"),
        Index("ix_holds_order_id", "order_id"),
        Index("ix_holds_assignee", "assignee"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    stage: Mapped[str] = mapped_column(String(32))
    queue: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500))
    rule: Mapped[str | None] = mapped_column(String(100))
    rule_set_version_id: Mapped[int | None] = mapped_column(ForeignKey("rule_set_versions.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolution: Mapped[str | None] = mapped_column(String(32))  # released, cancelled
    # Who works it (a person's user name), since when, and who gave it to them.
    assignee: Mapped[str | None] = mapped_column(String(200))
    assigned_at: Mapped[datetime | None]
    assigned_by: Mapped[str | None] = mapped_column(String(200))


class HoldComment(Base):
    """A note a person left on a hold (also on its order's timeline)."""

    __tablename__ = "hold_comments"
    __table_args__ = (Index("ix_hold_comments_hold_id", "hold_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    hold_id: Mapped[int] = mapped_column(ForeignKey("holds.id"))
    body: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
