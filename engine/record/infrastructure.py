"""Tables kept for the service itself: idempotency keys, the outbox, the versions of the
reference data the processes cache."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.record.base import Base, utcnow


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


class ReferenceVersion(Base):
    """The version of one kind of reference data (rule sets, carriers, webhooks, postal
    areas): every write to its tables adds one, so a process's copy knows when it is old."""

    __tablename__ = "reference_versions"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
