"""Trying rules before they decide: a dry run on one order, a simulation over many."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from engine import visibility
from engine.actors import CHANNEL, Actor
from engine.decisions.carrier import Choice, plan_carriers
from engine.decisions.rulesets import (
    check_document,
    compiled,
    get_version,
    published_version,
    stage_named,
)
from engine.decisions.sourcing import plan_sourcing
from engine.decisions.validation import decide_validation, validation_facts, verdict_codes
from engine.errors import NotFoundError, OmsError, StageNotRunnableError
from engine.job_names import SIMULATION_JOB
from engine.orders.capture import OrderDraft, capture_order
from engine.orders.reading import get_order
from engine.ports import UnitOfWork
from engine.record import (
    OPEN_GROUP_STATUSES,
    FulfilmentGroup,
    FulfilmentLine,
    Order,
    OrderDecision,
    Simulation,
    utcnow,
)
from rules.evaluation import CompiledRuleSet, compile_rule_set, expand_traces
from rules.stage import plain
from rules.stages.validation import VALIDATION
from rules.testing import facts_for


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
    result["trace"] = expand_traces(rule_set, result["trace"])
    return {"stage": stage, "version": number, **result}


SIMULATION_LIMIT = 2000  # answered in the request; more goes to a job


JOB_SIMULATION_LIMIT = 50_000


EXAMPLES = 10


Window = tuple[datetime | None, datetime | None]  # orders received from, before


def simulate(uow: UnitOfWork, actor: Actor, stage: str, *, version: int | None = None,
             document: Any = None, last: int = 1000, window: Window = (None, None),
             limit: int = SIMULATION_LIMIT, examples: int = EXAMPLES) -> dict[str, Any]:
    """Compare a candidate rule set with the published one over the latest orders (of a
    time window, when one is given).

    Each order is decided twice, once by each rule set, and nothing is written.
    Validation uses the facts recorded at the order's capture (or, for orders captured
    before facts were recorded, as they are now), at the time of its capture. Sourcing
    sources each order afresh against today's stock. Returns how many decisions change, by
    change of outcome (and, for sourcing, of locations and estimated shipping cost), with up to
    `examples` of the orders that change.
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
    changed: list[dict[str, Any]] = []
    for order in orders:
        before, after = compare.decide(order, baseline), compare.decide(order, candidate)
        if before == after:
            continue
        key = f"{before.outcome}->{after.outcome}"
        changes[key] = changes.get(key, 0) + 1
        compare.count(before, after)
        if len(changed) < examples:
            changed.append({"order_id": order.id, "before": before.outcome,
                             "after": after.outcome, "before_reasons": list(before.reasons),
                             "after_reasons": list(after.reasons)})
    return {"stage": stage, "baseline_version": current.version, "candidate_version": number,
            "window": {"from": since.isoformat() if since else None,
                       "to": until.isoformat() if until else None},
            "orders": len(orders), "changed": sum(changes.values()),
            "by_change": dict(sorted(changes.items())), **compare.breakdown(),
            "examples": changed}


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
        return _Outcome(verdict.outcome, tuple(verdict_codes(verdict)))

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
