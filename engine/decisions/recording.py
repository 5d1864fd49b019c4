"""The record of every rule decision about an order: one builder for every stage."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from engine.decisions.rulesets import compiled
from engine.ports import UnitOfWork
from engine.record import Order, OrderDecision, RuleSetVersion
from rules.evaluation import expand_traces


def decision_for(order: Order, stage: str, version: RuleSetVersion | int | None, outcome: str,
                 decision: dict[str, Any], facts: dict[str, Any], trace: Any,
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
                    decision: dict[str, Any], facts: dict[str, Any], trace: Any,
                    at: datetime) -> OrderDecision:
    """Write one decision (`decision_for`, then `record_decisions`)."""
    recorded = decision_for(order, stage, version, outcome, decision, facts, trace, at)
    record_decisions(uow, [recorded])
    return recorded


def full_trace(recorded: OrderDecision) -> list[Any]:
    """The decision's trace in full, every rule tried with each condition it saw, as the
    rule set of the version that decided it names them (traces are stored by number)."""
    version = recorded.version
    expanded: list[Any] = expand_traces(compiled(version) if version is not None else None,
                                        recorded.trace)
    return expanded
