"""The order's way through the rule stages: build the facts, decide, apply, explain.

Validation runs on capture; sourcing, carrier selection and exceptions join here as they
are built. Each evaluation is stored with the version that decided it and its full trace.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from engine import holds, visibility
from engine.actors import CHANNEL, Actor
from engine.carriers import Choice, choose_carriers, plan_carriers
from engine.decisions import record_decision
from engine.errors import HoldResolvedError, NotFoundError, OmsError, StageNotRunnableError
from engine.exceptions import handle_rule_error
from engine.fulfilment import request_release, resume_held_work
from engine.inventory import WAITING_STATUSES
from engine.iso import minor_units
from engine.job_names import SIMULATION_JOB
from engine.models import (
    OPEN_GROUP_STATUSES,
    Customer,
    FulfilmentGroup,
    FulfilmentLine,
    Hold,
    Order,
    OrderDecision,
    RuleSetVersion,
    Simulation,
    utcnow,
)
from engine.orders import OrderDraft, capture_order, get_order
from engine.ports import UnitOfWork
from engine.rulesets import (
    check_document,
    compiled,
    deciding_version,
    get_version,
    published_version,
    stage_named,
)
from engine.sourcing import plan_sourcing, source_order, unsourced_units
from engine.status import OrderStatus
from engine.timeline import record_event
from engine.transitions import move
from rules.evaluation import CompiledRuleSet, RuleEvaluationError, compile_rule_set, evaluate
from rules.stage import plain
from rules.stages.validation import VALIDATION, OrderFacts, ValidationDecision
from rules.testing import facts_for

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


def receive_order(uow: UnitOfWork, actor: Actor, draft: OrderDraft) -> Order:
    """Capture an order and take it through the stages that run on capture."""
    order = capture_order(uow, actor, draft)
    advance(uow, actor, order)
    return order


def advance(uow: UnitOfWork, actor: Actor, order: Order,
            waived: frozenset[str] = frozenset(), resumed: bool = False) -> Order:
    """Take the order through every stage it is ready for: validation, sourcing, carrier.

    `waived`: rules whose holds a person released; they do not hold the order again.
    `resumed`: the order comes back from a hold, so units it was waiting for (or that a
    hold kept from being sourced) are sourced again now.
    """
    if order.status is OrderStatus.RECEIVED:
        validate_order(uow, actor, order, waived)
    if order.status is OrderStatus.VALIDATED:
        source_order(uow, actor, order, waived)
    elif resumed and order.status in WAITING_STATUSES:
        unsourced, not_waiting = unsourced_units(order)
        if unsourced:
            source_order(uow, actor, order, waived, for_backorder=not not_waiting)
    if order.status in WAITING_STATUSES:
        choose_carriers(uow, actor, order)  # for the groups that have no carrier yet
        request_release(uow, order)
    return order


def fill_backorder(uow: UnitOfWork, actor: Actor, order_id: int, sku: str) -> bool:
    """Give a waiting order what stock there is, as the head of the SKU's queue, and choose
    carriers for what it received. Returns whether it received any; running it again when
    nothing arrived changes nothing.
    """
    order = uow.session.get(Order, order_id, with_for_update=True, populate_existing=True)
    if order is None or order.status not in WAITING_STATUSES:
        return False
    if source_order(uow, actor, order, holds.waived_rules(uow, order), for_backorder=True,
                    front_of=sku) is None:
        return False
    choose_carriers(uow, actor, order)
    request_release(uow, order)
    return True


def hold(uow: UnitOfWork, actor: Actor, order_id: int, reason: str) -> Order:
    """Put an order on hold for review, with the reason; releasing it returns it to where
    it was.

    Raises:
        InvalidTransitionError: the order may not be held (it is closed, or has shipped).
    """
    return holds.hold_order(uow, actor, get_order(uow, actor, order_id, lock=True), reason)


def resume_after_hold(uow: UnitOfWork, actor: Actor, order_id: int,
                      note: str | None) -> Order:
    """Release every hold of an order: back to the step it was held at, which runs again.

    The holds a person releases are waived when the step runs again: their rules do not
    hold the order a second time. Anything else (a rejection, a new hold) still applies.

    Raises:
        NotOnHoldError: the order is not on hold.
    """
    order = holds.release_hold(uow, actor, get_order(uow, actor, order_id, lock=True), note)
    resume_held_work(uow, order)
    return advance(uow, actor, order, holds.waived_rules(uow, order), resumed=True)


def release_one_hold(uow: UnitOfWork, actor: Actor, hold_id: int, note: str | None) -> Hold:
    """Release one reason an order waits; the order moves on once none is left.

    Raises:
        NotFoundError: no such hold (or not this actor's channel).
        HoldResolvedError: the hold is already resolved.
    """
    hold = uow.session.get(Hold, hold_id)
    # the order first (locked), then its holds afresh: two releases of its last two holds,
    # or a release racing a cancel, are decided one after the other
    order = get_order(uow, actor, hold.order_id, lock=True) if hold is not None else None
    if hold is not None:
        uow.session.refresh(hold)
    if hold is None or order is None:
        raise NotFoundError("hold", hold_id)
    if hold.resolved_at is not None:
        raise HoldResolvedError(hold.id, hold.resolution)
    others = [other for other in holds.open_holds(uow, order) if other.id != hold.id]
    if others:
        holds.resolve_hold(actor, hold, "released")
        record_event(uow, order, "hold.released", actor, hold=hold.id, queue=hold.queue,
                     note=note, still_open=[other.queue for other in others])
    else:
        resume_after_hold(uow, actor, order.id, note)
    return hold


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


def dry_run(uow: UnitOfWork, actor: Actor, stage: str, *, version: int | None = None,
            document: Any = None, order_id: int | None = None,
            draft: OrderDraft | None = None) -> dict[str, Any]:
    """Decide one order by a version (or an unsaved rule set) and change nothing.

    Everything happens inside a savepoint that is always rolled back, so even a posted
    order that is captured to compute its facts leaves no trace.
    """
    rule_set, number = _rule_set(uow, stage, version, document)
    savepoint = uow.session.begin_nested()
    try:
        if draft is not None:
            order = capture_order(uow, actor, replace(draft, channel_order_ref=None))
        else:
            order = get_order(uow, actor, order_id or 0)
        if stage == "sourcing":
            plan = plan_sourcing(uow, order, rule_set, utcnow(), lock=False, as_new=True)
            lines = {line.id: line for line in order.lines}
            result = {"outcome": plan.outcome, "decision": plan.decision(lines),
                      "facts": plain(plan.order_facts), "trace": plan.trace()}
        elif stage == "carrier":
            choices = plan_carriers(uow, order, shipments_of(uow, order), rule_set, utcnow())
            explained = [choice.explained() for choice in choices]
            result = {"outcome": _carrier_outcome(choices),
                      "decision": {"groups": [{k: v for k, v in e.items() if k != "options"}
                                              for e in explained]},
                      "facts": {"shipments": [plain(c.shipment_facts) for c in choices]},
                      "trace": explained}
        else:
            facts = validation_facts(uow, order)
            verdict = decide_validation(rule_set, facts, utcnow())
            result = {"outcome": verdict.outcome, "decision": verdict.decision,
                      "facts": plain(asdict(facts)), "trace": verdict.trace}
    finally:
        savepoint.rollback()
    return {"stage": stage, "version": number, **result}


SIMULATION_LIMIT = 2000  # answered in the request; more goes to a job
JOB_SIMULATION_LIMIT = 50_000
EXAMPLES = 10


Window = tuple[datetime | None, datetime | None]  # orders received from, before


def simulate(uow: UnitOfWork, actor: Actor, stage: str, *, version: int | None = None,
             document: Any = None, last: int = 1000, window: Window = (None, None),
             limit: int = SIMULATION_LIMIT) -> dict[str, Any]:
    """Compare a candidate rule set with the published one over the latest orders (of a
    time window, when one is given).

    Each order is decided twice, once by each rule set, and nothing is written.
    Validation uses the facts recorded at the order's capture (or, for orders captured
    before facts were recorded, as they are now), at the time of its capture. Sourcing
    sources each order afresh against today's stock. Returns how many decisions change, by
    change of outcome (and, for sourcing, of locations and estimated shipping cost), with
    examples.
    """
    candidate, number = _rule_set(uow, stage, version, document)
    current = published_version(uow, stage)
    if current is None:
        raise NotFoundError(f"published {stage} rule set", "")
    baseline = compiled(current)
    statement = select(Order).order_by(Order.id.desc()).limit(min(last, limit))
    statement = statement.where(visibility.orders(actor))
    since, until = window
    if since is not None:
        statement = statement.where(Order.created_at >= since)
    if until is not None:
        statement = statement.where(Order.created_at < until)
    orders = list(uow.session.scalars(statement))
    compare: _ValidationComparison | _SourcingComparison | _CarrierComparison
    if stage == "sourcing":
        compare = _SourcingComparison(uow)
    elif stage == "carrier":
        compare = _CarrierComparison(uow)
    else:
        compare = _ValidationComparison(uow, [order.id for order in orders])
    changes: dict[str, int] = {}
    examples: list[dict[str, Any]] = []
    for order in orders:
        before, after = compare.decide(order, baseline), compare.decide(order, candidate)
        if before == after:
            continue
        key = f"{before.outcome}->{after.outcome}"
        changes[key] = changes.get(key, 0) + 1
        compare.count(before, after)
        if len(examples) < EXAMPLES:
            examples.append({"order_id": order.id, "before": before.outcome,
                             "after": after.outcome, "before_reasons": list(before.reasons),
                             "after_reasons": list(after.reasons)})
    return {"stage": stage, "baseline_version": current.version, "candidate_version": number,
            "window": {"from": since.isoformat() if since else None,
                       "to": until.isoformat() if until else None},
            "orders": len(orders), "changed": sum(changes.values()),
            "by_change": dict(sorted(changes.items())), **compare.breakdown(),
            "examples": examples}


@dataclass(frozen=True)
class _Outcome:
    """What a simulation compares: the outcome and what explains it."""

    outcome: str
    reasons: tuple[str, ...]  # validation: hold and rejection codes; sourcing: locations
    cost: Decimal = Decimal(0)


class _ValidationComparison:
    """Decide with the facts each order's capture recorded, at the time of its capture."""

    def __init__(self, uow: UnitOfWork, order_ids: list[int]) -> None:
        self.uow = uow
        self.recorded = _first_facts(uow, order_ids)

    def decide(self, order: Order, rule_set: CompiledRuleSet) -> _Outcome:
        facts = (facts_for(VALIDATION, self.recorded[order.id]) if order.id in self.recorded
                 else validation_facts(self.uow, order))
        verdict = decide_validation(rule_set, facts, order.created_at)
        return _Outcome(verdict.outcome, tuple(_codes(verdict)))

    def count(self, before: _Outcome, after: _Outcome) -> None:
        pass

    def breakdown(self) -> dict[str, Any]:
        return {}


def shipments_of(uow: UnitOfWork, order: Order) -> list[FulfilmentGroup]:
    """Return what the order ships as: its live groups, or, for an order not sourced yet
    (a posted one in a dry run), the groups the published sourcing rules would make now
    (never stored)."""
    live = list(uow.session.scalars(select(FulfilmentGroup).where(
        FulfilmentGroup.order_id == order.id,
        FulfilmentGroup.status.in_(OPEN_GROUP_STATUSES))
        .order_by(FulfilmentGroup.id)))
    if live:
        return live
    version = published_version(uow, "sourcing")
    plan = plan_sourcing(uow, order, compiled(version) if version else None, utcnow(),
                         lock=False, as_new=True)
    lines = {line.id: line for line in order.lines}
    return [FulfilmentGroup(order_id=order.id, location_code=code, status="planned",
                            lines=[FulfilmentLine(order_line_id=line_id, sku=lines[line_id].sku,
                                                  quantity=units)
                                   for line_id, units in units_by_line.items()])
            for code, units_by_line in plan.groups.items()]


def _carrier_outcome(choices: list[Choice]) -> str:
    if not choices:
        return "nothing_to_ship"
    return "on_hold" if any(choice.chosen is None for choice in choices) else "selected"


class _CarrierComparison:
    """Choose again for each order's live shipments, at the time of its capture."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.carriers: dict[str, int] = {}
        self.cost_before = self.cost_after = Decimal(0)

    def decide(self, order: Order, rule_set: CompiledRuleSet) -> _Outcome:
        groups = list(self.uow.session.scalars(select(FulfilmentGroup).where(
            FulfilmentGroup.order_id == order.id,
        FulfilmentGroup.status.in_(OPEN_GROUP_STATUSES))
            .order_by(FulfilmentGroup.id)))
        choices = plan_carriers(self.uow, order, groups, rule_set, order.created_at)
        chosen = tuple(f"{c.group.location_code}:{c.chosen.label}" if c.chosen
                       else f"{c.group.location_code}:none" for c in choices)
        cost = sum((c.chosen.quote.cost for c in choices if c.chosen), Decimal(0))
        return _Outcome(_carrier_outcome(choices), chosen, cost)

    def count(self, before: _Outcome, after: _Outcome) -> None:
        for old, new in zip(before.reasons, after.reasons, strict=True):
            if old != new:
                move = f"{old.split(':', 1)[1]}->{new.split(':', 1)[1]}"
                self.carriers[move] = self.carriers.get(move, 0) + 1
        self.cost_before += before.cost
        self.cost_after += after.cost

    def breakdown(self) -> dict[str, Any]:
        top = sorted(self.carriers.items(), key=lambda item: (-item[1], item[0]))[:20]
        return {"by_carrier": dict(top),
                "shipping_cost": {"before": str(self.cost_before),
                                  "after": str(self.cost_after),
                                  "change": str(self.cost_after - self.cost_before)}}


class _SourcingComparison:
    """Source each order afresh against today's stock, reserving nothing."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.locations: dict[str, int] = {}
        self.cost_before = self.cost_after = Decimal(0)

    def decide(self, order: Order, rule_set: CompiledRuleSet) -> _Outcome:
        plan = plan_sourcing(self.uow, order, rule_set, order.created_at, lock=False,
                             as_new=True)
        return _Outcome(plan.outcome, tuple(plan.groups), plan.estimated_cost)

    def count(self, before: _Outcome, after: _Outcome) -> None:
        if before.reasons != after.reasons:
            move = f"{'+'.join(before.reasons) or 'none'}->{'+'.join(after.reasons) or 'none'}"
            self.locations[move] = self.locations.get(move, 0) + 1
        self.cost_before += before.cost
        self.cost_after += after.cost

    def breakdown(self) -> dict[str, Any]:
        top = sorted(self.locations.items(), key=lambda item: (-item[1], item[0]))[:20]
        return {"by_location": dict(top),
                "estimated_shipping_cost": {"before": str(self.cost_before),
                                            "after": str(self.cost_after),
                                            "change": str(self.cost_after - self.cost_before)}}


def request_simulation(uow: UnitOfWork, actor: Actor, stage: str, *,
                       version: int | None = None, document: Any = None,
                       last: int, window: Window = (None, None)) -> Simulation:
    """Queue a simulation over up to 50,000 orders; a job runs it after this commit."""
    _rule_set(uow, stage, version, document)  # refuse a bad candidate now, not in the job
    simulation = Simulation(stage=stage, candidate_version=version,
                            candidate_document=document, last=min(last, JOB_SIMULATION_LIMIT),
                            created_from=window[0], created_to=window[1],
                            channel=actor.channel, state="queued",
                            requested_by=actor.label, created_at=utcnow())
    uow.session.add(simulation)
    uow.session.flush()
    uow.enqueue_after_commit(SIMULATION_JOB, simulation.id)
    return simulation


def run_simulation(uow: UnitOfWork, simulation_id: int) -> Simulation | None:
    """Run a queued simulation and keep its result; running it again changes nothing."""
    simulation = uow.session.get(Simulation, simulation_id, with_for_update=True)
    if simulation is None or simulation.state != "queued":
        return simulation
    requester = Actor(type="system", id="simulation",
                      role=CHANNEL if simulation.channel else "analyst",
                      channel=simulation.channel)
    try:
        simulation.result = simulate(
            uow, requester, simulation.stage, version=simulation.candidate_version,
            document=simulation.candidate_document, last=simulation.last,
            window=(simulation.created_from, simulation.created_to), limit=JOB_SIMULATION_LIMIT)
        simulation.state = "done"
    except OmsError as error:  # the candidate or the published set changed meanwhile
        simulation.state, simulation.error = "failed", error.detail[:1000]
    simulation.finished_at = utcnow()
    return simulation


def get_simulation(uow: UnitOfWork, actor: Actor, stage: str, simulation_id: int) -> Simulation:
    """Return a simulation of this stage that the actor may see."""
    simulation = uow.session.scalar(select(Simulation).where(
        Simulation.id == simulation_id, visibility.simulations(actor)))
    if simulation is None or simulation.stage != stage:
        raise NotFoundError("simulation", simulation_id)
    return simulation


def _first_facts(uow: UnitOfWork, order_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Return, per order, the facts its first validation decision recorded."""
    first = (select(func.min(OrderDecision.id))
             .where(OrderDecision.order_id.in_(order_ids), OrderDecision.stage == "validation")
             .group_by(OrderDecision.order_id))
    return {decision.order_id: decision.facts for decision in uow.session.scalars(
        select(OrderDecision).where(OrderDecision.id.in_(first)))}


def _codes(verdict: Verdict) -> list[str]:
    return sorted(f"{code}:{rule}" for code, _, rule in verdict.findings)


# The stages whose facts the pipeline can build for an order today.
RUNNABLE_STAGES = frozenset({"validation", "sourcing", "carrier"})


def _rule_set(uow: UnitOfWork, stage: str, version: int | None,
              document: Any) -> tuple[CompiledRuleSet, int | None]:
    """Return the rule set a dry run or simulation uses: a document, a version, or published."""
    stage_named(stage)
    if stage not in RUNNABLE_STAGES:
        raise StageNotRunnableError(
            f"the {stage} stage decides events that happen to an order, not the order "
            "itself, so it cannot be dry-run on one; its test cases (events and the "
            "expected resolution) run with GET /rules/{stage}/versions/{n}/tests")
    if document is not None:
        check_document(stage, document)
        return compile_rule_set(stage_named(stage), document), None
    chosen = (get_version(uow, stage, version) if version is not None
              else published_version(uow, stage))
    if chosen is None:
        raise NotFoundError(f"published {stage} rule set", "")
    return compiled(chosen), chosen.version


def order_decisions(uow: UnitOfWork, actor: Actor, order_id: int) -> list[OrderDecision]:
    """Return the order's decisions, oldest first, each with the version that made it."""
    order = get_order(uow, actor, order_id)
    return list(uow.session.scalars(select(OrderDecision).where(
        OrderDecision.order_id == order.id).order_by(OrderDecision.id)))


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
