"""The carrier stage: every service rated for each group, the rules choose, the choice applied."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.actors import Actor
from engine.carriers.rate_cards import ServiceCard, rate_cards
from engine.carriers.rating import CENT, Quote, Shipment, quote
from engine.catalog.geo import (
    UNKNOWN_DISTANCE_KM,
    Point,
    destination_of,
    distance_km,
    prefetch_destinations,
)
from engine.decisions.escalation import handle_rule_error
from engine.decisions.recording import decision_for, record_decisions
from engine.decisions.rulesets import compiled, deciding_version
from engine.orders.holds import NO_CARRIER_QUEUE, RULE_ERROR_QUEUE, HoldReason, put_on_hold
from engine.orders.timeline import record_event
from engine.ports import UnitOfWork
from engine.record import (
    Customer,
    FulfilmentGroup,
    Location,
    Order,
    OrderDecision,
    OrderLine,
    RuleSetVersion,
    utcnow,
)
from rules.evaluation import CompiledRuleSet, RuleEvaluationError, evaluate_each
from rules.stage import plain
from rules.stages.carrier import PICKS, CarrierDecision, CarrierOptionFacts
from rules.vocabulary import SERVICE_LEVELS

SHIPMENT_FIELDS = ("channel", "customer_tier", "requested_service_level", "order_total",
                   "shipment_value", "weight_kg", "billable_weight_kg", "contains_hazmat",
                   "from_location", "ship_to_region", "distance_km", "created_at",
                   "option_count")


@dataclass
class Option:
    quote: Quote
    facts: CarrierOptionFacts
    decision: CarrierDecision = field(default_factory=CarrierDecision)
    trace: Any = None  # as stored (`Evaluation.stored_trace`)
    result: str = "lost"
    why: str = ""

    @property
    def label(self) -> str:
        return f"{self.quote.service.carrier_code}/{self.quote.service.code}"

    @property
    def compared_cost(self) -> Decimal:
        return self.quote.cost + self.decision.penalty


@dataclass
class Choice:
    group: FulfilmentGroup
    shipment_facts: dict[str, Any]
    options: list[Option]
    unrated: list[str]
    chosen: Option | None = None
    pick: str = "cheapest_meeting_promise"
    required_level: str | None = None
    cost_cap: Decimal | None = None
    error: RuleEvaluationError | None = None

    def explained(self) -> dict[str, Any]:
        chosen = self.chosen
        return {
            "group": self.group.id, "location": self.group.location_code,
            "chosen": ({"carrier": chosen.quote.service.carrier_code,
                        "service": chosen.quote.service.code, "cost": str(chosen.quote.cost),
                        "promised_at": chosen.quote.promised_at.isoformat()}
                       if chosen else None),
            "policy": {"pick": self.pick, "required_level": self.required_level,
                       "cost_cap": str(self.cost_cap) if self.cost_cap is not None else None},
            "error": str(self.error) if self.error else None,
            "not_rated": self.unrated,
            "options": [{"option": o.label, "result": o.result, "why": o.why,
                         "cost": str(o.quote.cost), "penalty": str(o.decision.penalty),
                         "transit_days": o.quote.transit_days,
                         "promised_at": o.quote.promised_at.isoformat(),
                         "excluded_because": [e.reason for e in o.decision.effects
                                              if e.kind == "exclude"],
                         "rules": o.trace} for o in self.options],
        }


def choose_carriers_for(uow: UnitOfWork, actor: Actor,
                        orders: Sequence[Order]) -> list[OrderDecision | None]:
    """Choose a carrier service for each group of the orders that has none yet: one
    decision per order (None for an order with no such group), written together."""
    pending = [(order, [group for group in order.fulfilment_groups
                        if group.status == "allocated" and group.carrier_code is None])
               for order in orders]
    if not any(groups for _, groups in pending):
        return [None] * len(orders)
    version = deciding_version(uow, "carrier")
    rule_set = compiled(version) if version else None
    now = utcnow()
    prefetch_destinations(uow, [order for order, groups in pending if groups])
    decided: list[tuple[Order, list[Choice], OrderDecision]] = []
    results: list[OrderDecision | None] = []
    for order, groups in pending:
        if not groups:
            results.append(None)
            continue
        choices = plan_carriers(uow, order, groups, rule_set, now)
        stuck = [choice for choice in choices if choice.chosen is None]
        recorded = decision_for(
            order, "carrier", version, "on_hold" if stuck else "selected",
            {"groups": [{key: value for key, value in c.explained().items() if key != "options"}
                        for c in choices]},
            {"shipments": [plain(c.shipment_facts) for c in choices]},
            [c.explained() for c in choices], now)
        decided.append((order, choices, recorded))
        results.append(recorded)
    record_decisions(uow, [recorded for *_, recorded in decided])
    for order, choices, recorded in decided:
        for choice in choices:
            if choice.chosen is not None:
                group, chosen = choice.group, choice.chosen.quote
                group.carrier_code, group.service_code = (chosen.service.carrier_code,
                                                          chosen.service.code)
                group.shipping_cost, group.promised_at = chosen.cost, chosen.promised_at
                group.carrier_decision_id = recorded.id
        _apply(uow, actor, order, choices, version, recorded.id)
        failed = next((choice.error for choice in choices if choice.error is not None), None)
        if failed is not None:
            handle_rule_error(uow, actor, order, "carrier", failed)
    return results


def plan_carriers(uow: UnitOfWork, order: Order, groups: Sequence[FulfilmentGroup],
                  rule_set: CompiledRuleSet | None, now: datetime) -> list[Choice]:
    """Rate every service for each group and let the rules choose; nothing is written."""
    services = rate_cards(uow)
    customer = uow.session.get(Customer, order.customer_id)
    destination = destination_of(uow, order)
    lines = {line.id: line for line in order.lines}
    return [_choose(uow, order, group, services, customer, destination, lines, rule_set, now)
            for group in groups]


def _choose(uow: UnitOfWork, order: Order, group: FulfilmentGroup,
            services: Sequence[ServiceCard], customer: Customer | None,
            destination: Point | None, lines: Mapping[int, OrderLine],
            rule_set: CompiledRuleSet | None, now: datetime) -> Choice:
    location = group.location or uow.session.get(Location, group.location_code)
    assert location is not None  # a foreign key
    shipment = _shipment(group, lines, location, destination)
    quotes = [(service, quote(service, shipment, now)) for service in services]
    side = {
        "channel": order.channel,
        "customer_tier": customer.tier if customer else "standard",
        "requested_service_level": order.service_level,
        "order_total": order.total,
        "shipment_value": shipment.value,
        "weight_kg": shipment.weight_kg,
        "contains_hazmat": shipment.contains_hazmat,
        "from_location": group.location_code,
        "ship_to_region": order.ship_to_region or "",
        # unknown distances are rated as a national parcel: the facts say what was rated
        "distance_km": (shipment.distance if shipment.distance is not None
                        else UNKNOWN_DISTANCE_KM),
        "created_at": order.created_at,
        "option_count": sum(1 for _, found in quotes if found is not None),
    }
    options = [Option(found, option_facts(side, found, order.service_level))
               for _, found in quotes if found is not None]
    choice = Choice(group, side, options,
                    [f"{s.carrier_code}/{s.code}: beyond its rate card"
                     for s, found in quotes if found is None])
    if rule_set is not None:
        try:
            evaluations = evaluate_each(rule_set, [option.facts for option in options], at=now)
        except RuleEvaluationError as error:
            choice.error = error
            return choice
        for option, evaluation in zip(options, evaluations, strict=True):
            assert isinstance(evaluation.decision, CarrierDecision)
            option.decision, option.trace = evaluation.decision, evaluation.stored_trace
    pick_option(choice)
    return choice


def _shipment(group: FulfilmentGroup, lines: Mapping[int, OrderLine], location: Location,
              destination: Point | None) -> Shipment:
    weight = volume = value = Decimal(0)
    hazmat = False
    for item in group.lines:
        line = lines[item.order_line_id]
        product = line.product
        weight += Decimal(product.weight_g * item.quantity) / 1000
        volume += product.length_cm * product.width_cm * product.height_cm * item.quantity
        value += line.unit_price * item.quantity
        hazmat = hazmat or product.hazmat
    distance = (distance_km((float(location.latitude), float(location.longitude)), destination)
                if destination is not None else None)
    return Shipment(weight.quantize(Decimal("0.001")), volume, value.quantize(CENT), hazmat,
                    distance)


def option_facts(side: Mapping[str, Any], found: Quote, requested: str) -> CarrierOptionFacts:
    """Return the facts of one rated option: the shipment's side and the quote's."""
    service = found.service
    return CarrierOptionFacts(
        **side,
        billable_weight_kg=found.billable_kg,
        carrier=service.carrier_code, service=service.code,
        service_level=service.service_level, mode=service.mode, cost=found.cost,
        transit_days=found.transit_days, promised_at=found.promised_at,
        meets_service_level=_level(service.service_level) >= _level(requested),
        max_weight_kg=service.max_weight_kg,
        over_max_weight=found.billable_kg > service.max_weight_kg,
        insured=service.insured, max_insured_value=service.max_insured_value,
        hazmat_allowed=service.hazmat_allowed,
    )


def _level(name: str) -> int:
    return SERVICE_LEVELS.index(name) if name in SERVICE_LEVELS else 0


def pick_option(choice: Choice) -> None:
    """Apply the shipment rules and choose the best remaining option."""
    decisions = [option.decision for option in choice.options]
    choice.pick = next((d.pick for d in decisions if d.pick in PICKS), PICKS[0])
    levels = [d.required_level for d in decisions if d.required_level]
    choice.required_level = max(levels, key=_level) if levels else None
    caps = [d.cost_cap for d in decisions if d.cost_cap is not None]
    choice.cost_cap = min(caps) if caps else None
    eligible = []
    for option in choice.options:
        excluded = [e.reason for e in option.decision.effects if e.kind == "exclude"]
        if excluded:
            option.why = "excluded: " + "; ".join(excluded)
        elif choice.required_level and (_level(option.facts.service_level)
                                        < _level(choice.required_level)):
            option.why = f"below the required {choice.required_level} service"
        elif choice.cost_cap is not None and option.quote.cost > choice.cost_cap:
            option.why = f"costs {option.quote.cost}, over the cap of {choice.cost_cap}"
        else:
            eligible.append(option)
    if not eligible:
        return
    fastest = sorted(eligible, key=lambda o: (o.quote.promised_at, o.compared_cost, o.label))
    keeping = sorted((o for o in eligible if o.facts.meets_service_level),
                     key=lambda o: (o.compared_cost, o.quote.promised_at, o.label))
    if choice.pick == "cheapest_meeting_promise" and keeping:
        chosen, reason = keeping[0], "the cheapest that keeps the promise"
    else:
        chosen = fastest[0]
        reason = ("the fastest" if choice.pick == "fastest"
                  else "the fastest, as none keeps the promised service level")
    chosen.result, chosen.why = "won", reason
    choice.chosen = chosen
    for option in eligible:
        if option is chosen:
            continue
        if keeping and chosen in keeping and not option.facts.meets_service_level:
            option.why = (f"its {option.facts.service_level} service is below the requested "
                          f"{option.facts.requested_service_level}")
        else:
            option.why = (f"{chosen.label} is {reason} ({chosen.compared_cost} with penalties,"
                          f" {chosen.quote.transit_days} days; this one {option.compared_cost},"
                          f" {option.quote.transit_days} days)")


def _apply(uow: UnitOfWork, actor: Actor, order: Order, choices: list[Choice],
           version: RuleSetVersion | None, decision_id: int) -> None:
    """Hold the order for the groups no service can take; else say what was chosen."""
    stuck = [choice for choice in choices if choice.chosen is None]
    about = {"shipments": [{"location": c.group.location_code,
                            "carrier": c.chosen.quote.service.carrier_code,
                            "service": c.chosen.quote.service.code,
                            "cost": str(c.chosen.quote.cost),
                            "promised_at": c.chosen.quote.promised_at.isoformat()}
                           for c in choices if c.chosen is not None],
             "version": version.version if version else None, "decision_id": decision_id}
    if stuck:
        put_on_hold(uow, actor, order, "carrier", [
            HoldReason(RULE_ERROR_QUEUE, str(c.error), c.error.rule) if c.error is not None
            else HoldReason(NO_CARRIER_QUEUE, "No carrier service can ship the group from "
                                              f"{c.group.location_code}.")
            for c in stuck], version, **about)
        return
    record_event(uow, order, "order.carrier_selected", actor,
                 previous_status=order.status.value, status=order.status.value, stage="carrier",
                 reasons=[], **about)
