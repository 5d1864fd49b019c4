"""The validation stage: the order's facts, the rules' verdict, accept, hold or reject."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, case, func, select

from engine.actors import Actor
from engine.decisions.escalation import handle_rule_error
from engine.decisions.recording import decision_for, record_decisions
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


def validation_facts(uow: UnitOfWork, order: Order) -> OrderFacts:
    """Compute everything validation rules may ask about an order as at its capture: only
    the customer's orders before it count (dry runs and simulations of recorded orders)."""
    count, open_total = _histories(uow, [order.customer_id],
                                   Order.id < order.id)[order.customer_id]
    return facts_of(order, _customer(uow, order), count, open_total)


def _histories(uow: UnitOfWork, customer_ids: Sequence[str],
               others: ColumnElement[bool]) -> dict[str, tuple[int, Decimal]]:
    """Per customer: how many of their `others` orders make them a returning customer, and
    the total of those still open (counting against credit). One query for them all."""
    counted = Order.status.not_in(NOT_COUNTED)
    still_open = Order.status.in_(OPEN_STATUSES)
    found = {customer_id: (count, Decimal(total)) for customer_id, count, total in
             uow.session.execute(
                 select(Order.customer_id, func.count(case((counted, Order.id))),
                        func.coalesce(func.sum(case((still_open, Order.total))), 0))
                 .where(Order.customer_id.in_(sorted(set(customer_ids))), others)
                 .group_by(Order.customer_id))}
    return {customer_id: found.get(customer_id, (0, Decimal(0)))
            for customer_id in customer_ids}


def _customer(uow: UnitOfWork, order: Order) -> Customer:
    customer = uow.session.get(Customer, order.customer_id)  # in the session after capture
    if customer is None:  # the foreign key makes this impossible; say so if it happens
        raise LookupError(f"order {order.id} has no customer {order.customer_id}")
    return customer


def facts_of(order: Order, customer: Customer, earlier_count: int,
             open_total: Decimal) -> OrderFacts:
    """The order's validation facts, given what its customer's other orders add up to."""
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
        credit_remaining=money(limit - open_total if limit is not None else 0),
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
    """Validate one order: `validate_orders` with a batch of one."""
    return validate_orders(uow, actor, [order], waived)[0]


def validate_orders(uow: UnitOfWork, actor: Actor, orders: Sequence[Order],
                    waived: frozenset[str] = frozenset()) -> list[OrderDecision]:
    """Run the published validation rules over the orders, one after the other in the given
    order, and move each on: validated, held or rejected.

    Credit is spent in that order: each order sees the customer's other open orders,
    committed or earlier in the batch (not later ones). The customers' rows are locked
    first, in key order, until the transaction ends, so that two batches (or two single
    orders) of one customer are validated one after the other and never both spend the
    same credit. A constant number of statements per batch: the lock, the customers'
    totals, and the decisions written together.

    A rule that fails while running does not crash the capture: the order goes on hold in
    the rule-error queue with the failure as its reason. Holds from `waived` rules (released
    by a person) are recorded in the trace but do not hold the order again.
    """
    if not orders:
        return []
    version = deciding_version(uow, "validation")
    rule_set = compiled(version) if version is not None else None
    customer_ids = sorted({order.customer_id for order in orders})
    # NO KEY UPDATE: compatible with the KEY SHARE lock that inserting an order (a foreign
    # key to the customer) already took, so two orders of one customer queue here instead
    # of deadlocking. A statement of its own, so that the sums below, read after the wait,
    # see what the orders ahead committed.
    uow.session.execute(select(Customer.id).where(Customer.id.in_(customer_ids))
                        .order_by(Customer.id).with_for_update(key_share=True))
    histories = _histories(uow, customer_ids,
                           Order.id.not_in(sorted(order.id for order in orders)))
    now = utcnow()
    decided: list[tuple[Order, Verdict, OrderDecision]] = []
    for order in orders:
        count, open_total = histories[order.customer_id]
        facts = facts_of(order, _customer(uow, order), count, open_total)
        if rule_set is None:
            verdict = Verdict("validated", {"note": "no validation rules are published"},
                              [], [])
        else:
            verdict = decide_validation(rule_set, facts, now, waived)
        if verdict.outcome != "rejected":  # it counts for the customer's next orders
            histories[order.customer_id] = (count + 1, open_total + order.total)
        decided.append((order, verdict, decision_for(
            order, "validation", version, verdict.outcome, verdict.decision,
            plain(asdict(facts)), verdict.trace, now)))
    record_decisions(uow, [recorded for _, _, recorded in decided])
    for order, verdict, recorded in decided:
        _apply(uow, actor, order, verdict.outcome, verdict.findings, version, recorded.id)
        if verdict.error is not None:
            handle_rule_error(uow, actor, order, "validation", verdict.error)
    return [recorded for _, _, recorded in decided]


@dataclass(frozen=True)
class Verdict:
    outcome: str  # validated, on_hold or rejected
    decision: dict[str, Any]
    trace: Any  # as stored (`Evaluation.stored_trace`; in full when a rule failed)
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
        return Verdict("rejected", decision, evaluation.stored_trace,
                       [(f.code, f.message, f.rule) for f in result.rejections])
    held = [(f.code, f.message, f.rule) for f in result.holds if f.rule not in waived]
    if waived:
        decision["waived_rules"] = sorted(waived)
    return Verdict("on_hold" if held else "validated", decision, evaluation.stored_trace,
                   held)


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
