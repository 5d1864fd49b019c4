"""Evaluate a checked rule set over facts, fast and with a full explanation.

The rule set is compiled once: every comparison value is converted to its type ahead of
time and every operator looked up once. Each evaluation converts each fact it needs once.
The semantics are business-rules' own (`run_all`: `all` stops at the first condition that
fails, `any` at the first that holds, a first-trigger stage stops at the first rule that
fires); a differential test holds the two together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from business_rules.fields import FIELD_NO_INPUT
from business_rules.operators import BaseType

from rules.checking import RuleProblem, check_rule_set
from rules.stage import Decision, Stage, plain
from rules.types import EVALUATION_TIME, TYPES, VARIABLE_OPERATORS, compile_pattern

# Operators whose argument business-rules casts to the variable's type before comparing.
_CAST_INPUTS = frozenset({"text", "numeric", "datetime"})


class RuleSetError(ValueError):
    """The rule set did not pass its checks; it is never compiled or run."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the rule set")
        self.problems = problems


class RuleEvaluationError(RuntimeError):
    """A rule failed while it ran: the order must not go on as if it had been decided."""

    def __init__(self, rule: str, path: str, cause: Exception,
                 trace: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"rule {rule!r} failed at {path}: {type(cause).__name__}: {cause}")
        self.rule, self.path, self.cause = rule, path, cause
        self.trace = trace or []  # what ran before the failure, the failing rule last


@dataclass(frozen=True)
class _Leaf:
    number: int  # its place among the rule set's conditions: what a stored trace names
    path: str
    variable: str
    operator: str
    value: Any  # as written in the rule, for the trace


class _LeafFailed(Exception):
    def __init__(self, path: str, cause: Exception) -> None:
        super().__init__(path)
        self.path, self.cause = path, cause


# What a condition is compiled to: a test of the evaluation's facts that notes each leaf
# it tries (leaf, fact value, held) for the trace.
Seen = list[tuple[_Leaf, Any, bool]]
Check = Callable[["_Facts", Seen], bool]


@dataclass(frozen=True)
class _Rule:
    number: int  # its place among the rules compiled (disabled ones are not)
    name: str
    path: str
    check: Check
    actions: tuple[tuple[str, dict[str, Any]], ...]


@dataclass(frozen=True)
class CompiledRuleSet:
    stage: Stage[Any]
    rules: tuple[_Rule, ...]
    types: Mapping[str, type[BaseType]]  # variable name -> its rule type
    leaves: tuple[_Leaf, ...] = ()  # every condition, by number


@dataclass
class Evaluation:
    """The decision and how it came about: every rule tried, every condition seen."""

    decision: Decision
    rule_set: CompiledRuleSet
    tried: list[tuple[_Rule, bool, Seen]] = field(default_factory=list)

    @property
    def fired(self) -> list[str]:
        return [rule.name for rule, fired, _ in self.tried if fired]

    @property
    def trace(self) -> list[dict[str, Any]]:
        """Return, as JSON, each rule tried with the conditions it saw and its actions."""
        return _expanded(self.rule_set, self.stored_trace)

    @property
    def stored_trace(self) -> dict[str, Any]:
        """Return the trace as it is stored: what the rule set already says (names,
        conditions, actions) only by number, each fact once; `expand_traces` with the same
        rule set gives back `trace`."""
        facts: dict[str, Any] = {}
        tried: list[list[Any]] = []
        for rule, fired, seen in self.tried:
            steps: list[Any] = []
            for leaf, fact, held in seen:
                if leaf.variable not in facts:
                    facts[leaf.variable] = plain(fact)
                steps += (leaf.number, held)
            tried.append([rule.number, fired, steps])
        return {STORED_TRACE: 1, "facts": facts, "tried": tried}


# The key that marks a trace as stored (`Evaluation.stored_trace`); its value is the form's
# version.
STORED_TRACE = "stored_trace"


def expand_traces(rule_set: CompiledRuleSet | None, value: Any) -> Any:
    """Return `value` (a decision's trace, or anything holding traces, such as the
    candidates weighed with each one's rules) with every stored trace in it expanded to the
    full one (`Evaluation.trace`), by the rule set that made them. Full traces (recorded
    before traces were stored by number) are returned as they are."""
    if isinstance(value, list):
        return [expand_traces(rule_set, item) for item in value]
    if isinstance(value, dict):
        if STORED_TRACE in value:
            if rule_set is None:
                raise LookupError("a stored trace is expanded by the rule set that made it")
            return _expanded(rule_set, value)
        return {key: expand_traces(rule_set, item) for key, item in value.items()}
    return value


def _expanded(rule_set: CompiledRuleSet, stored: Mapping[str, Any]) -> list[dict[str, Any]]:
    facts = stored["facts"]
    expanded = []
    for rule_number, fired, steps in stored["tried"]:
        rule = rule_set.rules[rule_number]
        leaves = [(rule_set.leaves[number], held)
                  for number, held in zip(steps[::2], steps[1::2], strict=True)]
        expanded.append(
            {"rule": rule.name, "fired": fired,
             "conditions": [{"path": leaf.path, "variable": leaf.variable,
                             "operator": leaf.operator, "value": leaf.value,
                             "fact": facts[leaf.variable], "held": held}
                            for leaf, held in leaves],
             "actions": [{"name": name, "params": params} for name, params in rule.actions]
             if fired else []})
    return expanded


class _Facts:
    """The facts of one evaluation, each converted (as its rule type does) on first use."""

    __slots__ = ("facts", "types", "values", "typed")

    def __init__(self, facts: Any, types: Mapping[str, type[BaseType]]) -> None:
        self.facts, self.types = facts, types
        self.values: dict[str, Any] = {}
        self.typed: dict[str, BaseType] = {}

    def value(self, name: str) -> Any:
        """Return the fact as its rule type holds it (e.g. a number as a Decimal)."""
        found = self.values.get(name, _MISSING)
        if found is _MISSING:
            found = self.values[name] = _caster(self.types[name])(getattr(self.facts, name))
        return found

    def get(self, name: str) -> BaseType:
        """Return the fact wrapped in its rule type, for operators without a fast form."""
        typed = self.typed.get(name)
        if typed is None:
            typed = object.__new__(self.types[name])
            typed.value = self.value(name)  # what BaseType.__init__ does
            self.typed[name] = typed
        return typed


_MISSING = object()
_CASTERS: dict[type[BaseType], Callable[[Any], Any]] = {}


def _caster(kind: type[BaseType]) -> Callable[[Any], Any]:
    found = _CASTERS.get(kind)
    if found is None:
        found = _CASTERS[kind] = object.__new__(kind)._assert_valid_value_and_cast
    return found


# The commonest operators, on converted values, with business-rules' own semantics (its
# numeric comparisons allow an epsilon): no wrapper object per fact and no call through
# the type's operator method.
_EPSILON = Decimal("0.000001")
_FAST: dict[tuple[str, str], Callable[[Any], Callable[[Any], Any]]] = {
    ("numeric", "equal_to"): lambda arg: lambda v: abs(v - arg) <= _EPSILON,
    ("numeric", "not_equal_to"): lambda arg: lambda v: not abs(v - arg) <= _EPSILON,
    ("numeric", "greater_than"): lambda arg: lambda v: (v - arg) > _EPSILON,
    ("numeric", "less_than"): lambda arg: lambda v: (arg - v) > _EPSILON,
    ("numeric", "greater_than_or_equal_to"): lambda arg: lambda v: (v - arg) > _EPSILON
    or abs(v - arg) <= _EPSILON,
    ("numeric", "less_than_or_equal_to"): lambda arg: lambda v: (arg - v) > _EPSILON
    or abs(v - arg) <= _EPSILON,
    ("boolean", "is_true"): lambda arg: lambda v: v,
    ("boolean", "is_false"): lambda arg: lambda v: not v,
    ("string", "equal_to"): lambda arg: lambda v: v == arg,
    ("string", "not_equal_to"): lambda arg: lambda v: v != arg,
    ("string", "is_in"): lambda arg: lambda v: v in arg,
    ("string", "is_not_in"): lambda arg: lambda v: v not in arg,
}


def compile_rule_set(stage: Stage[Any], document: Any) -> CompiledRuleSet:
    """Check and compile a rule set.

    Raises:
        RuleSetError: with every problem, when the rule set does not pass its checks.
    """
    problems = check_rule_set(stage, document)
    if problems:
        raise RuleSetError(problems)
    types = {v["name"]: v["field_type"] for v in stage.schema()["variables"]}
    leaves: list[_Leaf] = []
    enabled = [(index, rule) for index, rule in enumerate(document["rules"])
               if not rule.get("disabled", False)]  # kept in the set, never tried
    rules = tuple(
        _Rule(number, rule["name"], f"/rules/{index}",
              _compile_condition(rule["conditions"], f"/rules/{index}/conditions", types,
                                 leaves),
              tuple((action["name"], dict(action.get("params") or {}))
                    for action in rule["actions"]))
        for number, (index, rule) in enumerate(enabled)
    )
    return CompiledRuleSet(stage, rules, {name: TYPES[kind] for name, kind in types.items()},
                           tuple(leaves))


def evaluate(compiled: CompiledRuleSet, facts: Any, at: datetime | None = None) -> Evaluation:
    """Run the rules over the facts and return the decision with its trace.

    Raises:
        RuleEvaluationError: a rule failed while running (the caller holds the order).
    """
    stage = compiled.stage
    decision = stage.decision()
    actions = stage.actions(decision)
    evaluation = Evaluation(decision, compiled)
    known = _Facts(facts, compiled.types)
    token = EVALUATION_TIME.set(at or datetime.now(UTC))
    try:
        for rule in compiled.rules:
            seen: Seen = []
            try:
                fired = rule.check(known, seen)
            except _LeafFailed as failure:
                evaluation.tried.append((rule, False, seen))
                raise RuleEvaluationError(rule.name, failure.path, failure.cause,
                                          evaluation.trace) from failure
            evaluation.tried.append((rule, fired, seen))
            if not fired:
                continue
            decision.rule = rule.name
            for name, params in rule.actions:
                getattr(actions, name)(**params)
            decision.rule = None
            if stage.stop_on_first_trigger:
                break
    finally:
        EVALUATION_TIME.reset(token)
    return evaluation


def evaluate_each(compiled: CompiledRuleSet, cases: Sequence[Any],
                  at: datetime | None = None) -> list[Evaluation]:
    """Evaluate the rules once per case (each candidate, each option), all at one time.

    Raises:
        RuleEvaluationError: a rule failed on one of the cases.
    """
    return [evaluate(compiled, facts, at) for facts in cases]


def _compile_condition(node: Mapping[str, Any], path: str, types: Mapping[str, str],
                       leaves: list[_Leaf]) -> Check:
    """Compile a condition; each leaf it holds is numbered and added to `leaves`."""
    for kind in ("all", "any"):
        if kind in node:
            members = tuple(_compile_condition(member, f"{path}/{kind}/{index}", types, leaves)
                            for index, member in enumerate(node[kind]))
            return _all(members) if kind == "all" else _any(members)
    name, operator, value = node["name"], node["operator"], node["value"]
    leaf = _Leaf(len(leaves), path, name, operator, value)
    leaves.append(leaf)
    rule_type = TYPES[types[name]]
    fast = _FAST.get((types[name], operator))
    if fast is not None:
        quick = fast(_argument(rule_type, operator, value))
        cast = _caster(rule_type)

        def check_fast(known: _Facts, seen: Seen) -> bool:
            try:
                fact = known.values.get(name, _MISSING)
                if fact is _MISSING:
                    fact = known.values[name] = cast(getattr(known.facts, name))
                held = bool(quick(fact))
            except Exception as error:  # business-rules raises AssertionError, among others
                raise _LeafFailed(path, error) from error
            seen.append((leaf, fact, held))
            return held

        return check_fast
    test = _comparison(rule_type, types[name], operator, value)

    def check(known: _Facts, seen: Seen) -> bool:
        try:
            typed = known.get(name)
            held = bool(test(typed, known))
        except Exception as error:  # business-rules raises AssertionError, among others
            raise _LeafFailed(path, error) from error
        seen.append((leaf, typed.value, held))
        return held

    return check


def _all(members: tuple[Check, ...]) -> Check:
    def check(known: _Facts, seen: Seen) -> bool:
        for member in members:
            if not member(known, seen):
                return False
        return True

    return check


def _any(members: tuple[Check, ...]) -> Check:
    def check(known: _Facts, seen: Seen) -> bool:
        for member in members:
            if member(known, seen):
                return True
        return False

    return check


def _comparison(kind: type[BaseType], type_name: str, operator: str,
                value: Any) -> Callable[[Any, _Facts], bool]:
    """Return a test of a typed fact, with the operator and its argument resolved now."""
    variable_operators = VARIABLE_OPERATORS.get(type_name, {})
    if operator in variable_operators:
        compare = getattr(kind, variable_operators[operator]).__wrapped__
        other = value
        return lambda typed, known: compare(typed, known.get(other).value)
    if operator in ("matches_regex", "does_not_match_regex"):
        pattern, wanted = compile_pattern(value), operator == "matches_regex"
        return lambda typed, known: (pattern.search(typed.value or "") is not None) is wanted
    method = getattr(kind, operator)
    operate = method.__wrapped__
    if method.input_type == FIELD_NO_INPUT:
        return lambda typed, known: operate(typed)
    argument = _argument(kind, operator, value)
    return lambda typed, known: operate(typed, argument)


def _argument(kind: type[BaseType], operator: str, value: Any) -> Any:
    """Return an operator's argument converted once, as business-rules converts it per call."""
    method = getattr(kind, operator)
    if method.input_type in _CAST_INPUTS and not getattr(method, "raw_argument", False):
        return _caster(kind)(value)
    return value


