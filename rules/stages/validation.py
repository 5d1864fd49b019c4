"""Validation: is the order acceptable as it is, should a person look at it, or is it refused?"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from business_rules.actions import BaseActions, rule_action
from business_rules.fields import FIELD_TEXT

from rules.stage import Decision, Stage, fact
from rules.types import ChoicesType, FlagType, MomentType, NumberType, TextType
from rules.vocabulary import CUSTOMER_TIERS, PAYMENT_TERMS, SERVICE_LEVELS


@dataclass(frozen=True)
class OrderFacts:
    """What validation rules may know about an order, computed once by the engine."""

    channel: str = fact(TextType, "Channel")
    customer_id: str = fact(TextType, "Customer id")
    customer_tier: str = fact(TextType, "Customer tier", CUSTOMER_TIERS)
    customer_is_new: bool = fact(FlagType, "First order of this customer")
    customer_previous_orders: int = fact(NumberType, "Customer's earlier orders")
    has_credit_limit: bool = fact(FlagType, "Customer has a credit limit")
    credit_remaining: Decimal = fact(
        NumberType, "Credit remaining before this order (limit minus open orders)")
    payment_terms: str = fact(TextType, "Payment terms", PAYMENT_TERMS)
    currency: str = fact(TextType, "Currency")
    order_total: Decimal = fact(NumberType, "Order total")
    line_count: int = fact(NumberType, "Number of lines")
    total_quantity: int = fact(NumberType, "Total units")
    highest_line_total: Decimal = fact(NumberType, "Highest line total")
    lowest_price_ratio: Decimal = fact(
        NumberType, "Lowest unit price as a share of the product's list value (1 = list)")
    total_weight_kg: Decimal = fact(NumberType, "Total weight (kg)")
    contains_hazmat: bool = fact(FlagType, "Contains hazardous goods")
    skus: list[str] = fact(ChoicesType, "SKUs on the order")
    categories: list[str] = fact(ChoicesType, "Product categories on the order")
    service_level: str = fact(TextType, "Requested service level", SERVICE_LEVELS)
    ship_to_country: str = fact(TextType, "Destination country (ISO code)")
    ship_to_region: str = fact(TextType, "Destination region or state")
    ship_to_postal_code: str = fact(TextType, "Destination postal code")
    has_postal_code: bool = fact(FlagType, "Destination has a postal code")
    created_at: datetime = fact(MomentType, "Order received at")


@dataclass(frozen=True)
class Finding:
    rule: str | None
    code: str
    message: str


@dataclass
class ValidationDecision(Decision):
    rejections: list[Finding] = field(default_factory=list)
    holds: list[Finding] = field(default_factory=list)  # code = the hold queue

    @property
    def outcome(self) -> str:
        """Return rejected, on_hold or validated: a rejection outweighs a hold."""
        if self.rejections:
            return "rejected"
        return "on_hold" if self.holds else "validated"

    def summary(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "holds": sorted(f.code for f in self.holds),
                "rejections": sorted(f.code for f in self.rejections)}


class ValidationActions(BaseActions):  # type: ignore[misc]
    def __init__(self, decision: ValidationDecision) -> None:
        self.decision = decision

    @rule_action(label="Reject the order",
                 params={"code": FIELD_TEXT, "message": FIELD_TEXT})
    def reject(self, code: str, message: str) -> None:
        self.decision.rejections.append(Finding(self.decision.rule, code, message))

    @rule_action(label="Hold the order for review",
                 params={"queue": FIELD_TEXT, "reason": FIELD_TEXT})
    def hold(self, queue: str, reason: str) -> None:
        self.decision.holds.append(Finding(self.decision.rule, queue, reason))


VALIDATION: Stage[OrderFacts] = Stage(
    name="validation",
    description="Required data, address sanity, pricing, credit and payment terms, "
                "restricted destinations, fraud and risk signals.",
    facts=OrderFacts,
    actions=ValidationActions,
    decision=ValidationDecision,
    stop_on_first_trigger=False,
    baseline=OrderFacts(
        channel="web", customer_id="C-1", customer_tier="standard", customer_is_new=False,
        customer_previous_orders=3, has_credit_limit=False, credit_remaining=Decimal(0),
        payment_terms="card", currency="BRL", order_total=Decimal("150.00"), line_count=1,
        total_quantity=1, highest_line_total=Decimal("150.00"), lowest_price_ratio=Decimal(1),
        total_weight_kg=Decimal("1.2"), contains_hazmat=False, skus=["SKU-1"],
        categories=["housewares"], service_level="standard", ship_to_country="BR",
        ship_to_region="SP", ship_to_postal_code="01310-100", has_postal_code=True,
        created_at=datetime(2026, 1, 5, 12, tzinfo=UTC),
    ),
    clock="created_at",
)
