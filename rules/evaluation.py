"""Evaluate a checked rule set over facts, fast and with a full explanation.

The rule set is compiled once: every comparison value is converted to its type ahead of
time and every operator looked up once. Each evaluation converts each fact it needs once.
The semantics are business-rules' own (`run_all`: `all` stops at the first condition that
fails, `any` at the first that holds, a first-trigger stage stops at the first rule that
fires); a differential test holds the two together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from business_rules.fields import FIELD_NO_INPUT
from business_rules.operators import BaseType

from rules.checking import RuleProblem, check_rule_set
from rules.stage import Decision, Stage, plain
from rules.types import EVALUATION_TIME, TYPES, VARIABLE_OPERATORS

# Operators whose argument business-rules casts to the variable's type before comparing.
_CAST_INPUTS = frozenset({"text", "numeric", "datetime"})


class RuleSetError(ValueError):
    """The rule set did not pass its checks; it is never compiled or run."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the rule set")
        self.problems = problems


class RuleEvaluationError(RuntimeError):
    """A rule failed while it ran: the order must not go on as if it had been decided."""

    def __init__(self, rule: str, path: str, cause: Exception) -> None:
        super().__init__(f"rule {rule!r} failed at {path}: {type(cause).__name__}: {cause}")
        self.rule, self.path, self.cause = rule, path, cause


@dataclass(frozen=True)
class _Leaf:
    path: str
    variable: str
    type_name: str
    operator: str
    value: Any  # as written in the rule, for the trace
    test: Callable[[Any, _Facts], bool]


@dataclass(frozen=True)
class _Group:
    kind: str  # "all" or "any"
    members: tuple[_Leaf | _Group, ...]


@dataclass(frozen=True)
class _Rule:
    name: str
    path: str
    condition: _Leaf | _Group
    actions: tuple[tuple[str, dict[str, Any]], ...]


@dataclass(frozen=True)
class CompiledRuleSet:
    stage: Stage[Any]
    rules: tuple[_Rule, ...]
    types: Mapping[str, str]  # variable name -> type name


@dataclass
class Evaluation:
    """The decision and how it came about: every rule tried, every condition seen."""

    decision: Decision
    trace: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fired(self) -> list[str]:
        return [entry["rule"] for entry in self.trace if entry["fired"]]


class _Facts:
    """The facts of one evaluation, each converted to its rule type on first use."""

    def __init__(self, facts: Any, types: Mapping[str, str]) -> None:
        self.facts, self.types = facts, types
        self.typed: dict[str, BaseType] = {}

    def get(self, name: str) -> BaseType:
        typed = self.typed.get(name)
        if typed is None:
            typed = self.typed[name] = TYPES[self.types[name]](getattr(self.facts, name))
        return typed


def compile_rule_set(stage: Stage[Any], document: Any) -> CompiledRuleSet:
    """Check and compile a rule set.

    Raises:
        RuleSetError: with every problem, when the rule set does not pass its checks.
    """
    problems = check_rule_set(stage, document)
    if problems:
        raise RuleSetError(problems)
    types = {v["name"]: v["field_type"] for v in stage.schema()["variables"]}
    rules = tuple(
        _Rule(rule["name"], f"/rules/{index}",
              _compile_condition(rule["conditions"], f"/rules/{index}/conditions", types),
              tuple((action["name"], dict(action.get("params") or {}))
                    for action in rule["actions"]))
        for index, rule in enumerate(document["rules"])
    )
    return CompiledRuleSet(stage, rules, types)


def evaluate(compiled: CompiledRuleSet, facts: Any, at: datetime | None = None) -> Evaluation:
    """Run the rules over the facts and return the decision with its trace.

    Raises:
        RuleEvaluationError: a rule failed while running (the caller holds the order).
    """
    stage = compiled.stage
    decision = stage.decision()
    actions = stage.actions(decision)
    evaluation = Evaluation(decision)
    known = _Facts(facts, compiled.types)
    token = EVALUATION_TIME.set(at or datetime.now(UTC))
    try:
        for rule in compiled.rules:
            seen: list[dict[str, Any]] = []
            try:
                fired = _holds(rule.condition, known, seen)
            except Exception as error:  # business-rules raises AssertionError, among others
                raise RuleEvaluationError(rule.name, seen[-1]["path"] if seen else rule.path,
                                          error) from error
            entry: dict[str, Any] = {"rule": rule.name, "fired": fired, "conditions": seen,
                                     "actions": []}
            evaluation.trace.append(entry)
            if not fired:
                continue
            decision.rule = rule.name
            for name, params in rule.actions:
                getattr(actions, name)(**params)
                entry["actions"].append({"name": name, "params": params})
            decision.rule = None
            if stage.stop_on_first_trigger:
                break
    finally:
        EVALUATION_TIME.reset(token)
    return evaluation


def _holds(node: _Leaf | _Group, known: _Facts, seen: list[dict[str, Any]]) -> bool:
    if isinstance(node, _Group):
        if node.kind == "all":
            return all(_holds(member, known, seen) for member in node.members)
        return any(_holds(member, known, seen) for member in node.members)
    entry = {"path": node.path, "variable": node.variable, "operator": node.operator,
             "value": node.value}
    seen.append(entry)
    typed = known.get(node.variable)
    entry["fact"] = plain(typed.value)
    held = bool(node.test(typed, known))
    entry["held"] = held
    return held


def _compile_condition(node: Mapping[str, Any], path: str,
                       types: Mapping[str, str]) -> _Leaf | _Group:
    for kind in ("all", "any"):
        if kind in node:
            return _Group(kind, tuple(
                _compile_condition(member, f"{path}/{kind}/{index}", types)
                for index, member in enumerate(node[kind])))
    name, operator, value = node["name"], node["operator"], node["value"]
    type_name = types[name]
    return _Leaf(path, name, type_name, operator, value,
                 _comparison(TYPES[type_name], type_name, operator, value))


def _comparison(kind: type[BaseType], type_name: str, operator: str,
                value: Any) -> Callable[[Any, _Facts], bool]:
    """Return a test of a typed fact, with the operator and its argument resolved now."""
    variable_operators = VARIABLE_OPERATORS.get(type_name, {})
    if operator in variable_operators:
        plain = getattr(kind, variable_operators[operator]).__wrapped__
        other = value
        return lambda typed, known: plain(typed, known.get(other).value)
    method = getattr(kind, operator)
    plain = method.__wrapped__
    if method.input_type == FIELD_NO_INPUT:
        return lambda typed, known: plain(typed)
    argument = value
    if method.input_type in _CAST_INPUTS and not getattr(method, "raw_argument", False):
        argument = object.__new__(kind)._assert_valid_value_and_cast(value)
    return lambda typed, known: plain(typed, argument)


