"""Reason about what rule conditions cover: can a rule hold at all, do two rules overlap,
does one always hold when another does.

Conditions are expanded into alternatives (`any` of `all`s); each alternative constrains
variables one by one. Numbers become intervals (with the evaluator's epsilon), flags a
value, texts a set of allowed and refused values (finite when the variable declares its
options). An operator this module does not model is kept as it is written: it may hold,
and it implies only itself, so every claim made here is certain, never a guess.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from rules.types import compile_pattern

EPSILON = Decimal("0.000001")  # the evaluator's tolerance for numeric comparisons
MAX_ALTERNATIVES = 64  # beyond this many, a rule is not analysed (nothing is claimed)

_LOWER = {"greater_than": (EPSILON, True), "greater_than_or_equal_to": (-EPSILON, False)}
_UPPER = {"less_than": (-EPSILON, True), "less_than_or_equal_to": (EPSILON, False)}


@dataclass(frozen=True)
class Leaf:
    path: str
    name: str
    operator: str
    value: Any

    @property
    def key(self) -> str:
        return json.dumps([self.name, self.operator, self.value], sort_keys=True, default=str)


Alternative = tuple[Leaf, ...]


def alternatives(conditions: Mapping[str, Any], path: str) -> list[Alternative] | None:
    """Return the conditions as alternatives, each a conjunction of leaves (None: too many)."""
    for kind in ("all", "any"):
        if kind in conditions:
            parts = []
            for index, member in enumerate(conditions[kind]):
                found = alternatives(member, f"{path}/{kind}/{index}")
                if found is None:
                    return None
                parts.append(found)
            if kind == "any":
                merged = [alternative for part in parts for alternative in part]
                return merged if len(merged) <= MAX_ALTERNATIVES else None
            product: list[Alternative] = [()]
            for part in parts:
                product = [left + right for left in product for right in part]
                if len(product) > MAX_ALTERNATIVES:
                    return None
            return product
    return [(Leaf(path, conditions["name"], conditions["operator"], conditions.get("value")),)]


@dataclass
class _Numbers:
    low: Decimal | None = None
    low_open: bool = False
    high: Decimal | None = None
    high_open: bool = False
    excluded: list[tuple[Decimal, Decimal]] = field(default_factory=list)

    def narrow(self, low: Decimal | None, low_open: bool, high: Decimal | None,
               high_open: bool) -> None:
        if low is not None and (self.low is None or low > self.low
                                or (low == self.low and low_open)):
            self.low, self.low_open = low, low_open
        if high is not None and (self.high is None or high < self.high
                                 or (high == self.high and high_open)):
            self.high, self.high_open = high, high_open

    def empty(self) -> bool:
        if self.low is not None and self.high is not None and (
                self.low > self.high
                or (self.low == self.high and (self.low_open or self.high_open))):
            return True
        # an interval inside a refused band is empty too
        return any(self._within(start, end) for start, end in self.excluded)

    def _within(self, start: Decimal, end: Decimal) -> bool:
        return (self.low is not None and self.high is not None
                and start <= self.low and self.high <= end)

    def inside(self, low: Decimal | None, low_open: bool, high: Decimal | None,
               high_open: bool) -> bool:
        """Tell whether every value allowed here lies in the given interval."""
        if low is not None and (self.low is None or self.low < low
                                or (self.low == low and low_open and not self.low_open)):
            return False
        return not (high is not None and (
            self.high is None or self.high > high
            or (self.high == high and high_open and not self.high_open)))

    def example(self) -> Decimal | None:
        """Return a round value inside the interval (None: no bound to show)."""
        if self.low is None and self.high is None:
            return None
        if self.low is not None:
            guess = self.low.to_integral_value(rounding=ROUND_CEILING)
            if guess == self.low and self.low_open:
                guess += 1
        else:
            assert self.high is not None
            guess = self.high.to_integral_value(rounding=ROUND_FLOOR)
            if guess == self.high and self.high_open:
                guess -= 1
        if self._holds(guess):
            return guess
        assert self.low is not None and self.high is not None
        return ((self.low + self.high) / 2).normalize()

    def _holds(self, value: Decimal) -> bool:
        above = self.low is None or value > self.low or (value == self.low
                                                         and not self.low_open)
        below = self.high is None or value < self.high or (value == self.high
                                                           and not self.high_open)
        return above and below and not any(start <= value <= end
                                           for start, end in self.excluded)


def _number(value: Any) -> Decimal:
    return Decimal(str(value))


@dataclass
class _Texts:
    allowed: frozenset[str] | None  # None: any text
    refused: set[str] = field(default_factory=set)

    def keep(self, values: Iterable[str]) -> None:
        kept = frozenset(values)
        self.allowed = kept if self.allowed is None else self.allowed & kept

    def possible(self) -> frozenset[str] | None:
        return None if self.allowed is None else self.allowed - self.refused

    def empty(self) -> bool:
        possible = self.possible()
        return possible is not None and not possible


def text_test(operator: str, value: Any) -> Any:
    """Return a test of one text for string operators that can be applied to options."""
    if operator == "equal_to":
        return lambda text: text == value
    if operator == "not_equal_to":
        return lambda text: text != value
    if operator == "is_in":
        return lambda text: text in value
    if operator == "is_not_in":
        return lambda text: text not in value
    if operator == "non_empty":
        return lambda text: bool(text)
    if operator == "starts_with":
        return lambda text: text.startswith(value)
    if operator == "ends_with":
        return lambda text: text.endswith(value)
    if operator == "contains":
        return lambda text: value in text
    if operator == "equal_to_case_insensitive":
        return lambda text: text.lower() == str(value).lower()
    if operator in ("matches_regex", "does_not_match_regex"):
        pattern, wanted = compile_pattern(value), operator == "matches_regex"
        return lambda text: (pattern.search(text) is not None) is wanted
    return None


class Constraints:
    """What one alternative says about each variable it names."""

    def __init__(self, variables: Mapping[str, Mapping[str, Any]]) -> None:
        self.variables = variables
        self.numbers: dict[str, _Numbers] = {}
        self.flags: dict[str, bool | None] = {}  # None: both required, impossible
        self.texts: dict[str, _Texts] = {}
        self.opaque: set[str] = set()  # leaves not modelled, by key
        self.opaque_by_name: dict[str, set[str]] = {}
        self.empty_at: str | None = None  # the leaf that made it impossible
        self.leaves: list[Leaf] = []

    @classmethod
    def of(cls, variables: Mapping[str, Mapping[str, Any]],
           alternative: Alternative) -> Constraints:
        constraints = cls(variables)
        for leaf in alternative:
            constraints.add(leaf)
        return constraints

    def add(self, leaf: Leaf) -> None:
        self.leaves.append(leaf)
        kind = self.variables[leaf.name]["field_type"]
        handled = False
        if kind == "numeric":
            handled = self._add_number(leaf)
        elif kind == "boolean" and leaf.operator in ("is_true", "is_false"):
            wanted = leaf.operator == "is_true"
            current = self.flags.get(leaf.name, wanted)
            self.flags[leaf.name] = wanted if current == wanted else None
            handled = True
        elif kind == "string":
            handled = self._add_text(leaf)
        if not handled:
            self.opaque.add(leaf.key)
            self.opaque_by_name.setdefault(leaf.name, set()).add(leaf.key)
        if self.empty_at is None and self.empty():
            self.empty_at = leaf.path

    def _add_number(self, leaf: Leaf) -> bool:
        numbers = self.numbers.setdefault(leaf.name, _Numbers())
        operator, value = leaf.operator, leaf.value
        if operator in _LOWER:
            shift, is_open = _LOWER[operator]
            numbers.narrow(_number(value) + shift, is_open, None, False)
        elif operator in _UPPER:
            shift, is_open = _UPPER[operator]
            numbers.narrow(None, False, _number(value) + shift, is_open)
        elif operator == "equal_to":
            numbers.narrow(_number(value) - EPSILON, False, _number(value) + EPSILON, False)
        elif operator == "between":
            numbers.narrow(_number(value[0]) - EPSILON, False,
                           _number(value[1]) + EPSILON, False)
        elif operator == "not_equal_to":
            numbers.excluded.append((_number(value) - EPSILON, _number(value) + EPSILON))
        else:
            return False
        return True

    def _add_text(self, leaf: Leaf) -> bool:
        options = self.variables[leaf.name].get("options") or []
        operator, value = leaf.operator, leaf.value
        if options:  # a finite domain: every text operator becomes a choice of options
            try:
                test = text_test(operator, value)
            except ValueError:
                test = None
            if test is None:
                return False
            self._texts(leaf.name, options).keep(
                option for option in options if test(option))
            return True
        if operator not in ("equal_to", "is_in", "not_equal_to", "is_not_in", "non_empty"):
            return False
        texts = self._texts(leaf.name, options)
        if operator == "equal_to":
            texts.keep([value])
        elif operator == "is_in":
            texts.keep(value)
        elif operator == "not_equal_to":
            texts.refused.add(value)
        elif operator == "is_not_in":
            texts.refused.update(value)
        else:
            texts.refused.add("")
        return True

    def _texts(self, name: str, options: list[str]) -> _Texts:
        return self.texts.setdefault(name, _Texts(frozenset(options) if options else None))

    def surely_possible(self) -> bool:
        """Tell whether some facts certainly meet every constraint: none contradict, and
        each condition not modelled is the only one on its variable."""
        if self.empty():
            return False
        modelled = set(self.numbers) | set(self.flags) | set(self.texts)
        return all(len(keys) == 1 and name not in modelled
                   for name, keys in self.opaque_by_name.items())

    def empty(self) -> bool:
        """Tell whether no facts can meet every constraint."""
        return (any(numbers.empty() for numbers in self.numbers.values())
                or any(flag is None for flag in self.flags.values())
                or any(texts.empty() for texts in self.texts.values()))

    def merged(self, other: Alternative) -> Constraints:
        """Return these constraints and those of another alternative together."""
        both = Constraints(self.variables)
        for leaf in [*self.leaves, *other]:
            both.add(leaf)
        return both

    def implies(self, leaf: Leaf) -> bool:
        """Tell whether every case meeting these constraints meets the leaf too."""
        if self.empty() or leaf.key in self.opaque:
            return True
        kind = self.variables[leaf.name]["field_type"]
        operator, value = leaf.operator, leaf.value
        if kind == "boolean" and operator in ("is_true", "is_false"):
            return self.flags.get(leaf.name, "unset") == (operator == "is_true")
        if kind == "numeric" and leaf.name in self.numbers:
            numbers = self.numbers[leaf.name]
            if operator in _LOWER:
                shift, is_open = _LOWER[operator]
                return numbers.inside(_number(value) + shift, is_open, None, False)
            if operator in _UPPER:
                shift, is_open = _UPPER[operator]
                return numbers.inside(None, False, _number(value) + shift, is_open)
            if operator == "equal_to":
                return numbers.inside(_number(value) - EPSILON, False,
                                      _number(value) + EPSILON, False)
            if operator == "between":
                return numbers.inside(_number(value[0]) - EPSILON, False,
                                      _number(value[1]) + EPSILON, False)
            if operator == "not_equal_to":
                band = (_number(value) - EPSILON, _number(value) + EPSILON)
                return (band in numbers.excluded
                        or (numbers.high is not None and numbers.high < band[0])
                        or (numbers.low is not None and numbers.low > band[1]))
            return False
        options = self.variables[leaf.name].get("options") or []
        if kind == "string" and (leaf.name in self.texts or options):
            texts = self.texts.get(leaf.name) or _Texts(frozenset(options))
            possible = texts.possible()
            if possible is None:
                return self._implies_open_text(leaf)
            try:
                test = text_test(operator, value)
            except ValueError:
                return False
            return test is not None and all(test(text) for text in possible)
        return False

    def _implies_open_text(self, leaf: Leaf) -> bool:
        texts = self.texts[leaf.name]
        if leaf.operator == "not_equal_to":
            return leaf.value in texts.refused
        if leaf.operator == "is_not_in":
            return set(leaf.value) <= texts.refused
        if leaf.operator == "non_empty":
            return "" in texts.refused
        return False

    def example(self) -> dict[str, Any]:
        """Return values of the constrained variables that meet every constraint."""
        found: dict[str, Any] = {}
        for name, numbers in self.numbers.items():
            value = numbers.example()
            if value is not None:
                found[name] = value
        for name, flag in self.flags.items():
            found[name] = flag
        for name, texts in self.texts.items():
            possible = texts.possible()
            if possible:
                options = self.variables[name].get("options") or sorted(possible)
                found[name] = next(option for option in options if option in possible)
        return found


class RuleCover:
    """The cases in which one rule's conditions hold."""

    def __init__(self, variables: Mapping[str, Mapping[str, Any]],
                 conditions: Mapping[str, Any], path: str) -> None:
        found = alternatives(conditions, path)
        self.known = found is not None
        self.parts = [Constraints.of(variables, alternative) for alternative in found or []]
        self.possible = [part for part in self.parts if not part.empty()]

    def never_holds(self) -> bool:
        return self.known and not self.possible

    def implies(self, other: RuleCover) -> bool:
        """Tell whether the other rule holds whenever this one does."""
        if not (self.known and other.known):
            return False
        return all(any(all(part.implies(leaf) for leaf in alternative.leaves)
                       for alternative in other.parts)
                   for part in self.possible)

    def overlap(self, other: RuleCover) -> dict[str, Any] | None:
        """Return an example of facts for which both rules hold (None: none found)."""
        if not (self.known and other.known):
            return None
        for mine in self.possible:
            for theirs in other.possible:
                both = mine.merged(tuple(theirs.leaves))
                if both.surely_possible():
                    return both.example()
        return None
