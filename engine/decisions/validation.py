"""The validation stage: the order's facts, the rules' verdict, accept, hold or reject."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from engine.actors import Actor
from engine.decisions.escalation import handle_rule_error
from engine.decisions.recording import record_decision
from engine.decisions.rulesets import (
    compiled,
    deciding_version,
)
from engine.iso import minor_units
from engine.orders import holds
from engine.orders.transitions import move
from engine.ports import UnitOfWork
from engine.record import (
    Customer,
    Order,
    OrderDecision,
    RuleSetVersion,
    utcnow,
)
from engine.status import OrderStatus
from rules.evaluation import CompiledRuleSet, RuleEvaluationError, evaluate
from rules.stage import plain
from rules.stages.validation import OrderFacts, ValidationDecision

# Orders that still count against a customer's credit.
OPEN_STATUSES = tuple(status.value for status in (
    OrderStatus.RECEIVED, OrderStatus.VALIDATED, OrderStatus.ALLOCATED, OrderStatus.BACKORDERED,
    OrderStatus.RELEASED, OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED,
    OrderStatus.ON_HOLD))


# Orders that do not make a customer a returning one.
NOT_COUNTED = (OrderStatus.REJECTED.value, OrderStatus.CANCELLED.value)


def validation_facts(uow: UnitOfWork, order: Order, lock: bool = False) -> OrderFacts:
    """Compute, once, everything validation rules may ask about the order.

    With `lock` (a live capture), the customer's row is locked first, until the transaction
    ends, and every other order of the customer counts: two orders of one customer are
    validated one after the other and cannot both spend the same credit. Without it (a dry
    run of an old order) only the orders before it count, as at its capture.
    """
    if lock:
        # NO KEY UPDATE: compatible with the KEY SHARE lock that inserting the order (a
        # foreign key to the customer) already took, so two orders of one customer queue
        # here instead of deadlocking. A statement of its own, so that the sums below,
        # read after the wait, see what the order ahead committed.
        uow.session.execute(select(Customer.id).where(Customer.id == order.customer_id)
                            .with_for_update(key_share=True))
    others = (Order.customer_id == order.customer_id,
              Order.id != order.id if lock else Order.id < order.id)
    earlier_count = (select(func.count(Order.id))
                     .where(*others, Order.status.not_in(NOT_COUNTED)).scalar_subquery())
    open_total = (select(func.coalesce(func.sum(Order.total), 0))
                  .where(*others, Order.status.in_(OPEN_STATUSES)).scalar_subquery())
    found = uow.session.execute(
        select(Customer, earlier_count, open_total).where(Customer.id == order.customer_id)
    ).one_or_none()
    if found is None:  # the foreign key makes this impossible; say so if it happens
        raise LookupError(f"order {order.id} has no customer {order.customer_id}")
    customer, earlier_count, open_total = found
    products = {line.sku: line.product for line in order.lines}
    ratios = [line.unit_price / products[line.sku].value for line in order.lines
              if products[line.sku].value and products[line.sku].currency == order.currency]
    limit = customer.credit_limit
    cent = Decimal(1).scaleb(-minor_units(order.currency))

    def money(amount: Decimal | int) -> Decimal:
        return Decimal(amount).quantize(cent)
    return OrderFacts(
        channel=order.channel,
        customer_id=customer.id,
        customer_tier=customer.tier,
        customer_is_new=earlier_count == 0,
        customer_previous_orders=earlier_count,
        has_credit_limit=limit is not None,
        credit_remaining=money(limit - Decimal(open_total) if limit is not None else 0),
        payment_terms=order.payment_terms,
        currency=order.currency,
        order_total=money(order.total),
        line_count=len(order.lines),
        total_quantity=sum(line.quantity_ordered for line in order.lines),
        highest_line_total=money(max(line.line_total for line in order.lines)),
        lowest_price_ratio=min(ratios, default=Decimal(1)).quantize(Decimal("0.0001")),
        total_weight_kg=Decimal(sum(products[line.sku].weight_g * line.quantity_ordered
                                    for line in order.lines)) / 1000,
        contains_hazmat=any(product.hazmat for product in products.values()),
        skus=sorted(products),
        categories=sorted({p.category for p in products.values() if p.category}),
        service_level=order.service_level,
        ship_to_country=order.ship_to_country,
        ship_to_region=order.ship_to_region or "",
        ship_to_postal_code=order.ship_to_postal_code or "",
        has_postal_code=bool(order.ship_to_postal_code),
        created_at=order.created_at,
    )


def validate_order(uow: UnitOfWork, actor: Actor, order: Order,
                   waived: frozenset[str] = frozenset()) -> OrderDecision:
    """Run the published validation rules and move the order on: validated, held or rejected.

    A rule that fails while running does not crash the capture: the order goes on hold in
    the rule-error queue with the failure as its reason. Holds from `waived` rules (released
    by a person) are recorded in the trace but do not hold the order again.
    """
    version = deciding_version(uow, "validation")
    facts = validation_facts(uow, order, lock=True)
    now = utcnow()
    if version is None:
        verdict = Verdict("validated", {"note": "no validation rules are published"}, [], [])
    else:
        verdict = decide_validation(compiled(version), facts, now, waived)
    outcome, decision, trace, findings = (verdict.outcome, verdict.decision, verdict.trace,
                                          verdict.findings)
    recorded = record_decision(uow, order, "validation", version, outcome, decision,
                               plain(asdict(facts)), trace, now)
    _apply(uow, actor, order, outcome, findings, version, recorded.id)
    if verdict.error is not None:
        handle_rule_error(uow, actor, order, "validation", verdict.error)
    return recorded


@dataclass(frozen=True)
class Verdict:
    outcome: str  # validated, on_hold or rejected
    decision: dict[str, Any]
    trace: list[dict[str, Any]]
    findings: list[tuple[str, str, str | None]]  # (code or queue, message, rule)
    error: RuleEvaluationError | None = None  # a rule failed: the exceptions rules follow


def decide_validation(rule_set: CompiledRuleSet, facts: OrderFacts, now: datetime,
                      waived: frozenset[str] = frozenset()) -> Verdict:
    """Evaluate validation rules and say what they mean for the order."""
    try:
        evaluation = evaluate(rule_set, facts, at=now)
    except RuleEvaluationError as error:
        return Verdict("on_hold", {"error": str(error)}, error.trace,
                       [(holds.RULE_ERROR_QUEUE, str(error), error.rule)], error)
    result = evaluation.decision
    if not isinstance(result, ValidationDecision):
        raise TypeError(f"{rule_set.stage.name} rules do not decide validation")
    decision = result.to_dict()
    if result.outcome == "rejected":
        return Verdict("rejected", decision, evaluation.trace,
                       [(f.code, f.message, f.rule) for f in result.rejections])
    held = [(f.code, f.message, f.rule) for f in result.holds if f.rule not in waived]
    if waived:
        decision["waived_rules"] = sorted(waived)
    return Verdict("on_hold" if held else "validated", decision, evaluation.trace, held)


def verdict_codes(verdict: Verdict) -> list[str]:
    return sorted(f"{code}:{rule}" for code, _, rule in verdict.findings)


def _apply(uow: UnitOfWork, actor: Actor, order: Order, outcome: str,
           findings: list[tuple[str, str, str | None]], version: RuleSetVersion | None,
           decision_id: int) -> None:
    """Move the order as the validation decision says; one timeline event tells why."""
    about = {"version": version.version if version else None,
             "decision_id": decision_id}
    if outcome == "on_hold":
        holds.put_on_hold(uow, actor, order, "validation",
                          [holds.HoldReason(queue, reason, rule)
                           for queue, reason, rule in findings], version, **about)
        return
    target = {"validated": OrderStatus.VALIDATED, "rejected": OrderStatus.REJECTED}[outcome]
    reasons = [{"code": code, "message": message, "rule": rule}
               for code, message, rule in findings]
    move(uow, actor, order, target, f"order.{outcome}", reasons=reasons, stage="validation",
         **about)
