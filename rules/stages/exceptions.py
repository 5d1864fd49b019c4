"""Exceptions: when something goes wrong with an order, what happens next.

Rules are a priority list: the first rule that fires decides the resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from business_rules.actions import BaseActions, rule_action
from business_rules.fields import FIELD_NUMERIC, FIELD_TEXT

from rules.stage import Decision, Stage, fact
from rules.types import FlagType, MomentType, NumberType, TextType
from rules.vocabulary import CUSTOMER_TIERS, SERVICE_LEVELS

EVENTS = ["payment_failed", "stock_short", "wms_rejected", "label_failed", "carrier_delay",
          "rule_error"]

# What the engine can carry out for each event, the one table both the save-time check and
# the engine read. retry: run the failed job again (only events that come from a job);
# resource: source the missing units again elsewhere, or backorder them (a short pick);
# hold: the order waits in the named queue (an order already on hold gets the queue too);
# cancel: whatever has not shipped; notify: always possible.
ACTIONS_BY_EVENT: Mapping[str, frozenset[str]] = {
    "payment_failed": frozenset({"retry", "hold", "cancel", "notify"}),
    "wms_rejected": frozenset({"retry", "hold", "cancel", "notify"}),
    "label_failed": frozenset({"retry", "hold", "cancel", "notify"}),
    "stock_short": frozenset({"resource", "hold", "cancel", "notify"}),
    "carrier_delay": frozenset({"hold", "cancel", "notify"}),
    "rule_error": frozenset({"hold", "cancel", "notify"}),
}
assert set(ACTIONS_BY_EVENT) == set(EVENTS)


def possible_actions(event_type: str) -> frozenset[str]:
    """Return the actions the engine carries out for this event (an event it does not know
    can still be held and notified about)."""
    return ACTIONS_BY_EVENT.get(event_type, frozenset({"hold", "notify"}))


def events_of(conditions: Any) -> frozenset[str]:
    """Return the events a rule with these conditions may fire for, as far as its
    conditions on event_type tell (every event when they do not)."""
    every = frozenset(EVENTS)
    if not isinstance(conditions, Mapping):
        return every
    if isinstance(conditions.get("all"), list):
        found = every
        for member in conditions["all"]:
            found &= events_of(member)
        return found
    if isinstance(conditions.get("any"), list):
        return frozenset().union(*(events_of(member) for member in conditions["any"]))
    if conditions.get("name") != "event_type":
        return every
    value, operator = conditions.get("value"), conditions.get("operator")
    named = frozenset(value if isinstance(value, list) else [value])
    if operator in ("equal_to", "is_in"):
        return every & named
    if operator in ("not_equal_to", "is_not_in"):
        return every - named
    return every


def impossible_actions(conditions: Any, actions: Any) -> list[tuple[int, str]]:
    """Return the actions of a rule the engine cannot carry out for some event the rule
    may fire for: (index of the action, why)."""
    events = events_of(conditions)
    found = []
    for index, action in enumerate(actions if isinstance(actions, list) else []):
        name = action.get("name") if isinstance(action, Mapping) else None
        if not isinstance(name, str):
            continue
        refused = sorted(event for event in events if name not in ACTIONS_BY_EVENT[event])
        if refused:
            can = sorted(ACTIONS_BY_EVENT[refused[0]])
            found.append((index, f"{name!r} cannot be carried out for "
                                 f"{', '.join(refused)} (for {refused[0]}: "
                                 f"{', '.join(can)}); narrow the rule's event_type "
                                 "condition or choose another action"))
    return found


@dataclass(frozen=True)
class ExceptionFacts:
    """What exception rules may know: the event, and the order it happened to."""

    event_type: str = fact(TextType, "What went wrong", EVENTS)
    event_code: str = fact(TextType, "The other system's code for it (e.g. ADDRESS)")
    failed_stage: str = fact(TextType, "The step it happened in")
    attempts: int = fact(NumberType, "How many times it has happened to this order")
    delay_hours: Decimal = fact(NumberType, "Hours late (carrier delays)")
    order_status: str = fact(TextType, "Order status")
    order_total: Decimal = fact(NumberType, "Order total")
    channel: str = fact(TextType, "Channel")
    customer_tier: str = fact(TextType, "Customer tier", CUSTOMER_TIERS)
    service_level: str = fact(TextType, "Requested service level", SERVICE_LEVELS)
    has_shipped_units: bool = fact(FlagType, "Some units have shipped")
    occurred_at: datetime = fact(MomentType, "When it happened")


@dataclass(frozen=True)
class Step:
    rule: str | None
    kind: str  # hold, retry, resource, cancel, notify
    params: dict[str, Any]


@dataclass
class ExceptionDecision(Decision):
    steps: list[Step] = field(default_factory=list)

    @property
    def resolution(self) -> str:
        """Return the step that settles the order's fate (notifications come on top)."""
        kinds = [step.kind for step in self.steps if step.kind != "notify"]
        return kinds[0] if kinds else "none"

    def summary(self) -> dict[str, Any]:
        return {"resolution": self.resolution,
                "notify": sorted(step.params["recipient"] for step in self.steps
                                 if step.kind == "notify")}


class ExceptionActions(BaseActions):  # type: ignore[misc]
    def __init__(self, decision: ExceptionDecision) -> None:
        self.decision = decision

    def _step(self, kind: str, **params: Any) -> None:
        self.decision.steps.append(Step(self.decision.rule, kind, params))

    @rule_action(label="Hold for review", params={"queue": FIELD_TEXT, "reason": FIELD_TEXT})
    def hold(self, queue: str, reason: str) -> None:
        self._step("hold", queue=queue, reason=reason)

    @rule_action(label="Retry after a delay", params={"after_minutes": FIELD_NUMERIC})
    def retry(self, after_minutes: float) -> None:
        self._step("retry", after_minutes=after_minutes)

    @rule_action(label="Source again from other locations", params={"reason": FIELD_TEXT})
    def resource(self, reason: str) -> None:
        self._step("resource", reason=reason)

    @rule_action(label="Cancel the order", params={"reason": FIELD_TEXT})
    def cancel(self, reason: str) -> None:
        self._step("cancel", reason=reason)

    @rule_action(label="Notify", params={"recipient": FIELD_TEXT, "message": FIELD_TEXT})
    def notify(self, recipient: str, message: str) -> None:
        self._step("notify", recipient=recipient, message=message)


EXCEPTIONS: Stage[ExceptionFacts] = Stage(
    name="exceptions",
    description="Failed payments, stock lost after confirmation, warehouse and carrier "
                "failures, late shipments, rule errors: hold, retry, re-source, cancel, "
                "notify.",
    facts=ExceptionFacts,
    actions=ExceptionActions,
    decision=ExceptionDecision,
    stop_on_first_trigger=True,
    baseline=ExceptionFacts(
        event_type="payment_failed", event_code="", failed_stage="payment", attempts=1,
        delay_hours=Decimal(0), order_status="allocated", order_total=Decimal("150.00"),
        channel="web", customer_tier="standard", service_level="standard",
        has_shipped_units=False, occurred_at=datetime(2026, 1, 5, 12, tzinfo=UTC),
    ),
    clock="occurred_at",
    check_actions=impossible_actions,
)
