"""Rule-set versions, their history, the decisions they made, simulations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.record.base import Base, utcnow


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
    # as stored: rules and conditions by number (`rules.evaluation.expand_traces`)
    trace: Mapped[Any] = mapped_column(JSON)
    evaluated_at: Mapped[datetime] = mapped_column(default=utcnow)

    version: Mapped[RuleSetVersion | None] = relationship(lazy="joined")


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
