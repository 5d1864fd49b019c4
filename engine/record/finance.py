"""Returns and the embedded ledger's books."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

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
