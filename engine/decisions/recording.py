"""The record of every rule decision about an order: one builder for every stage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.ports import UnitOfWork
from engine.record import Order, OrderDecision, RuleSetVersion


def record_decision(uow: UnitOfWork, order: Order, stage: str,
                    version: RuleSetVersion | int | None, outcome: str,
                    decision: dict[str, Any], facts: dict[str, Any], trace: list[Any],
                    at: datetime) -> OrderDecision:
    """Store what a stage decided, with the version that decided it, the facts it saw and
    its trace; flushed, so the timeline event that follows can name it."""
    version_id = version.id if isinstance(version, RuleSetVersion) else version
    recorded = OrderDecision(order_id=order.id, stage=stage, rule_set_version_id=version_id,
                             outcome=outcome, decision=decision, facts=facts, trace=trace,
                             evaluated_at=at)
    uow.session.add(recorded)
    uow.session.flush()
    return recorded
