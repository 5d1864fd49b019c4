"""Exceptions: when something goes wrong with an order, the exceptions rules say what next.

Today's event is a rule that fails while deciding an order (validation, sourcing or
carrier): the stage has already put the order on hold in the rule-error queue, and the
exceptions rules may send that hold to another queue with their reason, cancel the order,
and ask for notifications. Payment, warehouse and carrier events join as their adapters
are built; their facts are the same.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from engine.actors import Actor
from engine.holds import RULE_ERROR_QUEUE
from engine.models import Customer, Hold, Order, OrderDecision, utcnow
from engine.orders import cancel_order, record_event
from engine.ports import UnitOfWork
from engine.rulesets import compiled, deciding_version
from engine.status import OrderStatus
from rules.evaluation import RuleEvaluationError, evaluate
from rules.stage import plain
from rules.stages.exceptions import ExceptionDecision, ExceptionFacts

# Resolutions a rule error can take today; the others need the jobs of later stages.
APPLICABLE = ("hold", "cancel")


def handle_rule_error(uow: UnitOfWork, actor: Actor, order: Order, stage: str,
                      error: RuleEvaluationError) -> OrderDecision | None:
    """Let the exceptions rules decide about an order a failing rule put on hold.

    The rule-error hold stays unless the rules hold it elsewhere or cancel the order;
    nothing the rules say can release an order whose decision failed.
    """
    version = deciding_version(uow, "exceptions")
    if version is None:
        return None
    now = utcnow()
    facts = _facts(uow, order, stage, error, now)
    try:
        evaluation = evaluate(compiled(version), facts, at=now)
    except RuleEvaluationError as failed:  # the exceptions rules fail too: keep the hold
        recorded = _record(uow, order, version.id, "error", {"error": str(failed)}, facts,
                           failed.trace, now)
        return recorded
    decision = evaluation.decision
    assert isinstance(decision, ExceptionDecision)
    resolution = decision.resolution
    summary = decision.to_dict() | {"resolution": resolution}
    if resolution not in APPLICABLE and resolution != "none":
        summary["not_applied"] = (f"{resolution} is not available for rule errors; the order "
                                  f"stays in {RULE_ERROR_QUEUE}")
    recorded = _record(uow, order, version.id, resolution, summary, facts, evaluation.trace,
                       now)
    hold = uow.session.scalars(select(Hold).where(
        Hold.order_id == order.id, Hold.stage == stage, Hold.queue == RULE_ERROR_QUEUE,
        Hold.resolved_at.is_(None)).order_by(Hold.id.desc())).first()
    step = next((s for s in decision.steps if s.kind == resolution), None)
    if resolution == "hold" and step is not None and hold is not None:
        hold.queue = step.params["queue"]
        hold.reason = f"{step.params['reason']} ({error})"[:500]
    for notice in (s for s in decision.steps if s.kind == "notify"):
        record_event(uow, order, "notification.requested", actor, stage="exceptions",
                     recipient=notice.params["recipient"], message=notice.params["message"],
                     rule=notice.rule, decision_id=recorded.id)
    if resolution == "cancel" and step is not None:
        cancel_order(uow, actor, order.id, step.params["reason"])
    return recorded


def _facts(uow: UnitOfWork, order: Order, stage: str, error: RuleEvaluationError,
           now: datetime) -> ExceptionFacts:
    customer = uow.session.get(Customer, order.customer_id)
    earlier = uow.session.scalar(select(func.count(OrderDecision.id)).where(
        OrderDecision.order_id == order.id, OrderDecision.stage == "exceptions")) or 0
    status = (order.held_from if order.status is OrderStatus.ON_HOLD and order.held_from
              else order.status.value)
    return ExceptionFacts(
        event_type="rule_error", event_code=error.rule or "", failed_stage=stage,
        attempts=earlier + 1, delay_hours=Decimal(0), order_status=status,
        order_total=order.total, channel=order.channel,
        customer_tier=customer.tier if customer else "standard",
        service_level=order.service_level,
        has_shipped_units=any(line.quantity_shipped for line in order.lines),
        occurred_at=now,
    )


def _record(uow: UnitOfWork, order: Order, version_id: int, outcome: str,
            decision: dict[str, Any], facts: ExceptionFacts, trace: list[Any],
            now: datetime) -> OrderDecision:
    recorded = OrderDecision(order_id=order.id, stage="exceptions",
                             rule_set_version_id=version_id, outcome=outcome,
                             decision=plain(decision), facts=plain(asdict(facts)),
                             trace=list(trace), evaluated_at=now)
    uow.session.add(recorded)
    uow.session.flush()
    return recorded
