"""Fulfilment groups, shipments, inbound partner events, once-only partner effects."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.record.base import Base, utcnow
from engine.status import GroupStatus, ShipmentStatus

if TYPE_CHECKING:
    from engine.record.catalog import Location
    from engine.record.decisions import OrderDecision
    from engine.record.orders import Order, OrderLine


# Groups that still hold a reservation: allocated, or released to the warehouse.
# on_hold: released, then withdrawn (or being withdrawn) from its warehouse while the order
# is on hold; releasing the hold hands it back.
OPEN_GROUP_STATUSES = (GroupStatus.ALLOCATED, GroupStatus.RELEASED, GroupStatus.ON_HOLD)


class FulfilmentGroup(Base):
    """The part of an order one location ships: its lines and units, reserved there."""

    __tablename__ = "fulfilment_groups"
    __table_args__ = (
        Index("ix_fulfilment_groups_order_id", "order_id"),
        Index("ix_fulfilment_groups_location_code_created_at", "location_code", "created_at"),
        Index("ix_fulfilment_groups_location_code_ready_at", "location_code", "ready_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    location_code: Mapped[str] = mapped_column(ForeignKey("locations.code"))
    status: Mapped[str] = mapped_column(String(16), default=GroupStatus.ALLOCATED)
    decision_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("order_decisions.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Chosen by the carrier stage (empty until then).
    carrier_code: Mapped[str | None] = mapped_column(String(32))
    service_code: Mapped[str | None] = mapped_column(String(32))
    shipping_cost: Mapped[Decimal | None]
    promised_at: Mapped[datetime | None]
    carrier_decision_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"))
    # Set once the warehouse has taken the group (its id for it), by the release job.
    wms_reference: Mapped[str | None] = mapped_column(String(128))
    released_at: Mapped[datetime | None]
    # How many times the warehouse took it: a hold withdraws a group, and its next release
    # is a new request (a new idempotency key).
    releases: Mapped[int] = mapped_column(default=0, server_default="0")
    # Waiting since for the next wave to its warehouse (None: not waiting), and taken by
    # the wave job sending it since (a claim older than the lease was a dead job's).
    ready_at: Mapped[datetime | None]
    wave_claimed_at: Mapped[datetime | None]

    lines: Mapped[list[FulfilmentLine]] = relationship(
        back_populates="group", order_by="FulfilmentLine.id", lazy="selectin",
        cascade="all, delete-orphan")
    order: Mapped[Order] = relationship(back_populates="fulfilment_groups")
    location: Mapped[Location] = relationship()
    # The sourcing decision that made it: a batch writes its decisions and groups together.
    decision: Mapped[OrderDecision | None] = relationship(lazy="raise")


class FulfilmentLine(Base):
    __tablename__ = "fulfilment_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("fulfilment_groups.id", ondelete="CASCADE"))
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"))
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)

    group: Mapped[FulfilmentGroup] = relationship(back_populates="lines")
    order_line: Mapped[OrderLine] = relationship(lazy="joined")


class Shipment(Base):
    """One package (or set of packages under one tracking number) leaving a location."""

    __tablename__ = "shipments"
    __table_args__ = (
        UniqueConstraint("group_id", "package_ref", name="uq_shipments_group_id_package_ref"),
        UniqueConstraint("tracking_number", name="uq_shipments_tracking_number"),
        Index("ix_shipments_order_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    group_id: Mapped[int] = mapped_column(ForeignKey("fulfilment_groups.id"))
    package_ref: Mapped[str] = mapped_column(String(128))  # the warehouse's package id
    location_code: Mapped[str] = mapped_column(String(64))
    carrier_code: Mapped[str | None] = mapped_column(String(32))
    service_code: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20), default=ShipmentStatus.PACKED)
    tracking_number: Mapped[str | None] = mapped_column(String(64))
    label_cost: Mapped[Decimal | None]
    weight_kg: Mapped[Decimal] = mapped_column(default=Decimal(0))
    # What the shipment bills, fixed when it ships (under the order's lock), so that the
    # invoices of an order add up to it whatever order the billing jobs run in.
    net_amount: Mapped[Decimal | None]
    tax_amount: Mapped[Decimal | None]
    shipping_amount: Mapped[Decimal | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    shipped_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    invoice_reference: Mapped[str | None] = mapped_column(String(128))
    invoiced_at: Mapped[datetime | None]
    # Taken since by the label wave or the billing run working on it (see ready_at above).
    label_claimed_at: Mapped[datetime | None]
    billing_claimed_at: Mapped[datetime | None]

    lines: Mapped[list[ShipmentLine]] = relationship(
        back_populates="shipment", order_by="ShipmentLine.id", lazy="selectin",
        cascade="all, delete-orphan")
    group: Mapped[FulfilmentGroup] = relationship()


class ShipmentLine(Base):
    __tablename__ = "shipment_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"))
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"))
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)

    shipment: Mapped[Shipment] = relationship(back_populates="lines")
    order_line: Mapped[OrderLine] = relationship(lazy="joined")


class InboundEvent(Base):
    """An event a partner sent us (WMS confirmation, carrier tracking), kept by its id so
    a duplicate is recognised and has no second effect."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("source", "event_id", name="uq_inbound_events_source_event_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))  # wms, carrier
    event_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    outcome: Mapped[str] = mapped_column(String(16))  # applied, ignored
    detail: Mapped[str | None] = mapped_column(String(500))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExternalEffect(Base):
    """A call to a partner that took effect (a release, a label, a payment), recorded once
    per idempotency key: a job that runs twice finds it here and does not act again."""

    __tablename__ = "external_effects"
    __table_args__ = (UniqueConstraint("key", name="uq_external_effects_key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    system: Mapped[str] = mapped_column(String(16))  # wms, carrier, finance
    operation: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    reference: Mapped[str] = mapped_column(String(128))
    amount: Mapped[Decimal | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
