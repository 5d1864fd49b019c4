"""Sourcing: which locations may ship the order, how they rank, how far it may be split.

The engine evaluates the rules once per candidate location, with that candidate's facts
next to the order's. Candidate actions (exclude, score) act on that candidate; order
actions (ship complete, split cap, preference, what to do with the remainder) act on the
order, whichever candidate's evaluation fired them. When no location has stock the rules
run once with an empty candidate (`location_kind` "none"), so order rules still decide
what happens to the remainder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from business_rules.actions import BaseActions, rule_action
from business_rules.fields import FIELD_NUMERIC, FIELD_TEXT

from rules.stage import Decision, Stage, fact
from rules.types import ChoicesType, FlagType, MomentType, NumberType, TextType
from rules.vocabulary import CUSTOMER_TIERS, LOCATION_KINDS, PAYMENT_TERMS, SERVICE_LEVELS

NO_LOCATION = "none"  # the kind of the empty candidate, when no location has stock
STRATEGIES = ("nearest", "cheapest", "most_stock")


@dataclass(frozen=True)
class CandidateFacts:
    """One candidate location for one order: what sourcing rules may know about both."""

    # the order
    channel: str = fact(TextType, "Channel")
    customer_tier: str = fact(TextType, "Customer tier", CUSTOMER_TIERS)
    is_business_order: bool = fact(FlagType, "Business order (on account: net terms)")
    payment_terms: str = fact(TextType, "Payment terms", PAYMENT_TERMS)
    order_total: Decimal = fact(NumberType, "Order total")
    line_count: int = fact(NumberType, "Number of lines")
    total_quantity: int = fact(NumberType, "Total units to source")
    total_weight_kg: Decimal = fact(NumberType, "Total weight (kg)")
    contains_hazmat: bool = fact(FlagType, "Contains hazardous goods")
    categories: list[str] = fact(ChoicesType, "Product categories on the order")
    service_level: str = fact(TextType, "Requested service level", SERVICE_LEVELS)
    ship_to_country: str = fact(TextType, "Destination country (ISO code)")
    ship_to_region: str = fact(TextType, "Destination region or state")
    created_at: datetime = fact(MomentType, "Order received at")
    candidate_count: int = fact(NumberType, "Locations with stock for some line")
    # the candidate
    location_code: str = fact(TextType, "Location code")
    location_kind: str = fact(TextType, "Location type", [*LOCATION_KINDS, NO_LOCATION])
    location_region: str = fact(TextType, "Location region or state")
    same_region: bool = fact(FlagType, "Location is in the destination's region")
    distance_known: bool = fact(FlagType, "Distance is known (both places geocoded)")
    distance_km: Decimal = fact(NumberType, "Distance to the destination (km)")
    can_ship_complete: bool = fact(FlagType, "Location can ship the whole order")
    lines_fillable: int = fact(NumberType, "Lines it can fill completely")
    units_fillable: int = fact(NumberType, "Units of the order it can ship")
    fill_share: Decimal = fact(NumberType, "Share of the order's units it can ship (0 to 1)")
    stock_depth: int = fact(
        NumberType, "Units left after this order, at its tightest line (stock depth)")
    orders_today: int = fact(NumberType, "Orders it has been given today")
    daily_capacity: int = fact(NumberType, "Orders it can take per day (0 = no limit)")
    at_capacity: bool = fact(FlagType, "It has reached its daily capacity")
    shipping_cost: Decimal = fact(NumberType, "Estimated cost to ship the order from there")


@dataclass(frozen=True)
class Effect:
    rule: str | None
    kind: str  # exclude, score
    points: Decimal
    reason: str


@dataclass
class SourcingDecision(Decision):
    """What the rules said for one candidate, and about the order."""

    effects: list[Effect] = field(default_factory=list)
    ship_complete: bool = False
    max_splits: int | None = None
    prefer: str | None = None
    remainder_queue: str | None = None  # None: backorder the remainder; else hold it there
    remainder_reason: str | None = None
    remainder_rule: str | None = None
    partial_shipment: bool = False

    @property
    def excluded(self) -> bool:
        return any(effect.kind == "exclude" for effect in self.effects)

    @property
    def score(self) -> Decimal:
        return sum((effect.points for effect in self.effects if effect.kind == "score"),
                   Decimal(0))

    def summary(self) -> dict[str, Any]:
        return {"excluded": "yes" if self.excluded else "no", "score": str(self.score),
                "ship_complete": "yes" if self.ship_complete else "no",
                "max_splits": str(self.max_splits) if self.max_splits is not None else "any",
                "prefer": self.prefer or "default",
                "remainder": self.remainder_queue or "backorder",
                "partial_shipment": "yes" if self.partial_shipment else "no"}

    def _prefer(self, strategy: str) -> None:
        if self.prefer is None:  # the first rule to state a preference wins
            self.prefer = strategy


class SourcingActions(BaseActions):  # type: ignore[misc]
    def __init__(self, decision: SourcingDecision) -> None:
        self.decision = decision

    @rule_action(label="Exclude this location", params={"reason": FIELD_TEXT})
    def exclude_location(self, reason: str) -> None:
        self.decision.effects.append(Effect(self.decision.rule, "exclude", Decimal(0), reason))

    @rule_action(label="Add to this location's score",
                 params={"points": FIELD_NUMERIC, "reason": FIELD_TEXT})
    def add_to_score(self, points: Any, reason: str) -> None:
        self.decision.effects.append(
            Effect(self.decision.rule, "score", Decimal(str(points)), reason))

    @rule_action(label="Subtract from this location's score",
                 params={"points": FIELD_NUMERIC, "reason": FIELD_TEXT})
    def subtract_from_score(self, points: Any, reason: str) -> None:
        self.decision.effects.append(
            Effect(self.decision.rule, "score", -Decimal(str(points)), reason))

    @rule_action(label="Ship the order complete from one location, or not at all", params={})
    def require_ship_complete(self) -> None:
        self.decision.ship_complete = True

    @rule_action(label="Ship from at most N locations", params={"locations": FIELD_NUMERIC})
    def cap_splits(self, locations: Any) -> None:
        cap = max(int(locations), 1)
        current = self.decision.max_splits
        self.decision.max_splits = cap if current is None else min(current, cap)

    @rule_action(label="Prefer the nearest location", params={})
    def prefer_nearest(self) -> None:
        self.decision._prefer("nearest")

    @rule_action(label="Prefer the cheapest location to ship from", params={})
    def prefer_cheapest(self) -> None:
        self.decision._prefer("cheapest")

    @rule_action(label="Prefer the location with the most stock", params={})
    def prefer_most_stock(self) -> None:
        self.decision._prefer("most_stock")

    @rule_action(label="Hold what cannot be filled, in a queue",
                 params={"queue": FIELD_TEXT, "reason": FIELD_TEXT})
    def hold_remainder(self, queue: str, reason: str) -> None:
        if self.decision.remainder_queue is None:
            self.decision.remainder_queue, self.decision.remainder_reason = queue, reason
            self.decision.remainder_rule = self.decision.rule

    @rule_action(label="Let what is allocated ship before the backorder fills", params={})
    def allow_partial_shipment(self) -> None:
        self.decision.partial_shipment = True


SOURCING: Stage[CandidateFacts] = Stage(
    name="sourcing",
    description="Which locations may ship the order and in what preference; ship complete "
                "or split, and what happens to what cannot be filled.",
    facts=CandidateFacts,
    actions=SourcingActions,
    decision=SourcingDecision,
    stop_on_first_trigger=False,
    baseline=CandidateFacts(
        channel="web", customer_tier="standard", is_business_order=False,
        payment_terms="card", order_total=Decimal("150.00"), line_count=1, total_quantity=1,
        total_weight_kg=Decimal("1.2"), contains_hazmat=False, categories=["housewares"],
        service_level="standard", ship_to_country="BR", ship_to_region="SP",
        created_at=datetime(2026, 1, 5, 12, tzinfo=UTC), candidate_count=2,
        location_code="WH-1", location_kind="warehouse", location_region="SP",
        same_region=True, distance_known=True, distance_km=Decimal("120.0"),
        can_ship_complete=True, lines_fillable=1, units_fillable=1, fill_share=Decimal(1),
        stock_depth=40, orders_today=10, daily_capacity=0, at_capacity=False,
        shipping_cost=Decimal("18.40"),
    ),
    clock="created_at",
)
