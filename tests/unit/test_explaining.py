"""A decision's trace in plain words: each condition with what it saw, each option with why."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from engine.decisions.explaining import explain, explain_dry_run, show
from rules.evaluation import compile_rule_set, evaluate
from rules.stage import plain
from rules.stages import STAGES

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "api" / "console" / "templates"


def shipped(stage: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ROOT / "rules" / "sets" / f"{stage}.json").read_text())
    return document


def validation_of(**facts: Any) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """Evaluate the shipped validation rules over baseline facts with these changes."""
    stage = STAGES["validation"]
    document = shipped("validation")
    given = replace(stage.baseline, **facts)
    evaluation = evaluate(compile_rule_set(stage, document), given)
    return evaluation.trace, plain(asdict(given)), document


def render(explanation: Any, **options: Any) -> str:
    environment = Environment(loader=FileSystemLoader(TEMPLATES),
                              autoescape=select_autoescape(default=True))
    macro = environment.get_template("console/_explanation.html").module.render_explanation
    return str(macro(explanation, **options))


def test_each_condition_says_the_fact_it_saw_the_test_and_whether_it_held():
    # given an order shipping to a restricted destination
    trace, facts, document = validation_of(ship_to_country="KP")
    # when its validation decision is explained
    explanation = explain("validation", trace, outcome="rejected", facts=facts, version=3,
                          document=document)
    # then the rule that fired names the country it saw and the list it was tested against
    rule = next(rule for rule in explanation.rules if rule.name == "restricted-destination")
    assert rule.fired and rule.verdict == "fired"
    (condition,) = rule.conditions
    assert (condition.label, condition.fact, condition.test, condition.held) == (
        "Destination country (ISO code)", "KP", "is one of CU, IR, KP, SY", True)
    assert condition.sentence == ("Destination country (ISO code) was KP; the rule asks that "
                                  "it is one of CU, IR, KP, SY: held")
    assert rule.actions and rule.actions[0].startswith("Reject the order (code:")
    assert "restricted-destination" in explanation.fired
    assert explanation.headline.startswith("1 rule(s) fired: restricted-destination")
    assert explanation.stage_label == "Validation" and explanation.version == 3


def test_conditions_the_evaluation_did_not_need_are_shown_as_not_checked():
    # given a Brazilian order without a postal code: the CEP-format rule stops at its 2nd test
    trace, facts, document = validation_of(has_postal_code=False, ship_to_postal_code="")
    explanation = explain("validation", trace, outcome="rejected", facts=facts,
                          document=document)
    rule = next(rule for rule in explanation.rules
                if rule.name == "brazilian-postal-code-format")
    # then its third condition is listed, in its place, as not checked
    assert [c.verdict for c in rule.conditions] == ["held", "did not hold", "not checked"]
    assert rule.combine == "all"
    assert rule.conditions[2].path == "/rules/1/conditions/all/2"
    assert rule.conditions[2].sentence.endswith(": not checked")


def test_a_comparison_with_another_fact_names_it_and_its_value():
    # given an order on account of 150.00 with 100.00 of credit left
    trace, facts, document = validation_of(
        has_credit_limit=True, credit_remaining=Decimal("100.00"),
        order_total=Decimal("150.00"), payment_terms="net30")
    # then the comparison names the other fact and the value it had
    explanation = explain("validation", trace, outcome="on_hold", facts=facts,
                          document=document)
    rule = next(rule for rule in explanation.rules if rule.name == "credit-limit")
    total = next(c for c in rule.conditions if c.variable == "order_total")
    assert total.fact == "150.00" and total.held is True
    assert total.test.startswith("is more than Credit remaining")
    assert total.test.endswith("(100.00)")


def test_rules_a_first_match_stage_never_reached_are_listed_as_not_tried():
    stage = STAGES["exceptions"]
    document = shipped("exceptions")
    facts = replace(stage.baseline, event_type="rule_error")
    trace = evaluate(compile_rule_set(stage, document), facts).trace
    explanation = explain("exceptions", trace, outcome="hold", facts=plain(asdict(facts)),
                          document=document)
    assert explanation.rules[0].name == "rule-error" and explanation.rules[0].fired
    assert [rule.verdict for rule in explanation.rules[1:]] == (
        ["not tried"] * (len(document["rules"]) - 1))


def test_every_candidate_location_says_why_it_won_or_lost():
    trace = [
        {"location": "WH-SP", "result": "won", "why": "ranked 1 of 2 and can ship the whole order",
         "rank": 1, "score": "50", "excluded_because": [],
         "facts": {"location_kind": "warehouse", "distance_km": "12"},
         "rules": [{"rule": "same-region", "fired": True, "conditions": [
             {"path": "/rules/0/conditions", "variable": "same_region", "operator": "is_true",
              "value": None, "fact": True, "held": True}],
             "actions": [{"name": "add_score", "params": {"points": 50}}]}]},
        {"location": "ST-REC", "result": "lost", "why": "excluded: too far", "rank": None,
         "score": "0", "excluded_because": ["too far"], "facts": {}, "rules": []},
        {"location": "WH-RJ", "result": "lost", "rank": None,
         "why": "its 3 available unit(s) are kept for orders waiting for them"},
    ]
    decision = {"groups": [{"location": "WH-SP", "lines": []}], "remainder": [],
                "policy": {"ship_complete": True, "max_splits": 2}}
    explanation = explain("sourcing", trace, outcome="allocated", decision=decision, facts={})
    (section,) = explanation.sections
    assert section.summary == "Ships from WH-SP"
    assert [(c.name, c.result_words, c.why) for c in section.candidates] == [
        ("WH-SP", "chosen", "ranked 1 of 2 and can ship the whole order"),
        ("ST-REC", "not chosen", "excluded: too far"),
        ("WH-RJ", "not chosen", "its 3 available unit(s) are kept for orders waiting for them"),
    ]
    assert section.candidates[0].fired == ["same-region"]
    assert ("Excluded because", "too far") in [(d.label, d.value)
                                               for d in section.candidates[1].details]
    assert explanation.fired == ["same-region"]


def test_every_carrier_option_says_why_it_won_or_lost():
    trace = [{"group": 4, "location": "WH-SP",
              "chosen": {"carrier": "CORREIOS", "service": "SEDEX", "cost": "86.04",
                         "promised_at": "2026-12-02T18:00:00+00:00"},
              "policy": {"pick": "cheapest_meeting_promise", "required_level": None,
                         "cost_cap": None},
              "error": None, "not_rated": ["JADLOG/PACKAGE: beyond its rate card"],
              "options": [
                  {"option": "CORREIOS/SEDEX", "result": "won", "why": "the cheapest",
                   "cost": "86.04", "penalty": "0", "transit_days": 2,
                   "promised_at": "2026-12-02T18:00:00+00:00", "excluded_because": [],
                   "rules": []},
                  {"option": "AZUL/AMANHA", "result": "lost", "why": "dearer", "cost": "129.82",
                   "penalty": "0", "transit_days": 1,
                   "promised_at": "2026-12-01T18:00:00+00:00", "excluded_because": [],
                   "rules": []}]}]
    explanation = explain("carrier", trace, outcome="selected", decision={},
                          facts={"shipments": [{"weight_kg": "1.2"}]})
    (section,) = explanation.sections
    assert section.title == "Shipment of group 4 from WH-SP"
    assert section.summary == "CORREIOS/SEDEX for 86.04, promised 2026-12-02 18:00 UTC"
    assert "Not rated: JADLOG/PACKAGE: beyond its rate card" in section.notes
    assert [(c.name, c.won) for c in section.candidates] == [
        ("CORREIOS/SEDEX", True), ("AZUL/AMANHA", False)]
    assert ("Promised", "2026-12-01 18:00 UTC") in [
        (d.label, d.value) for d in section.candidates[1].details]


def test_values_read_as_a_person_reads_them():
    assert [show(True), show(False), show(None), show(["SP", "RJ"]), show([])] == [
        "yes", "no", "nothing", "SP, RJ", "none"]
    assert show("2026-12-02T18:00:00+00:00") == "2026-12-02 18:00 UTC"


def test_the_macro_highlights_fired_rules_and_escapes_what_it_shows():
    # given a decision whose facts hold markup and a right-to-left override
    trace, facts, document = validation_of(ship_to_country="KP",
                                           channel="<script>alert(1)</script>\u202e")
    explanation = explain("validation", trace, outcome="rejected", facts=facts,
                          document=document, decision_id=9)
    html = render(explanation)
    # then the fired rule is marked (in words too) and open, the markup shown as text
    assert re.search(r'<li class="rule rule--fired"\s+data-rule="restricted-destination"', html)
    assert 'data-fired="true"' in html and ">fired</span>" in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<bdi>" in html and 'id="decision-9"' in html
    # and without the highlight nothing is marked as fired
    assert "rule--fired" not in render(explanation, highlight_fired=False)


def test_a_rule_that_failed_is_named_and_what_ran_before_it_is_shown():
    # given a validation whose credit rule failed (the trace ends with the failing rule)
    trace = [{"rule": "postal-code-required", "fired": False, "actions": [], "conditions": [
        {"path": "/rules/0/conditions", "variable": "has_postal_code", "operator": "is_false",
         "value": None, "fact": True, "held": False}]},
        {"rule": "credit-limit", "fired": False, "actions": [], "conditions": []}]
    explanation = explain("validation", trace, outcome="on_hold",
                          decision={"error": "rule 'credit-limit' failed at /rules/3"},
                          document=shipped("validation"))
    assert explanation.error == "rule 'credit-limit' failed at /rules/3"
    assert explanation.headline == "A rule failed while deciding: nothing was decided"
    credit = next(rule for rule in explanation.rules if rule.name == "credit-limit")
    assert [c.verdict for c in credit.conditions] == ["not checked", "not checked"]
    assert 'role="alert">A rule failed while deciding: rule &#39;credit-limit&#39;' in render(
        explanation)


def test_a_dry_run_is_explained_like_a_stored_decision():
    trace, facts, document = validation_of(ship_to_country="KP")
    result = {"stage": "validation", "version": None, "outcome": "rejected",
              "decision": {"rejections": [{"code": "restricted", "message": "not there"}]},
              "facts": facts, "trace": trace}
    explanation = explain_dry_run(result, document)
    assert explanation.fired == ["restricted-destination"]
    assert explanation.headline.endswith("not there")
    assert explanation.version is None
