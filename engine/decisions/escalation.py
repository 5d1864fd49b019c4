"""Exceptions: when something goes wrong with an order, the exceptions rules say what next.

Three kinds of event reach them. A rule that fails while deciding an order (validation,
sourcing or carrier): the stage has already put the order on hold in the rule-error queue,
and the exceptions rules may send that hold to another queue, cancel the order, and ask
for notifications. A job that talks to a partner (warehouse, carrier, finance) and gives
up after its retries: the rules may run it again, hold the order in a queue with the
error, cancel it, or notify. Something that happened to the order (a short pick, a late
parcel): the rules may also re-source the missing units (fulfilment carries that out).
What each event allows is `rules.stages.exceptions.ACTIONS_BY_EVENT`, checked when a rule
set is saved; a rule set saved before that check may still ask for something else, which
is then recorded as not applied.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from engine.actors import Actor
from engine.decisions.recording import record_decision
from engine.decisions.rulesets import compiled, deciding_version
from engine.fulfilment.cancelling import cancel_order
from engine.orders.holds import RULE_ERROR_QUEUE, HoldReason, put_on_hold
from engine.orders.locking import find_and_lock_order
from engine.orders.timeline import record_event
from engine.orders.transitions import may_hold, may_move
from engine.ports import JobArg, UnitOfWork
from engine.record import Customer, Hold, Order, OrderDecision, utcnow
from engine.status import OrderStatus
from rules.evaluation import RuleEvaluationError, evaluate
from rules.stage import plain
from rules.stages.exceptions import (
    ExceptionDecision,
    ExceptionFacts,
    Step,
    possible_actions,
)


def handle_rule_error(uow: UnitOfWork, actor: Actor, order: Order, stage: str,
                      error: RuleEvaluationError) -> OrderDecision | None:
    """Let the exceptions rules decide about an order a failing rule put on hold.

    The rule-error hold stays unless the rules hold it elsewhere or cancel the order;
    nothing the rules say can release an order whose decision failed.
    """
    now = utcnow()
    decided = _decide(uow, order, _facts(uow, order, "rule_error", error.rule or "", stage,
                                         now), possible_actions("rule_error"),
                      f"the order stays in {RULE_ERROR_QUEUE}")
    if decided is None:
        return None
    decision, recorded = decided
    if decision is None:
        return recorded
    resolution = decision.resolution
    hold = uow.session.scalars(select(Hold).where(
        Hold.order_id == order.id, Hold.stage == stage, Hold.queue == RULE_ERROR_QUEUE,
        Hold.resolved_at.is_(None)).order_by(Hold.id.desc())).first()
    step = next((s for s in decision.steps if s.kind == resolution), None)
    if resolution == "hold" and step is not None and hold is not None:
        hold.queue = step.params["queue"]
        hold.reason = f"{step.params['reason']} ({error})"[:500]
    _notify(uow, actor, order, decision, recorded)
    if resolution == "cancel" and step is not None:
        cancel_order(uow, actor, order.id, step.params["reason"])
    return recorded


# However the rules are written, a job is sent round again at most this many times.
MAX_RULE_RETRIES = 5


@dataclass(frozen=True)
class Failure:
    """A job that talks to a partner gave up after its last retry."""

    event_type: str  # wms_rejected, payment_failed, carrier_delay, label_failed, ...
    code: str  # the error's code, e.g. external_timeout
    stage: str  # wms, carrier, finance
    detail: str
    job: str | None = None  # the job to run again if the rules say retry
    args: tuple[JobArg, ...] = ()
    delay_hours: Decimal = Decimal(0)  # how late the order is (carrier delays)


def handle_failure(uow: UnitOfWork, actor: Actor, order_id: int,
                   failure: Failure) -> OrderDecision | None:
    """Let the exceptions rules decide what happens to an order something went wrong
    with: run the failed job again (a new round of retries), hold the order in a queue
    with the error, cancel it, or notify. Returns the recorded decision; "resource" is
    the caller's to carry out (the short pick re-sources its units).
    """
    order = find_and_lock_order(uow, order_id)
    if order is None:
        return None
    now = utcnow()
    possible = possible_actions(failure.event_type)
    if failure.job is None:
        possible -= {"retry"}
    decided = _decide(uow, order, _facts(uow, order, failure.event_type, failure.code,
                                         failure.stage, now, failure.delay_hours),
                      possible, "nothing else happens")
    if decided is None:
        return None
    decision, recorded = decided
    if decision is None:
        return recorded
    step = next((s for s in decision.steps if s.kind == decision.resolution), None)
    _notify(uow, actor, order, decision, recorded)
    if step is None:
        return recorded
    reason = f"{step.params.get('reason', '')} ({failure.detail})"[:500]
    if step.kind == "retry" and failure.job is not None:
        rounds = uow.session.scalar(select(func.count(OrderDecision.id)).where(
            OrderDecision.order_id == order.id, OrderDecision.stage == "exceptions",
            OrderDecision.outcome == "retry"))
        if (rounds or 0) <= MAX_RULE_RETRIES:
            uow.enqueue_after_commit(failure.job, *failure.args)
            return recorded
        step = Step(None, "hold", {"queue": "exceptions",
                                   "reason": f"Retried {MAX_RULE_RETRIES} times."})
        reason = f"{step.params['reason']} ({failure.detail})"[:500]
    if step.kind == "hold" and may_hold(order):
        put_on_hold(uow, actor, order, failure.stage,
                    [HoldReason(step.params["queue"], reason, step.rule)],
                    recorded.rule_set_version_id, reason=reason, queue=step.params["queue"],
                    decision_id=recorded.id)
    elif step.kind == "cancel" and may_move(order, OrderStatus.CANCELLED):
        cancel_order(uow, actor, order.id, reason)
    elif step.kind in ("hold", "cancel"):  # the order has gone past where it means anything
        recorded.decision = {**recorded.decision, "not_applied":
                             f"the order is {order.status.value}: it can no longer be "
                             f"{'held' if step.kind == 'hold' else 'cancelled'}"}
    return recorded


def _decide(uow: UnitOfWork, order: Order, facts: ExceptionFacts, applicable: frozenset[str],
            otherwise: str) -> tuple[ExceptionDecision | None, OrderDecision] | None:
    """Run the exceptions rules and record their decision (None: no rules published)."""
    version = deciding_version(uow, "exceptions")
    if version is None:
        return None
    now = facts.occurred_at
    try:
        evaluation = evaluate(compiled(version), facts, at=now)
    except RuleEvaluationError as failed:  # the exceptions rules fail too: change nothing
        return None, _record(uow, order, version.id, "error", {"error": str(failed)}, facts,
                             failed.trace, now)
    decision = evaluation.decision
    assert isinstance(decision, ExceptionDecision)
    resolution = decision.resolution
    summary = decision.to_dict() | {"resolution": resolution}
    if resolution not in applicable and resolution != "none":
        summary["not_applied"] = (f"{resolution} cannot be carried out for "
                                  f"{facts.event_type} (the rule set predates that check); "
                                  f"{otherwise}")
    return decision, _record(uow, order, version.id, resolution, summary, facts,
                             evaluation.stored_trace, now)


def _notify(uow: UnitOfWork, actor: Actor, order: Order, decision: ExceptionDecision,
            recorded: OrderDecision) -> None:
    for notice in (s for s in decision.steps if s.kind == "notify"):
        record_event(uow, order, "notification.requested", actor, stage="exceptions",
                     recipient=notice.params["recipient"], message=notice.params["message"],
                     rule=notice.rule, decision_id=recorded.id)


def _facts(uow: UnitOfWork, order: Order, event_type: str, code: str, stage: str,
           now: datetime, delay_hours: Decimal = Decimal(0)) -> ExceptionFacts:
    customer = uow.session.get(Customer, order.customer_id)
    earlier = uow.session.scalar(select(func.count(OrderDecision.id)).where(
        OrderDecision.order_id == order.id, OrderDecision.stage == "exceptions")) or 0
    status = (order.held_from if order.status is OrderStatus.ON_HOLD and order.held_from
              else order.status.value)
    return ExceptionFacts(
        event_type=event_type, event_code=code, failed_stage=stage,
        attempts=earlier + 1, delay_hours=delay_hours, order_status=status,
        order_total=order.total, channel=order.channel,
        customer_tier=customer.tier if customer else "standard",
        service_level=order.service_level,
        has_shipped_units=any(line.quantity_shipped for line in order.lines),
        occurred_at=now,
    )


def _record(uow: UnitOfWork, order: Order, version_id: int, outcome: str,
            decision: dict[str, Any], facts: ExceptionFacts, trace: Any,
            now: datetime) -> OrderDecision:
    return record_decision(uow, order, "exceptions", version_id, outcome, plain(decision),
                           plain(asdict(facts)), trace, now)
