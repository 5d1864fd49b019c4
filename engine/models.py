"""The record: reference data, orders with lines, the order event log, API keys."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeEngine

from engine.status import GroupStatus, OrderStatus, ShipmentStatus


def utcnow() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always aware and in UTC, also on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware one is required")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite keeps no zone: we only ever write UTC
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class ExactDecimal(TypeDecorator[Decimal]):
    """A decimal kept exactly: NUMERIC where the database has it, fixed-point text on SQLite.

    On SQLite every value is written with exactly `scale` decimals and no exponent, so both
    backends give back the same Decimal.
    """

    impl = Numeric(18, 4)
    cache_ok = True

    def __init__(self, precision: int = 18, scale: int = 4) -> None:
        super().__init__()
        self.precision, self.scale = precision, scale
        self.quantum = Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(self.precision + 2))
        return dialect.type_descriptor(Numeric(self.precision, self.scale))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        fixed = Decimal(value).quantize(self.quantum)
        return format(fixed, "f") if dialect.name == "sqlite" else fixed

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


# Money and measures keep 4 decimals; coordinates keep 6 (about 10 cm).
COORDINATE = ExactDecimal(10, 6)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        datetime: UtcDateTime(),
        Decimal: ExactDecimal(),
        dict[str, Any]: JSON(),
    }


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)




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


class Order(Timestamped, Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("channel", "channel_order_ref", name="uq_orders_channel_ref"),
        Index("ix_orders_created_at_id", "created_at", "id"),
        Index("ix_orders_status_id", "status", "id"),
        Index("ix_orders_customer_id_id", "customer_id", "id"),
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


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(64))  # a channel integration's
    # A warehouse integration's location codes, a carrier integration's carrier codes.
    scope: Mapped[list[str] | None] = mapped_column(JSON)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class IdempotencyRecord(Base):
    """The first response to a request sent with an Idempotency-Key, per API key."""

    __tablename__ = "idempotency_records"
    __table_args__ = (
        UniqueConstraint("api_key_id", "key", name="uq_idempotency_records_api_key_key"),
        Index("ix_idempotency_records_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    locked_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    # A fresh token per claim: only the request holding the current one may finish it.
    claim_token: Mapped[str] = mapped_column(String(32))


RULE_SET_STATES = ("draft", "published", "retired")


class RuleSetVersion(Base):
    """One version of a stage's rule set; exactly one per stage is published."""

    __tablename__ = "rule_set_versions"
    __table_args__ = (
        UniqueConstraint("stage", "version", name="uq_rule_set_versions_stage_version"),
        Index("uq_rule_set_versions_one_published", "stage", unique=True,
              postgresql_where=text("state = 'published'"),
              sqlite_where=text("state = 'published'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stage: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(String(500))
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
    published_by: Mapped[str | None] = mapped_column(String(200))
    approved_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(String(200))


class RuleSetEvent(Base):
    """The audit of rule sets: every draft, change, publish and rollback, and by whom."""

    __tablename__ = "rule_set_events"
    __table_args__ = (Index("ix_rule_set_events_stage_id", "stage", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stage: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(String(500))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)


class OrderDecision(Base):
    """One evaluation of one stage for one order: the outcome, the version, the trace."""

    __tablename__ = "order_decisions"
    __table_args__ = (Index("ix_order_decisions_order_id_id", "order_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    stage: Mapped[str] = mapped_column(String(32))
    rule_set_version_id: Mapped[int | None] = mapped_column(ForeignKey("rule_set_versions.id"))
    outcome: Mapped[str] = mapped_column(String(32))
    decision: Mapped[dict[str, Any]] = mapped_column(JSON)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)
    trace: Mapped[list[Any]] = mapped_column(JSON)
    evaluated_at: Mapped[datetime] = mapped_column(default=utcnow)

    version: Mapped[RuleSetVersion | None] = relationship(lazy="joined")


class Hold(Base):
    """A reason an order waits for a person: its queue, what raised it, how it ended."""

    __tablename__ = "holds"
    __table_args__ = (
        Index("ix_holds_open_queue", "resolved_at", "queue", "id"),
        Index("ix_holds_order_id", "order_id"),
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


class Simulation(Base):
    """A simulation of a candidate rule set over many orders, run as a job."""

    __tablename__ = "simulations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stage: Mapped[str] = mapped_column(String(32))
    candidate_version: Mapped[int | None] = mapped_column(Integer)
    candidate_document: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    last: Mapped[int] = mapped_column(Integer)
    created_from: Mapped[datetime | None]  # the window of orders, when one was asked for
    created_to: Mapped[datetime | None]
    channel: Mapped[str | None] = mapped_column(String(64))  # the requester's, if bound
    state: Mapped[str] = mapped_column(String(16))  # queued, done, failed
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(1000))
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class PostalArea(Base):
    """Where a postal code (by its leading digits) lies: distances and promises start here."""

    __tablename__ = "postal_areas"

    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    latitude: Mapped[Decimal] = mapped_column(COORDINATE)
    longitude: Mapped[Decimal] = mapped_column(COORDINATE)
    city: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))


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

    lines: Mapped[list[FulfilmentLine]] = relationship(
        back_populates="group", order_by="FulfilmentLine.id", lazy="selectin",
        cascade="all, delete-orphan")
    order: Mapped[Order] = relationship(back_populates="fulfilment_groups")
    location: Mapped[Location] = relationship()


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


class OutboxMessage(Base):
    """Work a committed change asked for, written in its transaction: a dispatcher hands it
    to the job queue, so a queue that is down delays the work but loses none."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_waiting", "id",
              postgresql_where=text("dispatched_at IS NULL"),
              sqlite_where=text("dispatched_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(100))
    args: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))


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


LEDGER_ACCOUNTS = ("cash", "receivables", "revenue", "tax_payable", "shipping_revenue")


class JournalEntry(Base):
    """One balanced posting of the embedded ledger; append-only, one per idempotency key."""

    __tablename__ = "journal_entries"
    __table_args__ = (
        UniqueConstraint("key", name="uq_journal_entries_key"),
        Index("ix_journal_entries_order_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(24))  # authorisation, capture, invoice, ...
    reference: Mapped[str] = mapped_column(String(64))  # INV-..., PAY-..., CN-...
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal]  # what the posting is for (an authorisation moves no money)
    memo: Mapped[str] = mapped_column(String(200))
    posted_at: Mapped[datetime] = mapped_column(default=utcnow)

    lines: Mapped[list[JournalLine]] = relationship(
        back_populates="entry", order_by="JournalLine.id", lazy="selectin",
        cascade="all, delete-orphan")


class JournalLine(Base):
    __tablename__ = "journal_lines"
    __table_args__ = (
        # amounts are text on SQLite: compare them as numbers on both backends
        CheckConstraint("CAST(debit AS NUMERIC) >= 0 AND CAST(credit AS NUMERIC) >= 0 AND "
                        "(CAST(debit AS NUMERIC) = 0 OR CAST(credit AS NUMERIC) = 0)",
                        name="one_side"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"))
    account: Mapped[str] = mapped_column(String(32))
    debit: Mapped[Decimal] = mapped_column(default=Decimal(0))
    credit: Mapped[Decimal] = mapped_column(default=Decimal(0))

    entry: Mapped[JournalEntry] = relationship(back_populates="lines")


class WebhookSubscription(Base):
    """A subscriber's URL and the order events it wants, signed with its own secret."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(500))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))


class WebhookDelivery(Base):
    """One event owed to one subscriber: its attempts, the last response, and the outcome."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id",
                         name="uq_webhook_deliveries_subscription_id_event_id"),
        Index("ix_webhook_deliveries_subscription_id_id", "subscription_id", "id"),
        Index("ix_webhook_deliveries_due", "next_attempt_at",
              postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("order_events.id"))
    event_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_response: Mapped[str | None] = mapped_column(String(2000))
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class OrderReturn(Base):
    """Goods a customer sent back: which units, whether they went back on the shelf, and
    the credit note and refund that settle them."""

    __tablename__ = "order_returns"
    __table_args__ = (Index("ix_order_returns_order_id", "order_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    reason: Mapped[str] = mapped_column(String(500))
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # order_line_id, sku, quantity
    restock_location: Mapped[str | None] = mapped_column(String(64))
    net_amount: Mapped[Decimal]
    tax_amount: Mapped[Decimal]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    credit_reference: Mapped[str | None] = mapped_column(String(128))
    refund_reference: Mapped[str | None] = mapped_column(String(128))
    settled_at: Mapped[datetime | None]
    # settling that failed: after MAX_SETTLE_FAILURES rounds it waits for a person
    settle_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
