"""Rating a parcel against a service's rate card, and picking the option to ship with."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from engine.carriers.rate_cards import RateCell, ServiceCard
from engine.carriers.rating import Quote, Shipment, quote
from engine.decisions.carrier import Choice, Option, option_facts, pick_option
from engine.record import FulfilmentGroup
from rules.stages.carrier import CarrierDecision, OptionEffect

MORNING = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)  # a Monday, before every cut-off
EVENING = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)  # after every cut-off

# A ground service: two distance bands (300 and 800 km), each with 1, 5 and 30 kg cells.
PAC = ServiceCard(
    carrier_code="CORREIOS", code="PAC", service_level="standard", mode="ground",
    max_weight_kg=Decimal(30), insured=False, max_insured_value=Decimal(0),
    hazmat_allowed=False, cutoff_hour=16, dim_divisor=6000,
    fuel_surcharge_pct=Decimal(0), hazmat_fee=Decimal(0), insurance_pct=Decimal(0),
    rates=(RateCell(300, Decimal(1), Decimal("15.00"), 2),
           RateCell(300, Decimal(5), Decimal("25.00"), 3),
           RateCell(300, Decimal(30), Decimal("60.00"), 4),
           RateCell(800, Decimal(1), Decimal("22.00"), 4),
           RateCell(800, Decimal(5), Decimal("35.00"), 5),
           RateCell(800, Decimal(30), Decimal("80.00"), 6)),
)
# A mug: 400 g in a 10 x 10 x 12 cm box, worth 39.90, 120 km away.
MUG = Shipment(weight_kg=Decimal("0.400"), volume_cm3=Decimal(1200), value=Decimal("39.90"),
               contains_hazmat=False, distance=Decimal(120))


def rated(shipment: Shipment = MUG, now: datetime = MORNING, **card: object) -> Quote:
    found = quote(replace(PAC, **card), shipment, now)
    assert found is not None
    return found


# ----- rating -----

def test_a_dense_parcel_is_billed_by_its_actual_weight():
    # given a 4 kg parcel of 6,000 cm3 (1 kg dimensional)
    parcel = replace(MUG, weight_kg=Decimal("4.000"), volume_cm3=Decimal(6000))
    # when it is rated, then it is billed 4 kg, in the 5 kg cell
    found = rated(parcel)
    assert found.billable_kg == Decimal("4.000")
    assert found.cost == Decimal("25.00")


def test_a_light_bulky_parcel_is_billed_by_its_dimensional_weight():
    # given a 2 kg lampshade in a 60 x 50 x 40 cm box: 120,000 cm3 / 6000 = 20 kg
    parcel = replace(MUG, weight_kg=Decimal("2.000"), volume_cm3=Decimal(120_000))
    # when it is rated, then it is billed 20 kg, in the 30 kg cell
    found = rated(parcel)
    assert found.billable_kg == Decimal("20.000")
    assert found.cost == Decimal("60.00")
    # and a carrier with a larger divisor bills less of the same box
    assert rated(parcel, dim_divisor=12_000).billable_kg == Decimal("10.000")


def test_the_rate_comes_from_the_first_distance_band_that_reaches_the_destination():
    # given the same mug sent 120 km, 300 km and 450 km away
    near, edge, far = (rated(replace(MUG, distance=Decimal(km))) for km in (120, 300, 450))
    # then up to 300 km it costs the first band's price, beyond it the second's
    assert (near.cost, near.transit_days) == (Decimal("15.00"), 2)
    assert (edge.cost, edge.transit_days) == (Decimal("15.00"), 2)
    assert (far.cost, far.transit_days) == (Decimal("22.00"), 4)


def test_a_destination_beyond_the_rate_card_is_not_rated():
    # given a destination 900 km away and a card that reaches 800 km
    # then the service does not offer to ship it
    assert quote(PAC, replace(MUG, distance=Decimal(900)), MORNING) is None


def test_an_unknown_distance_is_rated_as_a_national_parcel():
    # given a destination that cannot be located
    parcel = replace(MUG, distance=None)
    # then a card that reaches 1,500 km rates it in that band; a shorter card does not
    national = replace(PAC, rates=(*PAC.rates, RateCell(1500, Decimal(1), Decimal("31.00"), 7)))
    found = quote(national, parcel, MORNING)
    assert found is not None and found.cost == Decimal("31.00")
    assert quote(PAC, parcel, MORNING) is None


def test_a_parcel_heavier_than_the_card_costs_its_heaviest_cell_and_says_it_is_over():
    # given a 45 kg parcel and a card whose cells stop at 30 kg
    parcel = replace(MUG, weight_kg=Decimal("45.000"))
    found = rated(parcel)
    # then it is priced at the heaviest cell, and the rules are told it is over the maximum
    assert found.cost == Decimal("60.00")
    facts = option_facts(side(), found, "standard")
    assert facts.over_max_weight and facts.billable_weight_kg == Decimal("45.000")


def test_surcharges_and_insurance_add_to_the_freight():
    # given a hazardous parcel worth 1,000.00 on a service with 10% fuel surcharge,
    # a 5.00 hazmat fee and 1.5% insurance
    parcel = replace(MUG, contains_hazmat=True, value=Decimal("1000.00"))
    found = rated(parcel, fuel_surcharge_pct=Decimal(10), hazmat_fee=Decimal("5.00"),
                  insured=True, max_insured_value=Decimal(5000), insurance_pct=Decimal("1.5"))
    # then it costs 15.00 + 1.50 fuel + 5.00 hazmat + 15.00 insurance
    assert found.cost == Decimal("36.50")


def test_insurance_covers_at_most_the_services_maximum_value():
    # given a parcel worth 8,000.00 and a service insuring up to 2,000.00 at 1%
    parcel = replace(MUG, value=Decimal("8000.00"))
    found = rated(parcel, insured=True, max_insured_value=Decimal(2000), insurance_pct=1)
    # then insurance costs 1% of 2,000.00, not of 8,000.00
    assert found.cost == Decimal("15.00") + Decimal("20.00")


def test_the_cost_is_rounded_to_the_cent():
    # given a fuel surcharge that leaves fractions of a cent (15.00 x 1.0333)
    found = rated(fuel_surcharge_pct=Decimal("3.33"))
    # then the cost is whole cents
    assert found.cost == Decimal("15.50")


def test_before_the_cut_off_a_parcel_ships_today_and_is_promised_by_the_evening():
    # given an order at 09:30 and a 16:00 cut-off, two transit days
    found = rated(now=MORNING)
    # then it is promised two days after today, by 18:00
    assert found.promised_at == datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


def test_after_the_cut_off_a_parcel_ships_the_next_day():
    # given an order at 19:00, after the 16:00 cut-off
    found = rated(now=EVENING)
    # then it ships tomorrow, and is promised two days after that
    assert found.promised_at == datetime(2026, 11, 26, 18, 0, tzinfo=UTC)
    # and at the cut-off hour itself it is already too late
    at_cut_off = rated(now=datetime(2026, 11, 23, 16, 0, tzinfo=UTC))
    assert at_cut_off.promised_at == found.promised_at


# ----- picking -----

def side(requested: str = "standard") -> dict[str, object]:
    """The shipment's half of an option's facts."""
    return {"channel": "web", "customer_tier": "standard", "requested_service_level": requested,
            "order_total": Decimal("39.90"), "shipment_value": Decimal("39.90"),
            "weight_kg": Decimal("0.400"), "contains_hazmat": False, "from_location": "WH-1",
            "ship_to_region": "SP", "distance_km": Decimal(120), "created_at": MORNING,
            "option_count": 3}


def option(code: str, level: str, cost: str, days: int, requested: str = "standard",
           *effects: OptionEffect, **decided: object) -> Option:
    """A rated option (carrier X, service `code`) and what the rules said about it."""
    service = replace(PAC, carrier_code="X", code=code, service_level=level)
    found = Quote(service, Decimal("0.400"), Decimal(cost), days,
                  datetime(2026, 11, 23 + days, 18, tzinfo=UTC))
    return Option(found, option_facts(side(requested), found, requested),
                  CarrierDecision(effects=list(effects), **decided))


def choose(*options: Option) -> Choice:
    choice = Choice(FulfilmentGroup(location_code="WH-1"), side(), list(options), [])
    pick_option(choice)
    return choice


def exclude(reason: str) -> OptionEffect:
    return OptionEffect("a rule", "exclude", Decimal(0), reason)


def penalty(amount: str) -> OptionEffect:
    return OptionEffect("a rule", "penalty", Decimal(amount), "slow to pay claims")


def test_picks_the_cheapest_option_that_keeps_the_promised_service_level():
    # given an express order, and economy, express and overnight services
    economy = option("ECO", "economy", "9.00", 6, "express")
    express = option("EXP", "express", "30.00", 2, "express")
    overnight = option("ONE", "overnight", "50.00", 1, "express")
    # when the option is picked
    choice = choose(economy, express, overnight)
    # then the express service wins: the cheapest that keeps the promise
    assert choice.chosen is express
    assert express.why == "the cheapest that keeps the promise"
    assert economy.why == "its economy service is below the requested express"
    assert overnight.why.startswith("X/EXP is the cheapest that keeps the promise")


def test_picks_the_fastest_when_no_option_keeps_the_promise():
    # given an overnight order and only slower services
    slow = option("ECO", "economy", "9.00", 6, "overnight")
    quick = option("STD", "standard", "20.00", 3, "overnight")
    # then the quickest ships it, and says why
    choice = choose(slow, quick)
    assert choice.chosen is quick
    assert quick.why == "the fastest, as none keeps the promised service level"


def test_picks_the_fastest_when_the_rules_ask_for_it():
    # given two services that keep the promise, and a rule asking for the fastest
    cheap = option("STD", "standard", "20.00", 3, "standard", pick="fastest")
    quick = option("EXP", "express", "45.00", 1)
    # then the quicker one wins, though it costs more
    choice = choose(cheap, quick)
    assert (choice.pick, choice.chosen) == ("fastest", quick)
    assert quick.why == "the fastest"


def test_an_excluded_option_is_never_picked_and_says_why():
    # given the cheapest option excluded by a rule
    cheapest = option("ECO", "standard", "9.00", 4, "standard", exclude("no hazmat"))
    other = option("STD", "standard", "20.00", 3)
    # then the other one ships, and the excluded one names the rule's reason
    choice = choose(cheapest, other)
    assert choice.chosen is other
    assert (cheapest.result, cheapest.why) == ("lost", "excluded: no hazmat")


def test_a_penalty_counts_when_comparing_but_is_not_charged():
    # given a 20.00 option with a 15.00 penalty and a 30.00 option without one
    penalised = option("A", "standard", "20.00", 3, "standard", penalty("15.00"))
    plain = option("B", "standard", "30.00", 3)
    # then the 30.00 option wins (35.00 with penalties against 30.00)
    choice = choose(penalised, plain)
    assert choice.chosen is plain
    assert penalised.why == ("X/B is the cheapest that keeps the promise (30.00 with "
                             "penalties, 3 days; this one 35.00, 3 days)")
    # and the penalty never changes what the option costs
    assert penalised.quote.cost == Decimal("20.00")


def test_the_strictest_required_service_level_rules_out_slower_services():
    # given one rule requiring standard and another requiring express
    standard = option("STD", "standard", "20.00", 3, "economy", required_level="standard")
    express = option("EXP", "express", "30.00", 2, "economy", required_level="express")
    # then express is required, and the standard service is out
    choice = choose(standard, express)
    assert choice.required_level == "express"
    assert choice.chosen is express
    assert standard.why == "below the required express service"


def test_the_lowest_cost_cap_rules_out_dearer_options():
    # given caps of 40.00 and 25.00 said by two rules
    cheap = option("STD", "standard", "20.00", 3, "standard", cost_cap=Decimal(40))
    dear = option("EXP", "express", "30.00", 2, "standard", cost_cap=Decimal(25))
    # when the cheaper one is excluded, the dearer one is over the cap
    cheap.decision.effects.append(exclude("damaged goods last month"))
    choice = choose(cheap, dear)
    # then nothing can ship it: the group waits for a person
    assert choice.cost_cap == Decimal(25)
    assert choice.chosen is None
    assert dear.why == "costs 30.00, over the cap of 25"


def test_equal_options_are_broken_by_promise_then_by_name():
    # given two services at the same price, one a day quicker, and a twin of the quicker one
    later = option("A", "standard", "20.00", 4)
    sooner = option("C", "standard", "20.00", 3)
    twin = option("B", "standard", "20.00", 3)
    # then the sooner promise wins, and between equals the first by name
    assert choose(later, sooner, twin).chosen is twin
