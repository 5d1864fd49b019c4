"""Check a rule set against its stage before it is stored or run.

Every problem is reported at once, each with the JSON pointer of the offending node
(`/rules/2/conditions/all/0/operator`), so an editor can point at it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from difflib import get_close_matches
from typing import Any

from business_rules.fields import (
    FIELD_NO_INPUT,
    FIELD_NUMERIC,
    FIELD_SELECT,
    FIELD_SELECT_MULTIPLE,
    FIELD_TEXT,
)

from rules.analysis import RuleCover, text_test
from rules.stage import Stage
from rules.testing import check_tests
from rules.types import (
    FIELD_DATETIME,
    FIELD_NUMERIC_RANGE,
    FIELD_TEXT_LIST,
    FIELD_VARIABLE,
    compile_pattern,
)

MAX_RULES = 500
MAX_DEPTH = 16
MAX_HOURS = 10**6
MAX_NUMERIC_PARAM = 10**6
# Action params that become record keys (a hold's queue, a reason code) are short.
SHORT_PARAMS = frozenset({"queue", "code", "recipient"})
SHORT_TEXT, LONG_TEXT = 64, 500
PATTERN_OPERATORS = frozenset({"matches_regex", "does_not_match_regex"})
# Text operators that no option of a variable may fail all of (it could never hold).
TEXT_MATCHES = {"starts_with": "starts with", "ends_with": "ends with",
                "contains": "contains", "equal_to_case_insensitive": "equals",
                "matches_regex": "matches"}


@dataclass(frozen=True)
class RuleProblem:
    path: str
    message: str


class _Checker:
    def __init__(self, stage: Stage[Any]) -> None:
        schema = stage.schema()
        self.stage = stage
        self.variables = {v["name"]: v for v in schema["variables"]}
        self.operators = {kind: {o["name"]: o for o in ops}
                          for kind, ops in schema["variable_type_operators"].items()}
        self.actions = {a["name"]: a for a in schema["actions"]}
        self.problems: list[RuleProblem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(RuleProblem(path, message))

    def check(self, document: Any) -> list[RuleProblem]:
        if not isinstance(document, Mapping):
            self.add("", "a rule set is an object with a list of rules")
            return self.problems
        for key in document:
            if key not in ("rules", "description", "tests"):
                self.add(f"/{_escape(key)}", "unknown field")
        if "tests" in document:
            for path, message in check_tests(self.stage, document["tests"]):
                self.add(path, message)
        rules = document.get("rules")
        if not isinstance(rules, list) or not rules:
            self.add("/rules", "must be a non-empty list of rules")
            return self.problems
        if len(rules) > MAX_RULES:
            self.add("/rules", f"at most {MAX_RULES} rules")
        names: dict[str, int] = {}
        for index, rule in enumerate(rules):
            self.rule(rule, f"/rules/{index}", names, index)
        if not self.problems:
            self.coverage(rules)
        return self.problems

    def rule(self, rule: Any, path: str, names: dict[str, int], index: int) -> None:
        if not isinstance(rule, Mapping):
            self.add(path, "a rule is an object with name, conditions and actions")
            return
        for key in rule:
            if key not in ("name", "description", "conditions", "actions", "disabled"):
                self.add(f"{path}/{_escape(key)}", "unknown field")
        if not isinstance(rule.get("disabled", False), bool):
            self.add(f"{path}/disabled", "must be true or false")
        name = rule.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= 100 or not _clean(name):
            self.add(f"{path}/name", "every rule needs a name of 1 to 100 printable characters")
        elif name in names:
            self.add(f"{path}/name", f"the name {name!r} is already used by rule {names[name]}")
        else:
            names[name] = index
        if "conditions" not in rule:
            self.add(f"{path}/conditions", "missing")
        else:
            self.conditions(rule["conditions"], f"{path}/conditions", 0)
        before = len(self.problems)
        self.actions_of(rule.get("actions"), f"{path}/actions")
        if self.stage.check_actions is not None and len(self.problems) == before:
            for index, message in self.stage.check_actions(rule.get("conditions"),
                                                           rule["actions"]):
                self.add(f"{path}/actions/{index}/name", message)

    def conditions(self, node: Any, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.add(path, f"conditions nest at most {MAX_DEPTH} deep")
            return
        if not isinstance(node, Mapping):
            self.add(path, "a condition is an object")
            return
        groups = [key for key in ("all", "any") if key in node]
        if groups:
            if len(node) != 1:
                self.add(path, "all or any must be the only key of its object")
                return
            members = node[groups[0]]
            if not isinstance(members, list) or not members:
                self.add(f"{path}/{groups[0]}", "must be a non-empty list of conditions")
                return
            for index, member in enumerate(members):
                self.conditions(member, f"{path}/{groups[0]}/{index}", depth + 1)
            return
        self.leaf(node, path)

    def leaf(self, node: Mapping[str, Any], path: str) -> None:
        for key in node:
            if key not in ("name", "operator", "value"):
                self.add(f"{path}/{_escape(key)}", "unknown field")
        name, operator = node.get("name"), node.get("operator")
        variable = self.variables.get(name) if isinstance(name, str) else None
        if variable is None:
            self.add(f"{path}/name", f"unknown variable {name!r}" + _suggest(name, self.variables))
            return
        kind = variable["field_type"]
        known = self.operators[kind]
        if not isinstance(operator, str) or operator not in known:
            self.add(f"{path}/operator", f"{operator!r} is not an operator for {kind} "
                     f"variable {name!r}; use one of: {', '.join(sorted(known))}")
            return
        if "value" not in node:
            self.add(f"{path}/value", "missing (use null for operators that take no value)")
            return
        self.value(node["value"], known[operator]["input_type"], operator, variable,
                   f"{path}/value")

    def value(self, value: Any, input_type: str, operator: str, variable: Mapping[str, Any],
              path: str) -> None:
        options = variable.get("options") or []
        if input_type == FIELD_NO_INPUT:
            if value is not None:
                self.add(path, f"{operator!r} takes no value: use null")
            return
        if input_type == FIELD_TEXT:
            if not isinstance(value, str) or not _clean(value) or len(value) > LONG_TEXT:
                self.add(path, f"must be printable text of at most {LONG_TEXT} characters")
            elif operator in PATTERN_OPERATORS:
                try:
                    compile_pattern(value)
                except ValueError as error:
                    self.add(path, str(error))
            elif options and operator in ("equal_to", "not_equal_to") and value not in options:
                self.add(path, f"must be one of {', '.join(options)}")
            elif options and operator in TEXT_MATCHES and not any(
                    text_test(operator, value)(option) for option in options):
                self.add(path, f"no option of {variable['name']!r} "
                               f"({', '.join(options)}) {TEXT_MATCHES[operator]} {value!r}")
        elif input_type == FIELD_NUMERIC:
            if not _is_number(value):
                self.add(path, "must be a number")
            elif operator.endswith("_hours") and not 0 <= value <= MAX_HOURS:
                self.add(path, f"must be between 0 and {MAX_HOURS} hours")
        elif input_type == FIELD_TEXT_LIST:
            if not isinstance(value, list) or not value or not all(
                    isinstance(item, str) for item in value):
                self.add(path, "must be a non-empty list of texts")
            elif options and (unknown := [item for item in value if item not in options]):
                self.add(path, f"unknown option(s) {', '.join(unknown)}")
        elif input_type == FIELD_NUMERIC_RANGE:
            if not (isinstance(value, list) and len(value) == 2
                    and all(_is_number(bound) for bound in value)):
                self.add(path, "must be [low, high], two numbers")
            elif value[0] > value[1]:
                self.add(path, "low must not be above high")
        elif input_type == FIELD_DATETIME:
            if not _is_aware_time(value):
                self.add(path, "must be an ISO 8601 time with a zone, e.g. "
                               "2026-11-22T10:00:00+00:00")
        elif input_type == FIELD_VARIABLE:
            other = self.variables.get(value) if isinstance(value, str) else None
            if other is None:
                self.add(path, f"unknown variable {value!r}" + _suggest(value, self.variables))
            elif other["field_type"] != variable["field_type"]:
                self.add(path, f"{value!r} is a {other['field_type']} variable, "
                               f"not {variable['field_type']}")
            elif other["name"] == variable["name"]:
                self.add(path, "compares a variable with itself")
        elif input_type == FIELD_SELECT:
            if isinstance(value, list | dict) or value is None:
                self.add(path, "must be a single value")
        elif input_type == FIELD_SELECT_MULTIPLE and (
                not isinstance(value, list) or not value
                or not all(isinstance(item, str) or _is_number(item) for item in value)):
            self.add(path, "must be a non-empty list of texts or numbers")

    def actions_of(self, actions: Any, path: str) -> None:
        if not isinstance(actions, list) or not actions:
            self.add(path, "must be a non-empty list of actions")
            return
        for index, action in enumerate(actions):
            where = f"{path}/{index}"
            if not isinstance(action, Mapping):
                self.add(where, "an action is an object with name and params")
                continue
            for key in action:
                if key not in ("name", "params"):
                    self.add(f"{where}/{_escape(key)}", "unknown field")
            name = action.get("name")
            known = self.actions.get(name) if isinstance(name, str) else None
            if known is None:
                self.add(f"{where}/name",
                         f"unknown action {name!r}" + _suggest(name, self.actions))
                continue
            declared = {param["name"]: param["fieldType"] for param in known["params"] or []}
            params = action.get("params", {})
            if not isinstance(params, Mapping):
                self.add(f"{where}/params", "must be an object")
                continue
            for missing in sorted(set(declared) - set(params)):
                self.add(f"{where}/params/{missing}", "missing")
            for extra in sorted(set(params) - set(declared)):
                self.add(f"{where}/params/{_escape(extra)}", f"{name!r} takes no such param")
            for param, field_type in declared.items():
                if param in params:
                    self.param(params[param], field_type, f"{where}/params/{param}")

    def param(self, value: Any, field_type: str, path: str) -> None:
        if field_type == FIELD_NUMERIC:
            if not _is_number(value):
                self.add(path, "must be a number")
            elif not 0 <= value <= MAX_NUMERIC_PARAM:
                self.add(path, f"must be between 0 and {MAX_NUMERIC_PARAM}")
            return
        limit = SHORT_TEXT if path.rsplit("/", 1)[-1] in SHORT_PARAMS else LONG_TEXT
        if not (isinstance(value, str) and value.strip() and _clean(value)):
            self.add(path, "must be non-empty printable text")
        elif len(value) > limit:
            self.add(path, f"at most {limit} characters")

    def coverage(self, rules: list[Mapping[str, Any]]) -> None:
        """Flag rules that can never hold, and (first-trigger stages) rules that an earlier
        rule always pre-empts: whenever the later one would hold, the earlier holds first
        and stops the evaluation."""
        covers = _covers(self.variables, rules)
        needs = [_requirements(rule["conditions"]) for rule in rules]
        for later, cover in covers.items():
            if cover.never_holds():
                where = cover.parts[0].empty_at if len(cover.parts) == 1 else None
                self.add(where or f"/rules/{later}/conditions",
                         "can never hold: no order meets this together with the other "
                         "conditions of the rule")
                continue
            if not self.stage.stop_on_first_trigger:
                continue
            for earlier in (index for index in covers if index < later):
                if needs[earlier] <= needs[later] or cover.implies(covers[earlier]):
                    self.add(f"/rules/{later}",
                             f"can never fire: the earlier rule {rules[earlier]['name']!r} "
                             "fires whenever it would, and stops the evaluation first")
                    break


def check_rule_set(stage: Stage[Any], document: Any) -> list[RuleProblem]:
    """Return every problem of a rule set for this stage (none: it may be stored and run)."""
    return _Checker(stage).check(document)


def review_rule_set(stage: Stage[Any], document: Any) -> list[RuleProblem]:
    """Return what an analyst should look at in a rule set that passes its checks.

    In a first-trigger stage: two rules that both hold for some orders, where neither
    always holds when the other does (a catch-all after a narrower rule is not flagged).
    Only the earlier of the two acts.
    """
    if not stage.stop_on_first_trigger or check_rule_set(stage, document):
        return []
    variables = {v["name"]: v for v in stage.schema()["variables"]}
    rules = document["rules"]
    covers = _covers(variables, rules)
    warnings = []
    for later, cover in covers.items():
        for earlier in (index for index in covers if index < later):
            if covers[earlier].implies(cover):
                continue  # the later rule is a fallback for what the earlier leaves
            example = covers[earlier].overlap(cover)
            if example is None:
                continue
            shown = ", ".join(f"{name} = {_shown(value)}" for name, value in example.items())
            name = rules[earlier]["name"]
            warnings.append(RuleProblem(
                f"/rules/{later}/conditions",
                f"overlaps the earlier rule {name!r}: both hold"
                + (f" when {shown}" if shown else " for some orders")
                + f", and only {name!r} acts; move this rule up if it should win"))
    return warnings


def _covers(variables: Mapping[str, Any],
            rules: list[Mapping[str, Any]]) -> dict[int, RuleCover]:
    """Return what each enabled rule covers, by its index."""
    return {index: RuleCover(variables, rule["conditions"], f"/rules/{index}/conditions")
            for index, rule in enumerate(rules) if not rule.get("disabled", False)}


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _requirements(conditions: Mapping[str, Any]) -> frozenset[str]:
    """Return the conditions a rule needs all of, as canonical JSON texts."""
    members = conditions["all"] if "all" in conditions else [conditions]
    return frozenset(json.dumps(member, sort_keys=True) for member in members)


def _is_number(value: Any) -> bool:
    """Tell whether a JSON value is a number a rule can use (finite, below 10^15)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return abs(value) < 10**15


def _clean(text: str) -> bool:
    return not any(char < " " or "\ud800" <= char <= "\udfff" for char in text)


def _is_aware_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _escape(key: object) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _suggest(name: object, known: Mapping[str, Any]) -> str:
    if not isinstance(name, str):
        return ""
    close = get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
