"""Variable types and their operators: business-rules' own, plus those analysts expect.

They are business-rules types (subclasses, exported with `export_type`), not a fork: rule
sets written for business-rules run unchanged, and `business_rules.engine.run_all` runs
ours too, except the variable-to-variable comparisons (`*_variable`), which only our
evaluator resolves. The extra input kinds below tell an editor what value an operator takes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import re2
from business_rules.fields import (
    FIELD_NO_INPUT,
    FIELD_NUMERIC,
    FIELD_SELECT,
    FIELD_SELECT_MULTIPLE,
    FIELD_TEXT,
)
from business_rules.operators import (
    BaseType,
    BooleanType,
    NumericType,
    SelectMultipleType,
    SelectType,
    StringType,
    export_type,
    type_operator,
)

# Input kinds beyond business-rules' own (text, numeric, none, select, select_multiple).
FIELD_TEXT_LIST = "text_list"  # ["SP", "RJ"]
FIELD_NUMERIC_RANGE = "numeric_range"  # [10, 20], both ends included
FIELD_DATETIME = "datetime"  # "2026-11-22T10:00:00+00:00"
FIELD_VARIABLE = "variable"  # the name of another variable of the same type

MAX_PATTERN_LENGTH = 200

# The moment "now" stands for in an evaluation: fixed per evaluation, so that a dry run
# or a simulation of yesterday's orders decides as it would have then.
EVALUATION_TIME: ContextVar[datetime | None] = ContextVar("evaluation_time", default=None)


def now() -> datetime:
    """Return the evaluation's "now" (the wall clock outside an evaluation)."""
    return EVALUATION_TIME.get() or datetime.now(UTC)


def compile_pattern(pattern: str) -> Any:
    """Compile a pattern with RE2 (linear time, no backtracking).

    Raises:
        ValueError: the pattern is too long or uses what RE2 refuses (back-references,
            look-around), which is what could make matching slow.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"a pattern has at most {MAX_PATTERN_LENGTH} characters")
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        message = error.args[0] if error.args else error
        if isinstance(message, bytes):
            message = message.decode(errors="replace")
        raise ValueError(f"not a safe pattern: {message}") from error


def raw_argument(operator: Callable[..., bool]) -> Callable[..., bool]:
    """Mark an operator whose argument is not of the variable's type (hours of a time)."""
    operator.raw_argument = True  # type: ignore[attr-defined]
    return operator


@export_type
class TextType(StringType):  # type: ignore[misc]
    name = "string"

    @type_operator(FIELD_TEXT)
    def not_equal_to(self, other: str) -> bool:
        return bool(self.value != other)

    @type_operator(FIELD_TEXT_LIST, assert_type_for_arguments=False)
    def is_in(self, options: Sequence[str]) -> bool:
        return self.value in options

    @type_operator(FIELD_TEXT_LIST, assert_type_for_arguments=False)
    def is_not_in(self, options: Sequence[str]) -> bool:
        return self.value not in options

    @type_operator(FIELD_TEXT)
    def matches_regex(self, pattern: str) -> bool:
        return compile_pattern(pattern).search(self.value) is not None

    @type_operator(FIELD_TEXT)
    def does_not_match_regex(self, pattern: str) -> bool:
        return compile_pattern(pattern).search(self.value) is None


@export_type
class NumberType(NumericType):  # type: ignore[misc]
    name = "numeric"

    @type_operator(FIELD_NUMERIC)
    def not_equal_to(self, other: Decimal) -> bool:
        return not self.equal_to(other)

    @type_operator(FIELD_NUMERIC_RANGE, assert_type_for_arguments=False)
    def between(self, bounds: Sequence[Any]) -> bool:
        low, high = (self._assert_valid_value_and_cast(bound) for bound in bounds)
        return bool(low - self.EPSILON <= self.value <= high + self.EPSILON)


@export_type
class FlagType(BooleanType):  # type: ignore[misc]
    name = "boolean"


@export_type
class ChoiceType(SelectType):  # type: ignore[misc]
    name = "select"


@export_type
class ChoicesType(SelectMultipleType):  # type: ignore[misc]
    name = "select_multiple"


@export_type
class MomentType(BaseType):  # type: ignore[misc]
    """A point in time, aware, in UTC."""

    name = "datetime"

    def _assert_valid_value_and_cast(self, value: Any) -> datetime:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"{value!r} is not a time with a zone")
        return value

    @type_operator(FIELD_DATETIME)
    def before(self, moment: datetime) -> bool:
        return bool(self.value < moment)

    @type_operator(FIELD_DATETIME)
    def after(self, moment: datetime) -> bool:
        return bool(self.value > moment)

    @type_operator(FIELD_NUMERIC, assert_type_for_arguments=False)
    @raw_argument
    def older_than_hours(self, hours: Any) -> bool:
        return bool(now() - self.value > timedelta(hours=float(hours)))

    @type_operator(FIELD_NUMERIC, assert_type_for_arguments=False)
    @raw_argument
    def within_last_hours(self, hours: Any) -> bool:
        return bool(now() - self.value <= timedelta(hours=float(hours)))


TYPES: dict[str, type[BaseType]] = {
    kind.name: kind for kind in (TextType, NumberType, FlagType, ChoiceType, ChoicesType,
                                 MomentType)
}

# Comparing a variable with another variable of the same type: our evaluator resolves
# the second variable, then applies the plain operator named here.
VARIABLE_OPERATORS: dict[str, dict[str, str]] = {
    "numeric": {
        "equal_to_variable": "equal_to",
        "not_equal_to_variable": "not_equal_to",
        "greater_than_variable": "greater_than",
        "greater_than_or_equal_to_variable": "greater_than_or_equal_to",
        "less_than_variable": "less_than",
        "less_than_or_equal_to_variable": "less_than_or_equal_to",
    },
    "string": {
        "equal_to_variable": "equal_to",
        "not_equal_to_variable": "not_equal_to",
    },
    "datetime": {
        "before_variable": "before",
        "after_variable": "after",
    },
}

INPUT_KINDS = (FIELD_TEXT, FIELD_NUMERIC, FIELD_NO_INPUT, FIELD_SELECT, FIELD_SELECT_MULTIPLE,
               FIELD_TEXT_LIST, FIELD_NUMERIC_RANGE, FIELD_DATETIME, FIELD_VARIABLE)


def operators_of(type_name: str) -> list[dict[str, str]]:
    """Return every operator of a type, variable comparisons included, as an editor needs."""
    found: list[dict[str, str]] = TYPES[type_name].get_all_operators()
    for name in VARIABLE_OPERATORS.get(type_name, {}):
        found.append({"name": name, "label": name.replace("_", " ").capitalize(),
                      "input_type": FIELD_VARIABLE})
    return sorted(found, key=lambda operator: operator["name"])
