"""The record of every rule decision about an order: one builder for every stage."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from engine.ports import UnitOfWork
from engine.record import Order, OrderDecision, RuleSetVersion


def decision_for(order: Order, stage: str, version: RuleSetVersion | int | None, outcome: str,
                 decision: dict[str, Any], facts: dict[str, Any], trace: list[Any],
                 at: datetime) -> OrderDecision:
    """What a stage decided, with the version that decided it, the facts it saw and its
    trace; not yet written (`record_decisions` writes a batch's together)."""
    version_id = version.id if isinstance(version, RuleSetVersion) else version
    return OrderDecision(order_id=order.id, stage=stage, rule_set_version_id=version_id,
                         outcome=outcome, decision=decision, facts=facts, trace=trace,
                         evaluated_at=at)


def record_decisions(uow: UnitOfWork, decisions: Sequence[OrderDecision]) -> None:
    """Write decisions, a batch's in one insert; flushed, so that the timeline events that
    follow can name them."""
    uow.session.add_all(decisions)
    uow.session.flush()


def record_decision(uow: UnitOfWork, order: Order, stage: str,
                    version: RuleSetVersion | int | None, outcome: str,
                    decision: dict[str, Any], facts: dict[str, Any], trace: list[Any],
                    at: datetime) -> OrderDecision:
    """Write one decision (`decision_for`, then `record_decisions`)."""
    recorded = decision_for(order, stage, version, outcome, decision, facts, trace, at)
    record_decisions(uow, [recorded])
    return recorded
