"""Benchmark rule evaluation: our compiled evaluator against business-rules' own run_all.

    .venv/bin/python -m bench.rules [--orders 5000] [--rounds 3]

Builds validation facts for generated Olist-shaped orders (catalogue weights, values and
categories; sampled customers), then evaluates the default validation rule set over them,
single process, with (a) `business_rules.engine.run_all` (the naive reference: its own
tree walk and per-condition type wrapping) and (b) our compiled evaluator, which records
the trace (every condition seen, with its fact) and renders it to JSON only when asked.
Both run the same rules (the default set minus the variable-to-variable comparison, which
run_all cannot express) and must reach identical decisions; the script checks that before
it prints anything. It prints evaluations per second and the ratio; never pass or fail.
"""

from __future__ import annotations

import argparse
import copy
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from business_rules.engine import run_all

from adapters.olist import OlistPack, OrderGenerator
from rules.defaults import default_rule_set
from rules.evaluation import compile_rule_set, evaluate
from rules.stages.validation import VALIDATION, OrderFacts, ValidationDecision

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def facts_of(body: dict[str, Any], products: dict[str, dict[str, Any]],
             chooser: random.Random) -> OrderFacts:
    lines = body["lines"]
    totals = [Decimal(line["unit_price"]) * line["quantity"] for line in lines]
    total = sum(totals, Decimal(0)) + Decimal(body.get("shipping_amount", "0"))
    return OrderFacts(
        channel=chooser.choice(["olist", "web", "marketplace", "erp"]),
        customer_id=body["customer_id"], customer_tier="standard",
        customer_is_new=chooser.random() < 0.4, customer_previous_orders=chooser.randint(0, 9),
        has_credit_limit=chooser.random() < 0.3,
        credit_remaining=Decimal(chooser.randint(0, 3000)),
        payment_terms=chooser.choice(["card", "prepaid", "cod", "net30"]),
        currency="BRL", order_total=total, line_count=len(lines),
        total_quantity=sum(line["quantity"] for line in lines),
        highest_line_total=max(totals),
        lowest_price_ratio=Decimal(chooser.randint(30, 110)) / 100,
        total_weight_kg=Decimal(sum(products[line["sku"]]["weight_g"] * line["quantity"]
                                    for line in lines)) / 1000,
        contains_hazmat=chooser.random() < 0.05,
        skus=sorted(line["sku"] for line in lines),
        categories=sorted({products[line["sku"]]["category"] or "" for line in lines}),
        service_level=chooser.choice(["standard", "express", "overnight"]),
        ship_to_country="BR", ship_to_region=body["shipping_address"]["region"],
        ship_to_postal_code=chooser.choice([body["shipping_address"]["postal_code"], "1234"]),
        has_postal_code=chooser.random() < 0.97,
        created_at=NOW - timedelta(hours=chooser.randint(0, 96)),
    )


def outcome(decision: ValidationDecision) -> tuple[Any, ...]:
    return (tuple((f.code, f.message) for f in decision.rejections),
            tuple((f.code, f.message) for f in decision.holds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    pack = OlistPack()
    products = {row["sku"]: row for row in pack.products}
    generator, chooser = OrderGenerator(pack, seed=3), random.Random(5)
    all_facts = [facts_of(generator.next_order(), products, chooser) for _ in range(args.orders)]

    document = copy.deepcopy(default_rule_set("validation"))
    document["rules"] = [r for r in document["rules"] if "_variable" not in str(r["conditions"])]
    compiled = compile_rule_set(VALIDATION, document)
    variables, actions = VALIDATION.variables, VALIDATION.actions

    def naive(facts: OrderFacts) -> ValidationDecision:
        decision = ValidationDecision()
        run_all(document["rules"], variables(facts), actions(decision),
                stop_on_first_trigger=VALIDATION.stop_on_first_trigger)
        return decision

    def ours(facts: OrderFacts) -> ValidationDecision:
        decision = evaluate(compiled, facts, NOW).decision
        assert isinstance(decision, ValidationDecision)
        return decision

    mismatches = sum(outcome(naive(f)) != outcome(ours(f)) for f in all_facts)
    if mismatches:
        raise SystemExit(f"{mismatches} decisions differ between run_all and ours")

    rates = {}
    contenders = (("business_rules.run_all (naive)", naive), ("compiled (trace recorded)", ours))
    for label, run in contenders:
        best = 0.0
        for _ in range(args.rounds):
            started = time.perf_counter()
            for facts in all_facts:
                run(facts)
            best = max(best, len(all_facts) / (time.perf_counter() - started))
        rates[label] = best
    held = sum(bool(ours(f).holds or ours(f).rejections) for f in all_facts)
    print(f"validation stage: {len(document['rules'])} rules, {len(all_facts)} Olist-shaped "
          f"orders ({held} held or rejected), best of {args.rounds} rounds, one process; "
          "identical decisions checked")
    for label, rate in rates.items():
        print(f"  {label:<32} {rate:10,.0f} evaluations/s")
    naive_rate, our_rate = rates.values()
    print(f"  ratio compiled / naive: {our_rate / naive_rate:.2f}")


if __name__ == "__main__":
    main()
