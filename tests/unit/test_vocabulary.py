"""The words customers, orders and locations are described with: one list each, offered
alike by the rule editor and the API."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from api.schemas import CustomerSchema, LocationSchema, OrderInSchema
from engine.decisions.sourcing import TIER_PRIORITY
from rules.stages import STAGES
from rules.vocabulary import (
    CUSTOMER_TIERS,
    LOCATION_KINDS,
    ON_ACCOUNT,
    PAID_UP_FRONT,
    PAYMENT_TERMS,
    SERVICE_LEVELS,
)
from tests.conftest import order_body

# the facts each vocabulary describes, in any stage that offers them
FACTS = {"customer_tier": CUSTOMER_TIERS, "payment_terms": PAYMENT_TERMS,
         "service_level": SERVICE_LEVELS, "requested_service_level": SERVICE_LEVELS}


def test_every_payment_term_is_either_paid_up_front_or_on_account():
    # given the terms an order may carry
    # then each is exactly one of the two kinds
    assert set(PAID_UP_FRONT) | set(ON_ACCOUNT) == set(PAYMENT_TERMS)
    assert not set(PAID_UP_FRONT) & set(ON_ACCOUNT)


def test_the_rule_editor_offers_the_same_words_in_every_stage():
    # given every stage's editor schema
    for stage in STAGES.values():
        variables = {v["name"]: v for v in stage.schema()["variables"]}
        # then a tier, a payment term or a service level offers the one list, in its order
        for name, words in FACTS.items():
            if name in variables:
                assert variables[name]["options"] == list(words), (stage.name, name)
    # and sourcing's location type adds only the empty candidate's "none"
    sourcing = {v["name"]: v for v in STAGES["sourcing"].schema()["variables"]}
    assert sourcing["location_kind"]["options"] == [*LOCATION_KINDS, "none"]


@pytest.mark.parametrize(("schema", "body", "field", "good", "bad"), [
    (CustomerSchema, {"id": "C-9", "name": "Ana"}, "tier", CUSTOMER_TIERS, "diamond"),
    (CustomerSchema, {"id": "C-9", "name": "Ana"}, "payment_terms", PAYMENT_TERMS, "net90"),
    (LocationSchema, {"code": "WH-9", "name": "North", "country": "BR", "latitude": -23.5,
                      "longitude": -46.6}, "kind", LOCATION_KINDS, "depot"),
    (OrderInSchema, order_body(), "service_level", SERVICE_LEVELS, "teleport"),
    (OrderInSchema, order_body(), "payment_terms", PAYMENT_TERMS, "barter"),
])
def test_the_api_accepts_exactly_the_words_the_rules_know(schema, body, field, good, bad):
    # given a valid body, when the field takes each word of its vocabulary, it loads
    for word in good:
        assert schema().load({**body, field: word})[field] == word
    # when it takes a word outside it, the error lists the vocabulary
    with pytest.raises(ValidationError) as refused:
        schema().load({**body, field: bad})
    assert refused.value.messages[field] == ["must be one of " + ", ".join(good)]


def test_backorders_serve_the_best_tier_first():
    # given the tiers, lowest first
    # then stock that arrives goes to platinum, then gold, silver and standard
    assert sorted(CUSTOMER_TIERS, key=TIER_PRIORITY.__getitem__, reverse=True) == [
        "platinum", "gold", "silver", "standard"]
