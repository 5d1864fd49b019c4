"""Order imports: a CSV file's orders, captured by a job, and what became of each."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.record.base import Base, utcnow


class OrderImport(Base):
    """One uploaded file: who sent it, and how far its job has captured it."""

    __tablename__ = "order_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The requester, so that the job captures as it would have: a channel key's orders
    # land in its channel, and only it (and people) see the import.
    channel: Mapped[str | None] = mapped_column(String(64))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # engine.status.ImportStatus
    total_rows: Mapped[int] = mapped_column(Integer)
    done_rows: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)  # orders
    failed_rows: Mapped[int] = mapped_column(Integer, default=0)
    # The progress a rerun resumes from: entries below it are settled (in the same
    # transaction as the orders they created).
    next_seq: Mapped[int] = mapped_column(Integer, default=0)
    entries: Mapped[int] = mapped_column(Integer)  # orders in the file, good or bad
    error: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class OrderImportEntry(Base):
    """One order of an import file: its rows, its draft (when its rows were valid), and
    the order it became or the problems of its rows."""

    __tablename__ = "order_import_entries"
    __table_args__ = (UniqueConstraint("import_id", "seq", name="uq_order_import_entries_seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("order_imports.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)  # its place in the file, from 0
    rows: Mapped[list[int]] = mapped_column(JSON)  # the file's row of each line
    draft: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    outcome: Mapped[str] = mapped_column(String(16))  # engine.status.ImportOutcome
    order_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("orders.id"))
    # [{"row": 3, "field": "quantity", "reason": "..."}], one per problem, rows ascending
    problems: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))
