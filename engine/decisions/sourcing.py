"""Sourcing: which locations ship an order, as the sourcing rules rank them, reserved at once.

For each order: lock the stock of its SKUs (key order), build one candidate per location
that has some of it, evaluate the sourcing rules per candidate, rank what is left, then
allocate: the whole order from the best location that can ship it complete, else split
greedily by rank up to the allowed number of locations. Each location's share becomes a
fulfilment group whose units are reserved in the same transaction. What cannot be filled
is backordered (or held where the rules say). Stock that arrives goes to waiting
backorders first: new orders do not see units that backorders are waiting for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select

from engine.actors import Actor
from engine.catalog.geo import (
    Point,
    destination_of,
    distance_km,
    prefetch_destinations,
    shipping_cost,
)
from engine.decisions.escalation import handle_rule_error
from engine.decisions.recording import decision_for, record_decisions
from engine.decisions.rulesets import compiled, deciding_version
from engine.inventory.stock import WAITING_STATUSES, lock_levels, move, waiting_backorders
from engine.orders import transitions
from engine.orders.holds import RULE_ERROR_QUEUE, HoldReason, put_on_hold
from engine.orders.reading import get_order
from engine.orders.timeline import record_event
from engine.ports import UnitOfWork
from engine.record import (
    Customer,
    FulfilmentGroup,
    FulfilmentLine,
    Location,
    Order,
    OrderDecision,
    OrderLine,
    RuleSetVersion,
    StockLevel,
    utcnow,
)
from engine.status import GroupStatus, OrderStatus
from rules.evaluation import CompiledRuleSet, RuleEvaluationError, evaluate_each
from rules.stage import plain
from rules.stages.sourcing import NO_LOCATION, STRATEGIES, CandidateFacts, SourcingDecision
from rules.vocabulary import CUSTOMER_TIERS, ON_ACCOUNT

DEFAULT_STRATEGY = "nearest"
TIER_PRIORITY = {tier: rank for rank, tier in enumerate(CUSTOMER_TIERS, start=1)}
ORDER_FIELDS = ("channel", "customer_tier", "is_business_order", "payment_terms", "order_total",
                "line_count", "total_quantity", "total_weight_kg", "contains_hazmat",
                "categories", "service_level", "ship_to_country", "ship_to_region",
                "created_at", "candidate_count")
CANDIDATE_FIELDS = tuple(f.name for f in fields(CandidateFacts) if f.name not in ORDER_FIELDS)


@dataclass
class Candidate:
    location: Location
    available: dict[str, int]  # SKU -> units this order may take there
    facts: CandidateFacts
    decision: SourcingDecision = field(default_factory=SourcingDecision)
    trace: Any = None  # as stored (`Evaluation.stored_trace`)
    rank: int | None = None
    result: str = "lost"
    why: str = ""

    @property
    def code(self) -> str:
        return self.location.code


@dataclass
class Plan:
    """What sourcing decided for an order, before anything is reserved."""

    needs: dict[int, int]  # order line id -> units to source
    candidates: list[Candidate]
    order_facts: dict[str, Any]
    groups: dict[str, dict[int, int]] = field(default_factory=dict)  # location -> line -> units
    costs: dict[str, Decimal] = field(default_factory=dict)  # location -> estimated shipping
    remainder: dict[int, int] = field(default_factory=dict)
    ship_complete: bool = False
    max_splits: int | None = None
    prefer: str = DEFAULT_STRATEGY
    partial_shipment: bool = False
    hold: tuple[str, str, str | None] | None = None  # (queue, reason, rule)
    error: RuleEvaluationError | None = None
    held_back: dict[str, int] = field(default_factory=dict)  # location -> units kept back
    locations: dict[str, Location] = field(default_factory=dict)  # the candidates'
    levels: dict[tuple[str, str], StockLevel] = field(default_factory=dict)  # as locked
    shipping_from: frozenset[str] = frozenset()  # locations already shipping for the order

    @property
    def estimated_cost(self) -> Decimal:
        return sum(self.costs.values(), Decimal(0))

    @property
    def outcome(self) -> str:
        if self.error is not None or (self.hold is not None and self.remainder):
            return "on_hold"
        if not self.remainder:
            return "allocated"
        return "partially_allocated" if self.groups else "backordered"

    def decision(self, lines: Mapping[int, OrderLine]) -> dict[str, Any]:
        def described(units: Mapping[int, int]) -> list[dict[str, Any]]:
            return [{"line_no": lines[line_id].line_no, "sku": lines[line_id].sku,
                     "quantity": quantity} for line_id, quantity in sorted(units.items())]
        if self.error is not None:
            return {"error": str(self.error)}
        return {"groups": [{"location": code, "lines": described(units),
                            "estimated_shipping_cost": str(self.costs.get(code, 0))}
                           for code, units in self.groups.items()],
                "remainder": described(self.remainder),
                "remainder_to": (self.hold[0] if self.hold and self.remainder
                                 else "backorder" if self.remainder else None),
                "policy": {"ship_complete": self.ship_complete,
                           "max_splits": self.max_splits, "prefer": self.prefer,
                           "partial_shipment": self.partial_shipment}}

    def trace(self) -> list[dict[str, Any]]:
        considered = [{"location": c.code, "result": c.result, "why": c.why, "rank": c.rank,
                       "score": str(c.decision.score),
                       "excluded_because": [e.reason for e in c.decision.effects
                                            if e.kind == "exclude"],
                       "facts": {name: plain(getattr(c.facts, name))
                                 for name in CANDIDATE_FIELDS},
                       "rules": c.trace}
                      for c in self.candidates]
        kept = [{"location": code, "result": "lost", "rank": None,
                 "why": f"its {units} available unit(s) are kept for orders waiting for them"}
                for code, units in sorted(self.held_back.items())
                if code not in {c.code for c in self.candidates}]
        return considered + kept


def source_order(uow: UnitOfWork, actor: Actor, order: Order,
                 waived: frozenset[str] = frozenset(), for_backorder: bool = False,
                 front_of: str | None = None,
                 excluded: frozenset[str] = frozenset()) -> OrderDecision | None:
    """Decide where one order ships from, reserve it, and move it on: `source_orders` with
    a batch of one.

    `for_backorder`: fill what the order waits for; nothing is written when no unit can be
    allocated. `front_of`: the SKU whose waiting queue this order heads (the backorder job),
    so units of it are not kept back from it. `excluded`: locations not to source from (the
    one that just came up short). Returns the recorded decision (None when nothing moved).
    """
    return source_orders(uow, actor, [order], waived, for_backorder, front_of, excluded)[0]


@dataclass
class Supply:
    """What a batch's orders are sourced from, read once for the batch: every level of their
    SKUs (locked), the units orders already waiting are owed, and each location's groups
    today. Sourcing an order of the batch updates it for the next one."""

    stock: list[tuple[StockLevel, Location]]
    owed: dict[str, int]  # SKU -> units waiting orders (outside the batch, then in it) need
    orders_today: dict[str, int]  # location -> groups created today
    _by_sku: dict[str, list[tuple[StockLevel, Location]]] | None = None

    def of(self, skus: set[str]) -> list[tuple[StockLevel, Location]]:
        """The levels of these SKUs, in key order (as locked)."""
        if self._by_sku is None:
            self._by_sku = {}
            for level, location in self.stock:
                self._by_sku.setdefault(level.sku, []).append((level, location))
        return [found for sku in sorted(skus) for found in self._by_sku.get(sku, ())]

    def after(self, plan: Plan, order: Order) -> None:
        """Count what the order took: its groups today, and the units it now waits for."""
        for code in plan.groups:
            self.orders_today[code] = self.orders_today.get(code, 0) + 1
        for line in order.lines:
            if line.quantity_backordered:
                self.owed[line.sku] = self.owed.get(line.sku, 0) + line.quantity_backordered


def read_supply(uow: UnitOfWork, orders: Sequence[Order], now: datetime, lock: bool = True,
                excluding_order: int | None = None) -> Supply:
    """Read (and with `lock`, lock in key order) what the orders' SKUs can be sourced from:
    a constant number of statements, whatever the number of orders."""
    skus = {line.sku for order in orders for line in order.lines}
    stock = _stock(uow, skus, lock)
    owed = waiting_backorders(uow, skus, excluding_order=excluding_order) if skus else {}
    capped = sorted({location.code for _, location in stock if location.daily_capacity})
    return Supply(stock, owed, _orders_today(uow, capped, now))


def source_orders(uow: UnitOfWork, actor: Actor, orders: Sequence[Order],
                  waived: frozenset[str] = frozenset(), for_backorder: bool = False,
                  front_of: str | None = None, excluded: frozenset[str] = frozenset(),
                  ) -> list[OrderDecision | None]:
    """Decide where each order ships from, reserve it, and move it on, one after the other
    in the given order: an order sees the stock the ones before it left.

    The batch's stock is locked and read once (key order), its destinations and today's
    load per location too; the decisions are written together. An order already on its
    way (released, partially shipped: units re-sourced after a short pick) keeps its
    status; its new groups join it.
    """
    if not orders:
        return []
    version = deciding_version(uow, "sourcing")
    now = utcnow()
    rule_set = compiled(version) if version is not None else None
    supply = read_supply(uow, orders, now, excluding_order=orders[0].id
                         if len(orders) == 1 else None)
    prefetch_destinations(uow, orders)
    planned: list[tuple[Order, Plan, dict[int, OrderLine], OrderDecision]] = []
    results: list[OrderDecision | None] = []
    for order in orders:
        plan = plan_sourcing(uow, order, rule_set, now, waived, front_of=front_of,
                             excluded=excluded, supply=supply)
        if for_backorder and not plan.groups:
            results.append(None)
            continue
        lines = {line.id: line for line in order.lines}
        recorded = decision_for(order, "sourcing", version, plan.outcome, plan.decision(lines),
                                plain(plan.order_facts), plan.trace(), now)
        _reserve(uow, actor, order, plan, lines, recorded)
        _backorder(plan, lines)
        supply.after(plan, order)
        planned.append((order, plan, lines, recorded))
        results.append(recorded)
    record_decisions(uow, [recorded for *_, recorded in planned])
    for order, plan, lines, recorded in planned:
        _apply(uow, actor, order, plan, lines, version, recorded.id)
        if plan.error is not None:
            handle_rule_error(uow, actor, order, "sourcing", plan.error)
    return results


def plan_sourcing(uow: UnitOfWork, order: Order, rule_set: CompiledRuleSet | None,
                  now: datetime, waived: frozenset[str] = frozenset(),
                  front_of: str | None = None, lock: bool = True,
                  as_new: bool = False, excluded: frozenset[str] = frozenset(),
                  supply: Supply | None = None) -> Plan:
    """Build the candidates, run the rules over each, rank them and split the order.

    With `lock` (a live allocation) the stock of the order's SKUs stays locked until the
    transaction ends, so what the plan saw is what gets reserved. Without it (dry runs,
    simulations) stock is only read. `as_new`: source the whole order as if it had just
    arrived (dry runs and simulations of orders already sourced: their own reservations
    count as available). `supply`: what a batch read once (else it is read for this order).
    """
    lines = {line.id: line for line in order.lines}
    needs = {line.id: line.quantity_ordered if as_new else _unsourced(line)
             for line in order.lines}
    needs = {line_id: units for line_id, units in needs.items() if units > 0}
    if supply is None:
        supply = read_supply(uow, [order], now, lock, excluding_order=order.id)
    # a batch's supply holds every order's SKUs: this order sees its own, as if alone
    stock = supply.of({line.sku for line in order.lines})
    owed = dict(supply.owed)
    owed.pop(front_of or "", None)
    own = _own_reservations(uow, order) if as_new else {}
    available: dict[str, dict[str, int]] = {}
    locations: dict[str, Location] = {}
    held_back: dict[str, int] = {}
    for level, location in stock:
        if location.code in excluded:
            continue
        units = level.available + own.get((level.sku, location.code), 0)
        kept = min(owed.get(level.sku, 0), units)  # backorders first, wherever they fill
        owed[level.sku] = owed.get(level.sku, 0) - kept
        if kept:
            held_back[location.code] = held_back.get(location.code, 0) + kept
        if units - kept > 0:
            available.setdefault(location.code, {})[level.sku] = units - kept
            locations[location.code] = location
    order_side = _order_facts(uow, order, needs, lines, len(available))
    destination = order_side.pop("destination")
    orders_today = supply.orders_today
    candidates = [
        build_candidate(locations[code], units, order_side, destination, needs, lines,
                   orders_today.get(code, 0))
        for code, units in sorted(available.items())
    ]
    plan = Plan(needs=needs, candidates=candidates,
                order_facts={**order_side, "destination_known": destination is not None},
                held_back=held_back, shipping_from=_shipping_from(uow, order),
                levels={(level.sku, location.code): level for level, location in stock},
                locations=locations)
    if rule_set is not None:
        # With no candidate the rules still run once, so order rules decide the remainder.
        evaluated = candidates or [build_candidate(None, {}, order_side, destination, needs,
                                                   lines, 0)]
        try:
            evaluations = evaluate_each(rule_set, [c.facts for c in evaluated], at=now)
        except RuleEvaluationError as error:
            plan.error = error
            plan.remainder = dict(needs)
            for candidate in candidates:
                candidate.why = f"not decided: rule {error.rule!r} failed"
            return plan
        for candidate, evaluation in zip(evaluated, evaluations, strict=True):
            assert isinstance(evaluation.decision, SourcingDecision)
            candidate.decision, candidate.trace = evaluation.decision, evaluation.stored_trace
        _merge_policy(plan, [c.decision for c in evaluated], waived)
    allocate(plan, lines)
    return plan


def unsourced_units(order: Order) -> tuple[int, int]:
    """Return the order's units not yet sourced: (all of them, those not waiting as backorders)."""
    unsourced = sum(_unsourced(line) for line in order.lines)
    return unsourced, unsourced - sum(line.quantity_backordered for line in order.lines)


def _unsourced(line: OrderLine) -> int:
    return (line.quantity_ordered - line.quantity_allocated - line.quantity_shipped
            - line.quantity_cancelled)


def _stock(uow: UnitOfWork, skus: set[str],
           lock: bool) -> list[tuple[StockLevel, Location]]:
    """Return (locked, in key order) the levels of these SKUs at active locations.

    Every level of the SKUs is locked, with stock or not: a receipt of one of them then
    waits for this order's backorder to commit, and sees it.
    """
    if not skus:
        return []
    statement = (select(StockLevel, Location)
                 .join(Location, Location.code == StockLevel.location_code)
                 .where(StockLevel.sku.in_(skus), Location.active.is_(True))
                 .order_by(StockLevel.sku, StockLevel.location_code))
    if lock:
        statement = statement.with_for_update(of=StockLevel)
    # read afresh: a level this session saw before the lock may have moved since
    found = uow.session.execute(statement.execution_options(populate_existing=True))
    return [(level, location) for level, location in found]


def _own_reservations(uow: UnitOfWork, order: Order) -> dict[tuple[str, str], int]:
    """Return what the order's live groups reserve, per (sku, location)."""
    own: dict[tuple[str, str], int] = {}
    for group in _live_groups(uow, order):
        for line in group.lines:
            key = (line.sku, group.location_code)
            own[key] = own.get(key, 0) + line.quantity
    return own


def _live_groups(uow: UnitOfWork, order: Order) -> list[FulfilmentGroup]:
    return list(uow.session.scalars(select(FulfilmentGroup).where(
        FulfilmentGroup.order_id == order.id, FulfilmentGroup.status != GroupStatus.CANCELLED)))


def _shipping_from(uow: UnitOfWork, order: Order) -> frozenset[str]:
    if not any(line.quantity_allocated or line.quantity_shipped for line in order.lines):
        return frozenset()  # nothing sourced yet: no group to look for
    return frozenset(group.location_code for group in _live_groups(uow, order))


def _order_facts(uow: UnitOfWork, order: Order, needs: Mapping[int, int],
                 lines: Mapping[int, OrderLine], candidate_count: int) -> dict[str, Any]:
    customer = uow.session.get(Customer, order.customer_id)
    assert customer is not None  # a foreign key
    destination = destination_of(uow, order)
    products = [lines[line_id].product for line_id in needs]
    return {
        "channel": order.channel,
        "customer_tier": customer.tier,
        "is_business_order": order.payment_terms in ON_ACCOUNT,
        "payment_terms": order.payment_terms,
        "order_total": order.total,
        "line_count": len(needs),
        "total_quantity": sum(needs.values()),
        "total_weight_kg": _weight_kg(needs, lines),
        "contains_hazmat": any(product.hazmat for product in products),
        "categories": sorted({p.category for p in products if p.category}),
        "service_level": order.service_level,
        "ship_to_country": order.ship_to_country,
        "ship_to_region": order.ship_to_region or "",
        "created_at": order.created_at,
        "candidate_count": candidate_count,
        "destination": destination,
    }


def _weight_kg(units: Mapping[int, int], lines: Mapping[int, OrderLine]) -> Decimal:
    grams = sum(lines[line_id].product.weight_g * quantity for line_id, quantity in units.items())
    return (Decimal(grams) / 1000).quantize(Decimal("0.001"))


def _orders_today(uow: UnitOfWork, codes: list[str], now: datetime) -> dict[str, int]:
    if not codes:
        return {}
    midnight = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
    return {code: count for code, count in uow.session.execute(
        select(FulfilmentGroup.location_code, func.count(FulfilmentGroup.id))
        .where(FulfilmentGroup.location_code.in_(codes), FulfilmentGroup.created_at >= midnight,
               FulfilmentGroup.created_at < midnight + timedelta(days=1))
        .group_by(FulfilmentGroup.location_code))}


def build_candidate(location: Location | None, available: dict[str, int],
                    order_side: Mapping[str, Any], destination: Point | None,
                    needs: Mapping[int, int], lines: Mapping[int, OrderLine],
                    orders_today: int) -> Candidate:
    """Return a location as a candidate for the order: what it can fill, how far it is, what
    shipping from it costs (the empty candidate when `location` is None)."""
    fill = fill_lines(needs, lines, available)
    left = dict(available)
    for line_id, units in fill.items():
        if units:
            left[lines[line_id].sku] -= units
    distance = (distance_km(destination, (float(location.latitude), float(location.longitude)))
                if location is not None and destination is not None else None)
    capacity = location.daily_capacity if location is not None else None
    facts = CandidateFacts(
        **{name: value for name, value in order_side.items() if name != "destination"},
        location_code=location.code if location else "",
        location_kind=location.kind if location else NO_LOCATION,
        location_region=(location.region or "") if location else "",
        same_region=bool(location and location.region
                         and location.region == order_side["ship_to_region"]),
        distance_known=distance is not None,
        distance_km=distance if distance is not None else Decimal(0),
        can_ship_complete=bool(needs) and all(fill[i] == needs[i] for i in needs),
        lines_fillable=sum(fill[i] == needs[i] for i in needs),
        units_fillable=sum(fill.values()),
        fill_share=(Decimal(sum(fill.values())) / max(sum(needs.values()), 1)).quantize(
            Decimal("0.0001")),
        stock_depth=min(left.values(), default=0),
        orders_today=orders_today,
        daily_capacity=capacity or 0,
        at_capacity=bool(capacity) and orders_today >= (capacity or 0),
        shipping_cost=shipping_cost(distance, _weight_kg(fill, lines)),
    )
    if location is None:  # the empty candidate order rules are evaluated with
        location = Location(code="", name="", kind=NO_LOCATION, country="", latitude=0, longitude=0)
    return Candidate(location, available, facts)


def fill_lines(needs: Mapping[int, int], lines: Mapping[int, OrderLine],
               available: Mapping[str, int]) -> dict[int, int]:
    """Return what a location can give each line; lines of one SKU share its units."""
    left = dict(available)
    fill = {}
    for line_id, units in needs.items():
        sku = lines[line_id].sku
        fill[line_id] = min(left.get(sku, 0), units)
        if fill[line_id]:
            left[sku] -= fill[line_id]
    return fill


def _merge_policy(plan: Plan, decisions: list[SourcingDecision], waived: frozenset[str]) -> None:
    """Order rules act on the order, whichever candidate's evaluation fired them."""
    plan.ship_complete = any(d.ship_complete for d in decisions)
    caps = [d.max_splits for d in decisions if d.max_splits is not None]
    plan.max_splits = min(caps) if caps else None
    plan.prefer = next((d.prefer for d in decisions if d.prefer in STRATEGIES), DEFAULT_STRATEGY)
    plan.partial_shipment = any(d.partial_shipment for d in decisions)
    plan.hold = next(((d.remainder_queue, d.remainder_reason or "", d.remainder_rule)
                      for d in decisions
                      if d.remainder_queue and d.remainder_rule not in waived), None)


def rank_key(prefer: str) -> Callable[[Candidate], tuple[Any, ...]]:
    """Return how candidates rank: the rules' score (highest first), then the preferred
    strategy (nearest, cheapest, most stock), then the location code."""
    def key(candidate: Candidate) -> tuple[Any, ...]:
        facts = candidate.facts
        by_strategy: dict[str, Any] = {
            "nearest": facts.distance_km if facts.distance_known else Decimal(math.inf),
            "cheapest": facts.shipping_cost,
            "most_stock": -facts.units_fillable,
        }
        return (-candidate.decision.score, by_strategy[prefer], candidate.code)
    return key


def allocate(plan: Plan, lines: Mapping[int, OrderLine]) -> None:
    """Split the order over the ranked candidates; what is left is the remainder.

    The whole order goes to the best-ranked location that can ship it complete; when none
    can, and the rules do not require ship-complete, it is split greedily by rank.
    """
    eligible = rank(plan)
    # the cap counts every location shipping for the order, earlier rounds included
    cap = plan.max_splits or len(eligible) + len(plan.shipping_from)
    complete = complete_location(plan, eligible, cap)
    need = dict(plan.needs)
    if complete is not None:
        _take(plan, complete, need, lines)
        need = {}
        complete.why = (f"ranked {complete.rank} of {len(eligible)} and can ship the whole "
                        "order" + (" (the better-ranked ones cannot)" if complete.rank != 1
                                   else ""))
        for other in eligible:
            if other is not complete:
                other.why = f"{complete.code} ships the whole order"
    elif plan.ship_complete:
        for other in eligible:
            other.why = "cannot ship the whole order, and the rules require ship-complete"
    else:
        need = split_greedily(plan, eligible, lines, cap)
    plan.remainder = {line_id: units for line_id, units in need.items() if units}


def rank(plan: Plan) -> list[Candidate]:
    """Return the candidates the rules did not exclude, ranked; the excluded say why."""
    eligible = []
    for candidate in plan.candidates:
        reasons = [e.reason for e in candidate.decision.effects if e.kind == "exclude"]
        if reasons:
            candidate.why = "excluded: " + "; ".join(reasons)
        else:
            eligible.append(candidate)
    eligible.sort(key=rank_key(plan.prefer))
    for position, candidate in enumerate(eligible, start=1):
        candidate.rank = position
    return eligible


def complete_location(plan: Plan, ranked: Sequence[Candidate], cap: int) -> Candidate | None:
    """Return the best-ranked location that can ship the whole order within the cap."""
    return next((candidate for candidate in ranked
                 if candidate.facts.can_ship_complete and _within_cap(plan, candidate, cap)),
                None)


def split_greedily(plan: Plan, ranked: Sequence[Candidate], lines: Mapping[int, OrderLine],
                   cap: int) -> dict[int, int]:
    """Take what each location can give, best-ranked first, from at most `cap` locations;
    return what is still needed."""
    need = dict(plan.needs)
    for candidate in ranked:
        if not any(need.values()):
            candidate.why = "not needed: the order is filled"
            continue
        if not _within_cap(plan, candidate, cap):
            candidate.why = f"beyond the cap of {cap} location(s)"
            continue
        taken = fill_lines(need, lines, candidate.available)
        taken = {line_id: units for line_id, units in taken.items() if units}
        if not taken:
            candidate.why = "has nothing the order still needs"
            continue
        _take(plan, candidate, taken, lines)
        for line_id, units in taken.items():
            need[line_id] -= units
        candidate.why = f"ranked {candidate.rank}: ships {sum(taken.values())} unit(s)"
    if len(plan.groups) > 1 or any(need.values()):
        for candidate in ranked:
            if candidate.result == "won":
                candidate.why += (" of a split order" if len(plan.groups) > 1
                                  else "; no location has the rest")
    return need


def _within_cap(plan: Plan, candidate: Candidate, cap: int) -> bool:
    shipping = plan.shipping_from | set(plan.groups)
    return candidate.code in shipping or len(shipping) < cap


def _take(plan: Plan, candidate: Candidate, units: Mapping[int, int],
          lines: Mapping[int, OrderLine]) -> None:
    """Make the candidate ship these units: a group of the plan, with its estimated cost."""
    plan.groups[candidate.code] = dict(units)
    plan.costs[candidate.code] = shipping_cost(_distance(candidate), _weight_kg(units, lines))
    candidate.result = "won"


def _distance(candidate: Candidate) -> Decimal | None:
    return candidate.facts.distance_km if candidate.facts.distance_known else None


def _reserve(uow: UnitOfWork, actor: Actor, order: Order, plan: Plan,
             lines: Mapping[int, OrderLine], decision: OrderDecision) -> None:
    """Reserve each group's units at its location and record the groups."""
    if not plan.groups:
        return
    # load the order's groups now: a lazy load below would flush lines half-updated (their
    # allocated units raised before their backordered ones are lowered)
    groups = order.fulfilment_groups
    wanted = {(lines[line_id].sku, code) for code, units in plan.groups.items()
              for line_id in units}
    # the plan locked them already (a dry run's plan did not, and never reserves)
    levels = plan.levels if wanted <= set(plan.levels) else lock_levels(uow, wanted)
    for code, units in plan.groups.items():
        group = FulfilmentGroup(order_id=order.id, location_code=code, status=GroupStatus.ALLOCATED,
                                decision=decision, created_at=utcnow(),
                                location=plan.locations[code])
        for line_id, quantity in units.items():
            line = lines[line_id]
            move(uow, actor, levels[(line.sku, code)], "reservation", 0, quantity,
                 reason="allocated to an order", reference=f"order:{order.id}",
                 order_id=order.id)
            line.quantity_allocated += quantity
            group.lines.append(FulfilmentLine(order_line_id=line_id, sku=line.sku,
                                              quantity=quantity))
        groups.append(group)


def _backorder(plan: Plan, lines: Mapping[int, OrderLine]) -> None:
    """What the plan could not fill waits for stock (unless the order is held for it)."""
    held = plan.outcome == "on_hold"
    for line_id, line in lines.items():
        line.quantity_backordered = 0 if held else plan.remainder.get(line_id, 0)


def _apply(uow: UnitOfWork, actor: Actor, order: Order, plan: Plan,
           lines: Mapping[int, OrderLine], version: RuleSetVersion | None,
           decision_id: int) -> None:
    """Move the order as the plan says; one timeline event tells why."""
    held = plan.outcome == "on_hold"
    if held:
        target = OrderStatus.ON_HOLD
    elif not plan.remainder or (plan.partial_shipment and any(
            line.quantity_allocated for line in lines.values())):
        target = OrderStatus.ALLOCATED  # what is allocated may ship; the rest waits
    else:
        target = OrderStatus.BACKORDERED
    about = {"groups": [{"location": code, "units": sum(units.values())}
                        for code, units in plan.groups.items()],
             "backordered_units": 0 if held else sum(plan.remainder.values()),
             "version": version.version if version else None, "decision_id": decision_id}
    if target is OrderStatus.ON_HOLD:
        why = (HoldReason(RULE_ERROR_QUEUE, str(plan.error), plan.error.rule)
               if plan.error is not None else HoldReason(*(plan.hold or ("", "", None))))
        put_on_hold(uow, actor, order, "sourcing", [why], version, **about)
        return
    if order.status in UNDER_WAY:
        target = order.status  # new groups join an order on its way; the rest waits
    event = {OrderStatus.ALLOCATED: "order.allocated",
             OrderStatus.BACKORDERED: "order.backordered"}.get(target, "order.resourced")
    if target is order.status:  # more of what it waits for: the status says so already
        record_event(uow, order, event, actor, previous_status=target.value,
                     status=target.value, stage="sourcing", reasons=[], **about)
    else:
        transitions.move(uow, actor, order, target, event, stage="sourcing", reasons=[],
                         **about)


# Orders whose units already went to a warehouse: sourcing more of them does not take
# them back a step.
UNDER_WAY = (OrderStatus.RELEASED, OrderStatus.PARTIALLY_SHIPPED)


def waiting_for(uow: UnitOfWork, sku: str) -> list[int]:
    """Return the orders waiting for a SKU, in the order they get it: best customers first
    (tier), then oldest first."""
    priority = case(TIER_PRIORITY, value=Customer.tier, else_=0)
    return list(uow.session.scalars(
        select(Order.id).join(Customer, Customer.id == Order.customer_id)
        .where(Order.status.in_(WAITING_STATUSES),
               Order.id.in_(select(OrderLine.order_id).where(
                   OrderLine.sku == sku, OrderLine.quantity_backordered > 0)))
        .order_by(priority.desc(), Order.created_at, Order.id)))


def fulfilment_groups(uow: UnitOfWork, actor: Actor, order_id: int) -> list[FulfilmentGroup]:
    """Return the order's fulfilment groups, oldest first (cancelled ones included)."""
    order = get_order(uow, actor, order_id)
    return list(uow.session.scalars(select(FulfilmentGroup).where(
        FulfilmentGroup.order_id == order.id).order_by(FulfilmentGroup.id)))
