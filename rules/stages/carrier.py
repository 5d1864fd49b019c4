"""Carrier selection: which carrier service ships a fulfilment group, at what cost and promise.

The engine rates every service for the group and evaluates the rules once per option,
with the option's facts next to the shipment's. Option actions (exclude, penalty) act on
that option; shipment actions (required service level, cost cap, how to pick) act on the
whole choice, whichever option's evaluation fired them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from business_rules.actions import BaseActions, rule_action
from business_rules.fields import FIELD_NUMERIC, FIELD_TEXT

from rules.stage import Decision, Stage, fact
from rules.types import FlagType, MomentType, NumberType, TextType
from rules.vocabulary import CUSTOMER_TIERS, SERVICE_LEVELS

MODES = ["ground", "air"]
PICKS = ("cheapest_meeting_promise", "fastest")


@dataclass(frozen=True)
class CarrierOptionFacts:
    """One carrier service for one shipment: what carrier rules may know about both."""

    # the shipment (one fulfilment group) and its order
    channel: str = fact(TextType, "Channel")
    customer_tier: str = fact(TextType, "Customer tier", CUSTOMER_TIERS)
    requested_service_level: str = fact(TextType, "Requested service level", SERVICE_LEVELS)
    order_total: Decimal = fact(NumberType, "Order total")
    shipment_value: Decimal = fact(NumberType, "Value of the goods in this shipment")
    weight_kg: Decimal = fact(NumberType, "Actual weight (kg)")
    billable_weight_kg: Decimal = fact(NumberType, "Billable weight: actual or dimensional (kg)")
    contains_hazmat: bool = fact(FlagType, "Contains hazardous goods")
    from_location: str = fact(TextType, "Ships from (location code)")
    ship_to_region: str = fact(TextType, "Destination region or state")
    distance_km: Decimal = fact(NumberType, "Distance (km)")
    created_at: datetime = fact(MomentType, "Order received at")
    option_count: int = fact(NumberType, "Services rated for this shipment")
    # the option
    carrier: str = fact(TextType, "Carrier code")
    service: str = fact(TextType, "Service code")
    service_level: str = fact(TextType, "Service level", SERVICE_LEVELS)
    mode: str = fact(TextType, "Mode of transport", MODES)
    cost: Decimal = fact(NumberType, "Cost of this option (with surcharges)")
    transit_days: int = fact(NumberType, "Transit days")
    promised_at: datetime = fact(MomentType, "Promised delivery")
    meets_service_level: bool = fact(FlagType, "At least the requested service level")
    max_weight_kg: Decimal = fact(NumberType, "Service's maximum weight (kg)")
    over_max_weight: bool = fact(FlagType, "Shipment is over the service's maximum weight")
    insured: bool = fact(FlagType, "Service insures the goods")
    max_insured_value: Decimal = fact(NumberType, "Most the service insures")
    hazmat_allowed: bool = fact(FlagType, "Service accepts hazardous goods")


@dataclass(frozen=True)
class OptionEffect:
    rule: str | None
    kind: str  # exclude, penalty
    amount: Decimal
    reason: str


@dataclass
class CarrierDecision(Decision):
    """What the rules said for one option, and about the whole choice."""

    effects: list[OptionEffect] = field(default_factory=list)
    required_level: str | None = None
    cost_cap: Decimal | None = None
    pick: str | None = None

    @property
    def excluded(self) -> bool:
        return any(effect.kind == "exclude" for effect in self.effects)

    @property
    def penalty(self) -> Decimal:
        return sum((e.amount for e in self.effects if e.kind == "penalty"), Decimal(0))

    def summary(self) -> dict[str, Any]:
        return {"excluded": "yes" if self.excluded else "no", "penalty": str(self.penalty),
                "required_level": self.required_level or "any",
                "cost_cap": str(self.cost_cap) if self.cost_cap is not None else "none",
                "pick": self.pick or "cheapest_meeting_promise"}


class CarrierActions(BaseActions):  # type: ignore[misc]
    def __init__(self, decision: CarrierDecision) -> None:
        self.decision = decision

    @rule_action(label="Exclude this option", params={"reason": FIELD_TEXT})
    def exclude_option(self, reason: str) -> None:
        self.decision.effects.append(OptionEffect(self.decision.rule, "exclude", Decimal(0),
                                                  reason))

    @rule_action(label="Add a penalty to this option's cost when comparing",
                 params={"amount": FIELD_NUMERIC, "reason": FIELD_TEXT})
    def add_penalty(self, amount: Any, reason: str) -> None:
        self.decision.effects.append(OptionEffect(self.decision.rule, "penalty",
                                                  Decimal(str(amount)), reason))

    @rule_action(label="Require at least a service level (economy, standard, express, "
                       "overnight)", params={"level": FIELD_TEXT})
    def require_service_level(self, level: str) -> None:
        if level not in SERVICE_LEVELS:
            raise ValueError(f"unknown service level {level!r}; use one of "
                             + ", ".join(SERVICE_LEVELS))
        current = self.decision.required_level
        if current is None or SERVICE_LEVELS.index(level) > SERVICE_LEVELS.index(current):
            self.decision.required_level = level

    @rule_action(label="Spend at most this much per shipment", params={"amount": FIELD_NUMERIC})
    def cap_cost(self, amount: Any) -> None:
        cap = Decimal(str(amount))
        current = self.decision.cost_cap
        self.decision.cost_cap = cap if current is None else min(current, cap)

    @rule_action(label="Pick the cheapest option that keeps the promise", params={})
    def pick_cheapest_meeting_promise(self) -> None:
        self.decision.pick = self.decision.pick or "cheapest_meeting_promise"

    @rule_action(label="Pick the fastest option", params={})
    def pick_fastest(self) -> None:
        self.decision.pick = self.decision.pick or "fastest"


CARRIER: Stage[CarrierOptionFacts] = Stage(
    name="carrier",
    description="Which carrier service ships each shipment: exclusions, penalties, required "
                "service level, cost cap, and cheapest-that-keeps-the-promise or fastest.",
    facts=CarrierOptionFacts,
    actions=CarrierActions,
    decision=CarrierDecision,
    stop_on_first_trigger=False,
    baseline=CarrierOptionFacts(
        channel="web", customer_tier="standard", requested_service_level="standard",
        order_total=Decimal("150.00"), shipment_value=Decimal("150.00"),
        weight_kg=Decimal("1.2"), billable_weight_kg=Decimal("1.5"), contains_hazmat=False,
        from_location="WH-1", ship_to_region="SP", distance_km=Decimal("120.0"),
        created_at=datetime(2026, 1, 5, 12, tzinfo=UTC), option_count=4,
        carrier="CORREIOS", service="PAC", service_level="standard", mode="ground",
        cost=Decimal("21.50"), transit_days=3,
        promised_at=datetime(2026, 1, 8, 18, tzinfo=UTC), meets_service_level=True,
        max_weight_kg=Decimal(30), over_max_weight=False, insured=True,
        max_insured_value=Decimal(3000), hazmat_allowed=False,
    ),
    clock="created_at",
)
