"""The rule language: what the editor is offered, what a save refuses, how rules decide."""

from __future__ import annotations

import copy
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from business_rules.engine import run_all

from rules.checking import check_rule_set
from rules.defaults import default_rule_set
from rules.evaluation import (
    STORED_TRACE,
    RuleEvaluationError,
    compile_rule_set,
    evaluate,
    expand_traces,
)
from rules.stage import Stage
from rules.stages import STAGES
from rules.stages.validation import VALIDATION, OrderFacts, ValidationDecision

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def facts(**overrides) -> OrderFacts:
    base = OrderFacts(
        channel="web", customer_id="C-1", customer_tier="standard", customer_is_new=False,
        customer_previous_orders=4, has_credit_limit=False, credit_remaining=Decimal("0"),
        payment_terms="card", currency="BRL", order_total=Decimal("199.80"), line_count=2,
        total_quantity=3, highest_line_total=Decimal("179.80"),
        lowest_price_ratio=Decimal("1"), total_weight_kg=Decimal("2.1"),
        contains_hazmat=False, skus=["LAMP-1", "MUG-2"], categories=["lighting"],
        service_level="standard", ship_to_country="BR", ship_to_region="SP",
        ship_to_postal_code="01310-100", has_postal_code=True,
        created_at=NOW - timedelta(hours=1),
    )
    return replace(base, **overrides)


def decide(document, order_facts, at=NOW):
    return evaluate(compile_rule_set(VALIDATION, document), order_facts, at)


def paths(problems) -> dict[str, str]:
    return {problem.path: problem.message for problem in problems}


# ----- what the editor is offered -----

def test_the_editor_schema_lists_variables_with_labels_operators_and_actions():
    schema = VALIDATION.schema()
    variables = {v["name"]: v for v in schema["variables"]}
    assert variables["customer_tier"]["options"] == ["standard", "silver", "gold", "platinum"]
    assert variables["order_total"]["field_type"] == "numeric"
    assert variables["created_at"]["label"] == "Order received at"
    operators = {kind: {o["name"] for o in ops}
                 for kind, ops in schema["variable_type_operators"].items()}
    assert {"not_equal_to", "is_in", "is_not_in", "matches_regex"} <= operators["string"]
    assert {"between", "not_equal_to", "greater_than_variable"} <= operators["numeric"]
    assert {"before", "after", "older_than_hours"} <= operators["datetime"]
    assert {a["name"]: [p["name"] for p in a["params"]] for a in schema["actions"]} == {
        "reject": ["code", "message"], "hold": ["queue", "reason"]}


def test_every_stage_has_a_default_rule_set_that_passes_its_checks():
    for name, stage in STAGES.items():
        document = default_rule_set(name)
        assert check_rule_set(stage, document) == [], name
        assert len(document["rules"]) >= 8, name


# ----- what a save refuses -----

def test_every_problem_of_a_rule_set_is_reported_with_the_path_of_its_node():
    document = {"rules": [
        {"name": "a", "conditions": {"all": [
            {"name": "order_totl", "operator": "greater_than", "value": 1},
            {"name": "order_total", "operator": "longer_than", "value": 1},
            {"name": "order_total", "operator": "greater_than", "value": "1000"},
            {"any": []},
        ]}, "actions": [{"name": "reject", "params": {"code": "x", "colour": "red"}}]},
        {"name": "a", "conditions": {"name": "ship_to_postal_code", "operator": "matches_regex",
                                     "value": "(a+)\\1"},
         "actions": [{"name": "explode", "params": {}}]},
    ]}
    found = paths(check_rule_set(VALIDATION, document))
    assert found["/rules/0/conditions/all/0/name"] == (
        "unknown variable 'order_totl'; did you mean 'order_total'?")
    assert found["/rules/0/conditions/all/1/operator"].startswith(
        "'longer_than' is not an operator for numeric variable 'order_total'")
    assert found["/rules/0/conditions/all/2/value"] == "must be a number"
    assert found["/rules/0/conditions/all/3/any"] == "must be a non-empty list of conditions"
    assert found["/rules/0/actions/0/params/message"] == "missing"
    assert found["/rules/0/actions/0/params/colour"] == "'reject' takes no such param"
    assert found["/rules/1/name"] == "the name 'a' is already used by rule 0"
    assert found["/rules/1/conditions/value"].startswith("not a safe pattern")
    assert found["/rules/1/actions/0/name"].startswith("unknown action 'explode'")
    assert len(found) == 9


def test_values_must_fit_what_the_operator_takes():
    def problem_of(condition):
        document = {"rules": [{"name": "r", "conditions": condition, "actions": [
            {"name": "hold", "params": {"queue": "q", "reason": "r"}}]}]}
        return list(paths(check_rule_set(VALIDATION, document)).values())

    assert problem_of({"name": "order_total", "operator": "between", "value": [10, 1]}) == [
        "low must not be above high"]
    assert problem_of({"name": "channel", "operator": "is_in", "value": "web"}) == [
        "must be a non-empty list of texts"]
    assert problem_of({"name": "created_at", "operator": "before", "value": "yesterday"})
    assert problem_of({"name": "order_total", "operator": "greater_than_variable",
                       "value": "channel"}) == ["'channel' is a string variable, not numeric"]
    assert problem_of({"name": "customer_tier", "operator": "equal_to", "value": "bronze"}) == [
        "must be one of standard, silver, gold, platinum"]
    assert problem_of({"name": "channel", "operator": "matches_regex", "value": "x" * 201}) == [
        "a pattern has at most 200 characters"]
    assert problem_of({"name": "order_total", "operator": "greater_than"}) == [
        "missing (use null for operators that take no value)"]
    assert problem_of({"all": [{"name": "channel", "operator": "equal_to", "value": "web"}],
                       "any": []}) == ["all or any must be the only key of its object"]


def test_in_a_first_trigger_stage_a_rule_that_can_never_fire_is_refused():
    priority = Stage("priority", "test", OrderFacts, VALIDATION.actions, ValidationDecision,
                     stop_on_first_trigger=True, baseline=VALIDATION.baseline,
                     clock="created_at")
    hold = [{"name": "hold", "params": {"queue": "q", "reason": "r"}}]
    document = {"rules": [
        {"name": "broad", "conditions": {"name": "channel", "operator": "equal_to",
                                         "value": "web"}, "actions": hold},
        {"name": "narrow", "conditions": {"all": [
            {"name": "channel", "operator": "equal_to", "value": "web"},
            {"name": "order_total", "operator": "greater_than", "value": 10}]}, "actions": hold},
        {"name": "other", "conditions": {"name": "channel", "operator": "equal_to",
                                         "value": "erp"}, "actions": hold},
    ]}
    assert paths(check_rule_set(priority, document)) == {
        "/rules/1": "can never fire: the earlier rule 'broad' fires whenever it would, and "
                    "stops the evaluation first"}
    assert check_rule_set(VALIDATION, document) == []  # every rule acts there: all reachable


# ----- how rules decide -----

def test_a_clean_order_is_validated_and_the_trace_shows_what_each_rule_saw():
    evaluation = decide(default_rule_set("validation"), facts())
    assert evaluation.decision.outcome == "validated"
    assert evaluation.fired == []
    credit = next(entry for entry in evaluation.trace if entry["rule"] == "credit-limit")
    assert credit["conditions"] == [{"path": "/rules/3/conditions/all/0",
                                     "variable": "has_credit_limit", "operator": "is_true",
                                     "value": None, "fact": False, "held": False}]


def test_a_trace_is_stored_by_number_and_expands_to_the_full_one_by_its_rule_set():
    document = default_rule_set("validation")
    document["rules"][0]["disabled"] = True  # numbers count the rules that are tried
    rule_set = compile_rule_set(VALIDATION, document)
    evaluation = evaluate(rule_set, facts(has_credit_limit=True,
                                          credit_remaining=Decimal("150")), NOW)
    stored = evaluation.stored_trace
    # no rule names, paths or operators: those are the rule set's; each fact once
    assert "credit-limit" not in repr(stored)
    assert stored["facts"]["order_total"] == "199.80"
    assert len(repr(stored)) * 3 < len(repr(evaluation.trace))
    # decisions hold traces inside what they weighed (candidates, options): expanded there
    held = {"candidates": [{"location": "WH-SP", "rules": stored}], "note": "kept"}
    assert expand_traces(rule_set, held) == {
        "candidates": [{"location": "WH-SP", "rules": evaluation.trace}], "note": "kept"}
    assert [entry["rule"] for entry in evaluation.trace] == [
        rule["name"] for rule in document["rules"][1:]]


def test_a_full_trace_recorded_before_traces_were_stored_by_number_reads_as_it_was():
    rule_set = compile_rule_set(VALIDATION, default_rule_set("validation"))
    full = decide(default_rule_set("validation"), facts()).trace
    assert expand_traces(rule_set, full) == full
    with pytest.raises(LookupError):  # a stored trace without its rule set is not guessed
        expand_traces(None, {STORED_TRACE: 1, "facts": {}, "tried": []})


def test_a_rejection_outweighs_holds_and_every_reason_is_kept():
    evaluation = decide(default_rule_set("validation"), facts(
        has_postal_code=False, ship_to_postal_code="", customer_is_new=True,
        order_total=Decimal("2500")))
    decision = evaluation.decision
    assert decision.outcome == "rejected"
    assert [(f.rule, f.code) for f in decision.rejections] == [
        ("postal-code-required", "address.postal_code_missing")]
    assert [(f.rule, f.code) for f in decision.holds] == [
        ("first-order-over-value", "fraud-review")]


def test_a_variable_can_be_compared_with_another():
    document = default_rule_set("validation")
    over = decide(document, facts(has_credit_limit=True, credit_remaining=Decimal("150"),
                                  order_total=Decimal("199.80")))
    assert [f.code for f in over.decision.holds] == ["credit"]
    entry = next(e for e in over.trace if e["rule"] == "credit-limit")
    assert entry["conditions"][1] == {
        "path": "/rules/3/conditions/all/1", "variable": "order_total",
        "operator": "greater_than_variable", "value": "credit_remaining", "fact": "199.80",
        "held": True}
    within = decide(document, facts(has_credit_limit=True, credit_remaining=Decimal("500")))
    assert within.decision.outcome == "validated"


def test_time_rules_use_the_evaluation_time_not_the_wall_clock():
    document = {"rules": [{"name": "stale", "conditions": {
        "name": "created_at", "operator": "older_than_hours", "value": 48},
        "actions": [{"name": "hold", "params": {"queue": "stale", "reason": "old"}}]}]}
    order = facts(created_at=NOW - timedelta(hours=50))
    assert decide(document, order, at=NOW).fired == ["stale"]
    assert decide(document, order, at=NOW - timedelta(hours=5)).fired == []


def test_a_rule_that_fails_while_running_is_an_explicit_error_naming_it():
    document = default_rule_set("validation")
    broken = facts(customer_is_new=True, order_total=None)  # a fact that was not computed
    with pytest.raises(RuleEvaluationError) as failed:
        decide(document, broken)
    assert failed.value.rule == "first-order-over-value"
    assert failed.value.path == "/rules/5/conditions/all/1"
    assert "first-order-over-value" in str(failed.value)
    # what ran before the failure is kept for the explanation, the failing rule last
    assert [entry["rule"] for entry in failed.value.trace][-2:] == [
        "price-floor", "first-order-over-value"]
    assert failed.value.trace[-1]["conditions"] == [{
        "path": "/rules/5/conditions/all/0", "variable": "customer_is_new",
        "operator": "is_true", "value": None, "fact": True, "held": True}]


def test_a_rule_set_that_does_not_pass_its_checks_is_never_compiled():
    with pytest.raises(ValueError) as refused:
        compile_rule_set(VALIDATION, {"rules": []})
    assert refused.value.problems[0].path == "/rules"


def test_the_compiled_evaluator_decides_exactly_as_business_rules_run_all():
    # given the default rules without variable comparisons (run_all has none)
    document = copy.deepcopy(default_rule_set("validation"))
    document["rules"] = [rule for rule in document["rules"]
                         if "_variable" not in str(rule["conditions"])]
    compiled = compile_rule_set(VALIDATION, document)
    chooser = random.Random(11)
    for _ in range(400):
        order = facts(
            channel=chooser.choice(["web", "marketplace", "erp", "olist"]),
            customer_is_new=chooser.random() < 0.3,
            payment_terms=chooser.choice(["card", "cod", "net30"]),
            currency=chooser.choice(["BRL", "USD", "JPY"]),
            order_total=Decimal(chooser.randint(1, 400000)) / 100,
            total_quantity=chooser.choice([1, 2, 150]),
            lowest_price_ratio=Decimal(chooser.randint(10, 120)) / 100,
            total_weight_kg=Decimal(chooser.randint(1, 600)) / 10,
            contains_hazmat=chooser.random() < 0.2,
            service_level=chooser.choice(["standard", "overnight"]),
            ship_to_country=chooser.choice(["BR", "BR", "US", "KP"]),
            ship_to_postal_code=chooser.choice(["01310-100", "1310", "01310100", ""]),
            has_postal_code=chooser.random() < 0.9,
        )
        ours = evaluate(compiled, order, NOW).decision
        theirs = ValidationDecision()
        run_all(document["rules"], VALIDATION.variables(order), VALIDATION.actions(theirs),
                stop_on_first_trigger=VALIDATION.stop_on_first_trigger)
        assert ([(f.code, f.message) for f in ours.rejections],
                [(f.code, f.message) for f in ours.holds]) == (
            [(f.code, f.message) for f in theirs.rejections],
            [(f.code, f.message) for f in theirs.holds]), order


def test_patterns_run_in_linear_time_so_a_rule_cannot_stall_the_service():
    document = {"rules": [{"name": "catastrophic-elsewhere", "conditions": {
        "name": "ship_to_postal_code", "operator": "matches_regex", "value": "^(a+)+$"},
        "actions": [{"name": "hold", "params": {"queue": "q", "reason": "r"}}]}]}
    # a backtracking engine takes longer than the age of the universe on this input
    evaluation = decide(document, facts(ship_to_postal_code="a" * 50_000 + "!"))
    assert evaluation.fired == []


def test_test_cases_are_checked_like_rules():
    document = copy.deepcopy(default_rule_set("validation"))
    document["tests"] = [
        {"name": "t", "facts": {"order_totl": 5, "order_total": "5", "created_at": "today"},
         "expect": {"outcome": "validated", "mood": "happy"}},
        {"name": "t", "facts": {}, "expect": {}},
    ]
    assert paths(check_rule_set(VALIDATION, document)) == {
        "/tests/0/facts/order_totl": "unknown variable",
        "/tests/0/facts/order_total": "must be a number",
        "/tests/0/facts/created_at": "must be an ISO 8601 time with a zone",
        "/tests/0/expect/mood": "not part of a decision; use outcome, holds, rejections",
        "/tests/1/name": "the name 't' is already used",
        "/tests/1/expect": "must say what the decision is expected to be",
    }


def test_the_shipped_test_cases_pass_and_a_wrong_expectation_is_named():
    from rules.testing import run_tests

    document = default_rule_set("validation")
    compiled = compile_rule_set(VALIDATION, document)

    def decide_facts(order_facts):
        return evaluate(compiled, order_facts, order_facts.created_at).decision

    assert run_tests(VALIDATION, decide_facts, document["tests"]) == []
    wrong = [{"name": "credit", "facts": {"has_credit_limit": True, "credit_remaining": 10},
              "expect": {"outcome": "validated"}}]
    assert run_tests(VALIDATION, decide_facts, wrong) == [(
        "/tests/0/expect/outcome",
        "test 'credit': expected 'validated', the rules decided 'on_hold'")]


def test_the_exceptions_stage_is_a_priority_list_whose_shipped_tests_pass():
    from rules.stages.exceptions import EXCEPTIONS
    from rules.testing import facts_for, run_tests

    document = default_rule_set("exceptions")
    compiled = compile_rule_set(EXCEPTIONS, document)

    def decide_facts(event_facts):
        return evaluate(compiled, event_facts, event_facts.occurred_at).decision

    assert run_tests(EXCEPTIONS, decide_facts, document["tests"]) == []
    # the first rule that fires decides: a third payment failure never reaches the catch-all
    evaluation = evaluate(compiled, facts_for(EXCEPTIONS, {"attempts": 3}), NOW)
    assert evaluation.fired == ["payment-give-up"]
    assert [entry["rule"] for entry in evaluation.trace] == [
        "rule-error", "payment-retry", "payment-give-up"]


def test_values_that_would_fail_at_run_time_or_overflow_a_record_are_refused_on_save():
    def problems_of(conditions, actions=None, tests=None):
        document = {"rules": [{"name": "r", "conditions": conditions, "actions": actions or [
            {"name": "hold", "params": {"queue": "q", "reason": "r"}}]}]}
        if tests is not None:
            document["tests"] = tests
        return paths(check_rule_set(VALIDATION, document))

    plain_condition = {"name": "channel", "operator": "equal_to", "value": "web"}
    assert problems_of(plain_condition, [{"name": "hold", "params": {
        "queue": "q" * 65, "reason": "r" * 501}}]) == {
        "/rules/0/actions/0/params/queue": "at most 64 characters",
        "/rules/0/actions/0/params/reason": "at most 500 characters"}
    assert problems_of({"name": "order_total", "operator": "greater_than",
                        "value": 10**400}) == {"/rules/0/conditions/value": "must be a number"}
    assert problems_of({"name": "created_at", "operator": "older_than_hours", "value": 1e11}) \
        == {"/rules/0/conditions/value": "must be between 0 and 1000000 hours"}
    assert problems_of({"name": "has_postal_code", "operator": "is_true", "value": False}) == {
        "/rules/0/conditions/value": "'is_true' takes no value: use null"}
    assert problems_of({"name": "skus", "operator": "contains_all", "value": [None]}) == {
        "/rules/0/conditions/value": "must be a non-empty list of texts or numbers"}
    assert problems_of(plain_condition, tests=[
        {"name": "t", "facts": {"order_total": 10**400}, "expect": {"holds": [1, "a"]}}]) == {
        "/tests/0/facts/order_total": "must be below 10^15",
        "/tests/0/expect/holds": "must be a list of texts"}
    assert problems_of(plain_condition, [{"name": "hold", "params": {
        "queue": "a\u0000b", "reason": "r"}}]) == {
        "/rules/0/actions/0/params/queue": "must be non-empty printable text"}


def _priority_stage() -> Stage:
    return Stage("priority", "test", OrderFacts, VALIDATION.actions, ValidationDecision,
                 stop_on_first_trigger=True, baseline=VALIDATION.baseline,
                 clock="created_at")


HOLD = [{"name": "hold", "params": {"queue": "q", "reason": "r"}}]


def test_a_rule_an_earlier_broader_rule_covers_is_refused_by_what_its_values_mean():
    # given a first-trigger stage where "over 2000" comes before "over 3000 from gold"
    document = {"rules": [
        {"name": "big", "conditions": {"name": "order_total", "operator": "greater_than",
                                       "value": 2000}, "actions": HOLD},
        {"name": "bigger", "conditions": {"all": [
            {"name": "order_total", "operator": "greater_than", "value": 3000},
            {"name": "customer_tier", "operator": "is_in", "value": ["gold"]}]},
         "actions": HOLD},
        {"name": "silver", "conditions": {"name": "customer_tier", "operator": "equal_to",
                                          "value": "silver"}, "actions": HOLD},
    ]}
    # then the second can never fire, the third can
    assert paths(check_rule_set(_priority_stage(), document)) == {
        "/rules/1": "can never fire: the earlier rule 'big' fires whenever it would, and "
                    "stops the evaluation first"}
    # and disabling the broad rule makes the narrow one reachable again
    document["rules"][0]["disabled"] = True
    assert check_rule_set(_priority_stage(), document) == []


def test_conditions_that_contradict_each_other_are_refused_at_the_condition():
    document = {"rules": [{"name": "never", "conditions": {"all": [
        {"name": "order_total", "operator": "greater_than", "value": 500},
        {"name": "customer_is_new", "operator": "is_true", "value": None},
        {"name": "order_total", "operator": "less_than", "value": 100}]}, "actions": HOLD}]}
    assert paths(check_rule_set(VALIDATION, document)) == {
        "/rules/0/conditions/all/2": "can never hold: no order meets this together with the "
                                     "other conditions of the rule"}


def test_overlapping_rules_of_a_first_trigger_stage_are_reported_with_an_example():
    from rules.checking import review_rule_set
    document = {"rules": [
        {"name": "new-customers", "conditions": {"name": "customer_is_new",
                                                 "operator": "is_true", "value": None},
         "actions": HOLD},
        {"name": "large", "conditions": {"name": "order_total", "operator": "greater_than",
                                         "value": 1000}, "actions": HOLD},
        {"name": "everything", "conditions": {"name": "customer_tier",
                                              "operator": "non_empty", "value": None},
         "actions": HOLD},
        {"name": "never-negative", "conditions": {"name": "order_total",
                                                  "operator": "less_than", "value": 0},
         "actions": HOLD},
    ]}
    # a catch-all after narrower rules is a fallback; the rule after it can never fire
    assert paths(check_rule_set(_priority_stage(), document)) == {"/rules/3": (
        "can never fire: the earlier rule 'everything' fires whenever it would, and stops the "
        "evaluation first")}
    del document["rules"][3]
    warnings = paths(review_rule_set(_priority_stage(), document))
    assert warnings == {"/rules/1/conditions": (
        "overlaps the earlier rule 'new-customers': both hold when order_total = 1001, "
        "customer_is_new = true, and only 'new-customers' acts; move this rule up if it "
        "should win")}
    assert review_rule_set(VALIDATION, document) == []  # every rule acts there


def test_a_value_no_option_of_its_variable_can_meet_is_refused():
    document = {"rules": [{"name": "r", "conditions": {"any": [
        {"name": "customer_tier", "operator": "starts_with", "value": "diam"},
        {"name": "customer_tier", "operator": "is_in", "value": ["gold", "bronze"]}]},
        "actions": HOLD}]}
    assert paths(check_rule_set(VALIDATION, document)) == {
        "/rules/0/conditions/any/0/value": "no option of 'customer_tier' (standard, silver, "
                                           "gold, platinum) starts with 'diam'",
        "/rules/0/conditions/any/1/value": "unknown option(s) bronze"}


def test_a_disabled_rule_is_kept_but_never_tried():
    document = default_rule_set("validation")
    document["rules"][5]["disabled"] = True  # first-order-over-value
    evaluation = decide(document, facts(customer_is_new=True, order_total=Decimal("2500")))
    assert evaluation.decision.outcome == "validated"
    assert "first-order-over-value" not in [entry["rule"] for entry in evaluation.trace]


def test_the_field_diff_names_moves_once_and_compares_rules_wherever_they_are():
    from engine.decisions.rulesets import field_changes
    old = default_rule_set("validation")
    new = copy.deepcopy(old)
    new["rules"].insert(0, new["rules"].pop(6))  # marketplace-no-hazmat to the top
    new["rules"][0]["conditions"]["all"][0]["value"] = "olist"
    new["rules"][3]["disabled"] = True  # restricted-destination, now fourth
    new["tests"][0]["expect"]["outcome"] = "on_hold"
    found = [(c.path, c.change, c.before, c.after, c.rule) for c in field_changes(old, new)]
    assert found == [
        ("/tests/0/expect/outcome", "changed", "validated", "on_hold", None),
        ("/rules/0", "moved", 6, 0, "marketplace-no-hazmat"),
        ("/rules/0/conditions/all/0/value", "changed", "marketplace", "olist",
         "marketplace-no-hazmat"),
        ("/rules/3/disabled", "added", None, True, "restricted-destination"),
    ]


def test_coverage_claims_only_what_it_can_prove():
    from rules.analysis import RuleCover
    variables = {v["name"]: v for v in VALIDATION.schema()["variables"]}

    def cover(conditions):
        return RuleCover(variables, conditions, "/rules/0/conditions")

    within = cover({"name": "order_total", "operator": "between", "value": [100, 200]})
    above = cover({"name": "order_total", "operator": "greater_than_or_equal_to", "value": 50})
    assert within.implies(above) and not above.implies(within)
    # any of two tiers is covered by "not standard nor silver"; a regex is opaque
    tiers = cover({"any": [
        {"name": "customer_tier", "operator": "equal_to", "value": "gold"},
        {"name": "customer_tier", "operator": "equal_to", "value": "platinum"}]})
    rich = cover({"name": "customer_tier", "operator": "is_not_in",
                  "value": ["standard", "silver"]})
    assert tiers.implies(rich)  # (the converse holds too, but a union is not compared)
    pattern = cover({"name": "ship_to_postal_code", "operator": "matches_regex",
                     "value": "^0"})
    postal = cover({"name": "ship_to_postal_code", "operator": "matches_regex",
                    "value": "^01"})
    assert not postal.implies(pattern) and pattern.implies(pattern)
    assert pattern.overlap(postal) is None  # they may overlap: nothing is claimed
    assert pattern.overlap(above) == {"order_total": 50}
    # a number other than 5 and "exactly 5" never meet; a flag cannot be both
    assert cover({"all": [
        {"name": "order_total", "operator": "equal_to", "value": 5},
        {"name": "order_total", "operator": "not_equal_to", "value": 5}]}).never_holds()
    assert cover({"all": [
        {"name": "customer_is_new", "operator": "is_true", "value": None},
        {"name": "customer_is_new", "operator": "is_false", "value": None}]}).never_holds()
    assert not cover({"all": [
        {"name": "order_total", "operator": "greater_than", "value": 5},
        {"name": "order_total", "operator": "not_equal_to", "value": 6}]}).never_holds()
