"""Benchmark rule evaluation: our compiled evaluator against business-rules' run_all and ZEN.

    .venv/bin/python -m bench.rules [--orders 3000] [--rounds 3]

For each of the four default rule sets it builds facts from generated Olist-shaped orders
(catalogue weights, values, categories; customers at their postal prefixes; the Olist
city locations as sourcing candidates; the shipped carriers' services rated for each
shipment as carrier options; exception events on those orders), then evaluates the set
over them, single process, with:

(a) `business_rules.engine.run_all`, the naive reference (its own tree walk and
    per-condition type wrapping, no caching);
(b) our compiled evaluator, which records the trace (every condition seen, with its fact)
    and renders it to JSON only when asked;
(c) for the carrier set only, GoRules ZEN (`zen-engine`, through `ZenEngine.evaluate`)
    running the same rules converted to an equivalent JDM decision table (collect hit
    policy; each row says which rule fired, whose actions then apply as in (a) and (b)).

All contenders must reach identical decisions (each stage's decision summary) on every
case; the script checks that before it prints anything. Rules comparing two variables
(`*_variable` operators, which run_all cannot express) are left out for every contender.
It prints evaluations per second and the ratios; it never passes or fails.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import zen
from business_rules.engine import run_all

from adapters.olist import OlistPack, OrderGenerator
from api.carriers import shipped_carriers
from engine.carriers.rate_cards import ServiceCard
from engine.carriers.rating import Shipment, quote
from engine.catalog.geo import distance_km
from engine.decisions.carrier import option_facts
from engine.record import CarrierRate, CarrierService
from rules.defaults import default_rule_set
from rules.evaluation import compile_rule_set, evaluate
from rules.stage import Decision, Stage
from rules.stages import STAGES
from rules.stages.carrier import CARRIER, CarrierDecision
from rules.stages.exceptions import EVENTS, EXCEPTIONS
from rules.stages.sourcing import SOURCING
from rules.stages.validation import OrderFacts

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


class Cases:
    """Olist-shaped facts for every stage, from one seeded order stream."""

    def __init__(self, count: int) -> None:
        self.pack = OlistPack()
        self.products = {row["sku"]: row for row in self.pack.products}
        self.customers = {row["id"]: row for row in self.pack.customers}
        self.locations = self.pack.locations()
        self.services = [_service(row) for carrier in shipped_carriers()
                         for row in _with_carrier(carrier)]
        generator, self.chooser = OrderGenerator(self.pack, seed=3), random.Random(5)
        self.orders = [generator.next_order() for _ in range(count)]
        self.validation = [self.order_facts(body) for body in self.orders]

    def order_facts(self, body: dict[str, Any]) -> OrderFacts:
        chooser, lines = self.chooser, body["lines"]
        totals = [Decimal(line["unit_price"]) * line["quantity"] for line in lines]
        total = sum(totals, Decimal(0)) + Decimal(body.get("shipping_amount", "0"))
        return OrderFacts(
            channel=chooser.choice(["olist", "web", "marketplace", "erp"]),
            customer_id=body["customer_id"],
            customer_tier=self.customers[body["customer_id"]]["tier"],
            customer_is_new=chooser.random() < 0.4,
            customer_previous_orders=chooser.randint(0, 9),
            has_credit_limit=chooser.random() < 0.3,
            credit_remaining=Decimal(chooser.randint(0, 3000)),
            payment_terms=chooser.choice(["card", "prepaid", "cod", "net30"]),
            currency="BRL", order_total=total, line_count=len(lines),
            total_quantity=sum(line["quantity"] for line in lines),
            highest_line_total=max(totals),
            lowest_price_ratio=Decimal(chooser.randint(30, 110)) / 100,
            total_weight_kg=Decimal(sum(self.products[line["sku"]]["weight_g"]
                                        * line["quantity"] for line in lines)) / 1000,
            contains_hazmat=chooser.random() < 0.05,
            skus=sorted(line["sku"] for line in lines),
            categories=sorted({self.products[line["sku"]]["category"] or ""
                               for line in lines}),
            service_level=chooser.choice(["economy", "standard", "express", "overnight"]),
            ship_to_country="BR", ship_to_region=body["shipping_address"]["region"],
            ship_to_postal_code=chooser.choice([body["shipping_address"]["postal_code"],
                                                "1234"]),
            has_postal_code=chooser.random() < 0.97,
            created_at=NOW - timedelta(hours=chooser.randint(0, 96)),
        )

    def sourcing(self) -> list[Any]:
        """Three candidate locations per order, at their real distance from the customer."""
        cases = []
        for body, order in zip(self.orders, self.validation, strict=True):
            customer = self.customers[body["customer_id"]]
            for location in self.chooser.sample(self.locations, 3):
                distance = (distance_km((customer["latitude"], customer["longitude"]),
                                        (location["latitude"], location["longitude"]))
                            if customer["latitude"] is not None else Decimal(0))
                fill = self.chooser.choice([0, 1, 1, 1])
                cases.append(replace(
                    SOURCING.baseline, channel=order.channel,
                    customer_tier=order.customer_tier,
                    is_business_order=order.payment_terms == "net30",
                    payment_terms=order.payment_terms, order_total=order.order_total,
                    line_count=order.line_count, total_quantity=order.total_quantity,
                    total_weight_kg=order.total_weight_kg,
                    contains_hazmat=order.contains_hazmat, categories=order.categories,
                    service_level=order.service_level, ship_to_region=order.ship_to_region,
                    created_at=order.created_at, candidate_count=3,
                    location_code=location["code"], location_kind=location["kind"],
                    location_region=location["region"],
                    same_region=location["region"] == order.ship_to_region,
                    distance_known=customer["latitude"] is not None, distance_km=distance,
                    can_ship_complete=bool(fill), lines_fillable=order.line_count * fill,
                    units_fillable=order.total_quantity * fill, fill_share=Decimal(fill),
                    stock_depth=self.chooser.randint(0, 40),
                    orders_today=self.chooser.randint(0, 60),
                    daily_capacity=location["daily_capacity"] or 0,
                    at_capacity=self.chooser.random() < 0.05,
                ))
        return cases

    def carrier(self) -> list[Any]:
        """Every shipped service rated for each order's shipment."""
        cases = []
        for body, order in zip(self.orders, self.validation, strict=True):
            volume = sum(Decimal(self.products[line["sku"]]["length_cm"]
                                 * self.products[line["sku"]]["width_cm"]
                                 * self.products[line["sku"]]["height_cm"]) * line["quantity"]
                         for line in body["lines"])
            shipment = Shipment(order.total_weight_kg, volume, order.order_total,
                                order.contains_hazmat,
                                Decimal(self.chooser.randint(5, 3500)))
            side = {"channel": order.channel, "customer_tier": order.customer_tier,
                    "requested_service_level": order.service_level,
                    "order_total": order.order_total, "shipment_value": order.order_total,
                    "weight_kg": shipment.weight_kg, "contains_hazmat": order.contains_hazmat,
                    "from_location": "BR-SP-SAO-PAULO",
                    "ship_to_region": order.ship_to_region,
                    "distance_km": shipment.distance, "created_at": order.created_at,
                    "option_count": len(self.services)}
            for service in self.services:
                found = quote(service, shipment, order.created_at)
                if found is not None:
                    cases.append(option_facts(side, found, order.service_level))
        return cases

    def exceptions(self) -> list[Any]:
        return [replace(EXCEPTIONS.baseline, event_type=self.chooser.choice(EVENTS),
                        event_code=self.chooser.choice(["ADDRESS", "TIMEOUT", "LABEL", ""]),
                        attempts=self.chooser.randint(0, 4),
                        delay_hours=Decimal(self.chooser.randint(0, 72)),
                        order_total=order.order_total, channel=order.channel,
                        customer_tier=order.customer_tier,
                        service_level=order.service_level,
                        has_shipped_units=self.chooser.random() < 0.3,
                        occurred_at=order.created_at)
                for order in self.validation]


def _with_carrier(carrier: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**service, "carrier_code": carrier["code"]} for service in carrier["services"]]


def _service(row: dict[str, Any]) -> ServiceCard:
    rates = [CarrierRate(**rate) for rate in row["rates"]]
    return ServiceCard.of(CarrierService(**{k: v for k, v in row.items() if k != "rates"},
                                         rates=rates))


# ----- GoRules ZEN: the carrier rules as a JDM decision table -----

ZEN_CELLS: dict[str, Callable[[Any], str]] = {
    "equal_to": lambda v: json.dumps(v),
    "is_in": lambda v: ", ".join(json.dumps(item) for item in v),
    "greater_than": lambda v: f"> {v}",
    "less_than": lambda v: f"< {v}",
    "greater_than_or_equal_to": lambda v: f">= {v}",
    "less_than_or_equal_to": lambda v: f"<= {v}",
    "is_true": lambda v: "true",
    "is_false": lambda v: "false",
    "greater_than_variable": lambda v: f"> {v}",
    "less_than_variable": lambda v: f"< {v}",
}


def jdm_table(document: dict[str, Any]) -> dict[str, Any]:
    """Convert rules whose conditions are one comparison or an `all` of comparisons into a
    JDM decision table with the collect hit policy: one row per rule, one column per
    variable, the rule's name as the output."""
    rows = []
    for rule in document["rules"]:
        conditions = rule["conditions"]
        leaves = conditions.get("all", [conditions])
        if any("all" in leaf or "any" in leaf for leaf in leaves):
            raise ValueError(f"rule {rule['name']!r} does not fit a decision table")
        rows.append((rule["name"], {leaf["name"]: ZEN_CELLS[leaf["operator"]](leaf["value"])
                                    for leaf in leaves}))
    variables = sorted({name for _, cells in rows for name in cells})
    columns = {name: f"i{index}" for index, name in enumerate(variables)}
    content = {
        "hitPolicy": "collect",
        "inputs": [{"id": columns[name], "name": name, "field": name} for name in variables],
        "outputs": [{"id": "rule", "name": "rule", "field": "rule"}],
        "rules": [{"_id": f"r{index}", "rule": json.dumps(name),
                   **{columns[v]: cells.get(v, "") for v in variables}}
                  for index, (name, cells) in enumerate(rows)],
    }
    return {"nodes": [
        {"id": "in", "type": "inputNode", "name": "Request", "position": {"x": 0, "y": 0}},
        {"id": "table", "type": "decisionTableNode", "name": "carrier",
         "position": {"x": 300, "y": 0}, "content": content},
        {"id": "out", "type": "outputNode", "name": "Response", "position": {"x": 600, "y": 0}},
    ], "edges": [
        {"id": "e1", "sourceId": "in", "targetId": "table", "type": "edge"},
        {"id": "e2", "sourceId": "table", "targetId": "out", "type": "edge"},
    ]}


def zen_contender(document: dict[str, Any]) -> Callable[[Any], Decision]:
    content = json.dumps(jdm_table(document))
    engine = zen.ZenEngine({"loader": lambda key: content})
    actions = {rule["name"]: rule["actions"] for rule in document["rules"]}

    def run(facts: Any) -> Decision:
        context = {name: _plain(value) for name, value in asdict(facts).items()}
        fired = engine.evaluate("carrier", context)["result"]
        decision = CarrierDecision()
        applier = CARRIER.actions(decision)
        for row in fired:
            decision.rule = row["rule"]
            for action in actions[row["rule"]]:
                getattr(applier, action["name"])(**action["params"])
        decision.rule = None
        return decision
    return run


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# ----- the run -----

def contenders(stage: Stage[Any], document: dict[str, Any]) -> dict[str, Callable[[Any], Any]]:
    compiled = compile_rule_set(stage, document)
    variables, actions = stage.variables, stage.actions

    def naive(facts: Any) -> Decision:
        decision = stage.decision()
        run_all(document["rules"], variables(facts), actions(decision),
                stop_on_first_trigger=stage.stop_on_first_trigger)
        return decision

    def ours(facts: Any) -> Decision:
        return evaluate(compiled, facts, stage.moment_of(facts)).decision

    found: dict[str, Callable[[Any], Any]] = {"business_rules.run_all (naive)": naive,
                                              "compiled (trace recorded)": ours}
    if stage is CARRIER:
        found["GoRules ZEN decision table"] = zen_contender(document)
    return found


def measure(run: Callable[[Any], Any], cases: list[Any], rounds: int) -> float:
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for facts in cases:
            run(facts)
        best = max(best, len(cases) / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    cases = Cases(args.orders)
    facts_by_stage = {"validation": cases.validation, "sourcing": cases.sourcing(),
                      "carrier": cases.carrier(), "exceptions": cases.exceptions()}
    print(f"{args.orders} Olist-shaped orders; best of {args.rounds} rounds, one process; "
          "identical decisions checked for every case")
    for name, stage in STAGES.items():
        document = default_rule_set(name)
        document["rules"] = [rule for rule in document["rules"]
                             if "_variable" not in json.dumps(rule["conditions"])]
        runs = contenders(stage, document)
        facts = facts_by_stage[name]
        reference = [runs["business_rules.run_all (naive)"](f).summary() for f in facts]
        for label, run in runs.items():
            differing = sum(run(f).summary() != expected
                            for f, expected in zip(facts, reference, strict=True))
            if differing:
                raise SystemExit(f"{name}: {differing} decisions of {label} differ from "
                                 "run_all's")
        acting = sum(1 for summary in reference
                     if summary != stage.decision().summary())
        print(f"\n{name}: {len(document['rules'])} rules, {len(facts):,} cases "
              f"({acting:,} where a rule acted)")
        rates = {label: measure(run, facts, args.rounds) for label, run in runs.items()}
        for label, rate in rates.items():
            print(f"  {label:<32} {rate:10,.0f} evaluations/s")
        ours = rates["compiled (trace recorded)"]
        print(f"  ratio compiled / naive: {ours / rates['business_rules.run_all (naive)']:.2f}")
        if "GoRules ZEN decision table" in rates:
            print(f"  ratio compiled / ZEN:   {ours / rates['GoRules ZEN decision table']:.2f}")


if __name__ == "__main__":
    main()
