"""What a decision stage is: its facts, the variables and actions rules may use, its decision."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from business_rules.actions import BaseActions
from business_rules.operators import BaseType
from business_rules.utils import export_rule_data
from business_rules.variables import BaseVariables, rule_variable

from rules.types import TYPES, operators_of

Facts = TypeVar("Facts")


def fact(kind: type[BaseType], label: str, options: Sequence[str] = ()) -> Any:
    """Declare a facts field as a rule variable of this type (with a label for editors)."""
    return field(metadata={"kind": kind, "label": label, "options": list(options)})


_BUILT: dict[type[Any], type[BaseVariables]] = {}


def variables_for(facts_class: type[Any]) -> type[BaseVariables]:
    """Return the business-rules variables of a facts dataclass: one per declared fact.

    Facts are computed once, when the engine builds the dataclass; each variable only
    reads its field.
    """
    if facts_class not in _BUILT:
        _BUILT[facts_class] = _build_variables(facts_class)
    return _BUILT[facts_class]


def _build_variables(facts_class: type[Any]) -> type[BaseVariables]:
    members: dict[str, Any] = {
        "__init__": lambda self, facts: setattr(self, "facts", facts),
        "__doc__": f"Rule variables over {facts_class.__name__}.",
    }
    for item in dataclasses.fields(facts_class):
        if "kind" not in item.metadata:
            continue
        members[item.name] = rule_variable(
            item.metadata["kind"], label=item.metadata["label"],
            options=item.metadata["options"],
        )(_reader(item.name))
    return type(f"{facts_class.__name__}Variables", (BaseVariables,), members)


def _reader(name: str) -> Callable[[Any], Any]:
    def read(self: Any) -> Any:
        return getattr(self.facts, name)

    read.__name__ = name
    return read


@dataclass
class Decision:
    """What the rules of one evaluation asked for; actions add to it, the engine applies it."""

    rule: str | None = None  # the rule whose actions are running

    def summary(self) -> dict[str, Any]:
        """Return what a test case may expect of this decision (each stage says)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {name: plain(value) for name, value in dataclasses.asdict(self).items()
                if name != "rule"}


@dataclass(frozen=True)
class Stage(Generic[Facts]):
    """One decision stage: validation, sourcing, carrier or exceptions."""

    name: str
    description: str
    facts: type[Facts]
    actions: type[BaseActions]
    decision: type[Decision]
    # True: rules are tried in order and the first that fires decides (a priority list).
    # False: every rule that holds acts (e.g. collect every reason to reject).
    stop_on_first_trigger: bool
    # The facts test cases start from: an ordinary case that the shipped rules leave alone.
    baseline: Facts
    # The fact that says when the case happened: test cases are evaluated at that time.
    clock: str
    # Problems with a rule's actions that depend on its conditions (e.g. an action the
    # engine cannot carry out for the events the rule fires for): (action index, message).
    check_actions: Callable[[Any, Any], list[tuple[int, str]]] | None = None

    def moment_of(self, facts: Facts) -> datetime:
        """Return when the case the facts describe happened."""
        moment: datetime = getattr(facts, self.clock)
        return moment

    @property
    def variables(self) -> type[BaseVariables]:
        return variables_for(self.facts)

    def schema(self) -> dict[str, Any]:
        """Return what an editor offers: variables, operators per type, actions."""
        exported: dict[str, Any] = export_rule_data(self.variables, self.actions)
        exported["variable_type_operators"] = {name: operators_of(name) for name in TYPES}
        exported["stop_on_first_trigger"] = self.stop_on_first_trigger
        return exported


def plain(value: Any) -> Any:
    """Return a value as JSON can hold it (decimals as text, times as ISO 8601)."""
    kind = type(value)
    if kind in _AS_THEY_ARE:  # most values: looked up by their exact type, at once
        return value
    if kind is dict:
        return {key: plain(item) for key, item in value.items()}
    if kind is list:
        return [plain(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


_AS_THEY_ARE = frozenset({str, int, bool, float, type(None)})
