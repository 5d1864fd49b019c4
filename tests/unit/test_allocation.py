"""Which locations ship an order: ranking the candidates and splitting the order over them."""

from __future__ import annotations

from decimal import Decimal

from engine.catalog.geo import distance_km, shipping_cost
from engine.decisions.sourcing import (
    ORDER_FIELDS,
    Candidate,
    Plan,
    allocate,
    build_candidate,
    fill_lines,
)
from engine.record import Location, OrderLine, Product
from rules.stages.sourcing import SOURCING, Effect, SourcingDecision

SAO_PAULO = (-23.55, -46.63)  # where the order goes
PLACES = {  # location code -> (latitude, longitude): 30, 360, 490 and 2,100 km away
    "WH-SP": ("-23.36", "-46.88"), "WH-RJ": ("-22.90", "-43.20"),
    "WH-BH": ("-19.92", "-43.94"), "ST-REC": ("-8.05", "-34.90"),
}

def line(line_id: int, sku: str, weight_g: int) -> OrderLine:
    return OrderLine(id=line_id, line_no=line_id, sku=sku,
                     product=Product(sku=sku, weight_g=weight_g))


# The order's lines: lamps of 2 kg, mugs of 400 g, rugs of 900 g.
LINES = {1: line(1, "LAMP-1", 2000), 2: line(2, "MUG-2", 400), 3: line(3, "RUG-3", 900)}
NEEDS = {1: 2, 2: 1}  # two lamps and a mug, unless a test says otherwise


def candidate(code: str, stock: dict[str, int], needs: dict[int, int] = NEEDS,
              *effects: Effect) -> Candidate:
    """A location holding this stock, as the order sees it, and what the rules said of it."""
    latitude, longitude = PLACES[code]
    location = Location(code=code, name=code, kind="warehouse", country="BR",
                        latitude=Decimal(latitude), longitude=Decimal(longitude))
    order_side = {name: getattr(SOURCING.baseline, name) for name in ORDER_FIELDS}
    built = build_candidate(location, stock, order_side, SAO_PAULO, needs, LINES, 0)
    built.decision = SourcingDecision(effects=list(effects))
    return built


def plan(*candidates: Candidate, needs: dict[int, int] = NEEDS, **policy: object) -> Plan:
    """Allocate the order over these candidates with the rules' policy; return the plan."""
    made = Plan(needs=dict(needs), candidates=list(candidates), order_facts={})
    for name, value in policy.items():
        setattr(made, name, value)
    allocate(made, LINES)
    return made


def whys(made: Plan) -> dict[str, str]:
    return {c.code: c.why for c in made.candidates}


def test_prefers_the_location_that_ships_complete():
    # given a warehouse next door with only the lamps, and one in Rio with everything
    near = candidate("WH-SP", {"LAMP-1": 5})
    rio = candidate("WH-RJ", {"LAMP-1": 5, "MUG-2": 5})
    # when the order is allocated
    made = plan(near, rio)
    # then Rio ships the whole order as one parcel, though it is farther
    assert made.groups == {"WH-RJ": {1: 2, 2: 1}}
    assert made.remainder == {} and made.outcome == "allocated"
    assert whys(made) == {
        "WH-SP": "WH-RJ ships the whole order",
        "WH-RJ": "ranked 2 of 2 and can ship the whole order (the better-ranked ones cannot)"}


def test_of_the_locations_that_ship_complete_the_nearest_wins():
    # given two warehouses that each have everything
    made = plan(candidate("WH-BH", {"LAMP-1": 9, "MUG-2": 9}),
                candidate("WH-RJ", {"LAMP-1": 9, "MUG-2": 9}))
    # then the nearer one (Rio, 360 km against 490 km) ships it
    assert list(made.groups) == ["WH-RJ"]
    assert [(c.code, c.rank) for c in made.candidates] == [("WH-BH", 2), ("WH-RJ", 1)]
    # and its estimated shipping cost is the whole order's weight over that distance
    rio = distance_km(SAO_PAULO, (-22.90, -43.20))
    assert made.estimated_cost == shipping_cost(rio, Decimal("4.400"))


def test_splits_across_locations_when_none_ships_complete():
    # given the lamps in São Paulo and the mug only in Rio
    made = plan(candidate("WH-SP", {"LAMP-1": 5}), candidate("WH-RJ", {"MUG-2": 5}))
    # then each ships its part: a split order with two parcels
    assert made.groups == {"WH-SP": {1: 2}, "WH-RJ": {2: 1}}
    assert made.remainder == {}
    assert whys(made) == {"WH-SP": "ranked 1: ships 2 unit(s) of a split order",
                          "WH-RJ": "ranked 2: ships 1 unit(s) of a split order"}


def test_a_split_takes_from_the_best_ranked_location_first():
    # given lamps in three places: one lamp next door, plenty in Rio and in Belo Horizonte
    made = plan(candidate("WH-SP", {"LAMP-1": 1}), candidate("WH-RJ", {"LAMP-1": 9}),
                candidate("WH-BH", {"MUG-2": 1}))
    # then the nearest gives its one lamp, Rio the other, Belo Horizonte the mug
    assert made.groups == {"WH-SP": {1: 1}, "WH-RJ": {1: 1}, "WH-BH": {2: 1}}


def test_a_location_that_is_no_longer_needed_says_so():
    # given the lamps next door, the mug in Rio, and lamps again in Belo Horizonte
    made = plan(candidate("WH-SP", {"LAMP-1": 2}), candidate("WH-RJ", {"MUG-2": 1}),
                candidate("WH-BH", {"LAMP-1": 9}))
    # then Belo Horizonte is not used: the order is filled before its turn
    assert set(made.groups) == {"WH-SP", "WH-RJ"}
    assert whys(made)["WH-BH"] == "not needed: the order is filled"


def test_what_no_location_has_is_left_as_the_remainder():
    # given one lamp in stock anywhere, and no mug
    made = plan(candidate("WH-SP", {"LAMP-1": 1}))
    # then one lamp ships and the rest waits: a partial allocation
    assert made.groups == {"WH-SP": {1: 1}}
    assert made.remainder == {1: 1, 2: 1}
    assert made.outcome == "partially_allocated"
    assert whys(made) == {"WH-SP": "ranked 1: ships 1 unit(s); no location has the rest"}


def test_the_rules_can_require_the_order_to_ship_complete():
    # given no location with everything, and a rule requiring ship-complete
    made = plan(candidate("WH-SP", {"LAMP-1": 5}), candidate("WH-RJ", {"MUG-2": 5}),
                ship_complete=True)
    # then nothing is split: the whole order waits for stock
    assert made.groups == {}
    assert made.remainder == NEEDS and made.outcome == "backordered"
    assert set(whys(made).values()) == {
        "cannot ship the whole order, and the rules require ship-complete"}


def test_a_split_uses_no_more_locations_than_the_rules_allow():
    # given an order of three SKUs, each in a different place, and a cap of two locations
    needs = {1: 1, 2: 1, 3: 1}
    made = plan(candidate("WH-SP", {"LAMP-1": 1}, needs), candidate("WH-RJ", {"MUG-2": 1}, needs),
                candidate("WH-BH", {"RUG-3": 1}, needs), needs=needs, max_splits=2)
    # then the two best-ranked ship, and the third SKU waits
    assert set(made.groups) == {"WH-SP", "WH-RJ"}
    assert made.remainder == {3: 1}
    assert whys(made)["WH-BH"] == "beyond the cap of 2 location(s)"


def test_the_cap_counts_the_locations_already_shipping_for_the_order():
    # given an order already shipping from Rio (an earlier round), and a cap of one location
    made = plan(candidate("WH-SP", {"LAMP-1": 5}), candidate("WH-RJ", {"MUG-2": 5}),
                shipping_from=frozenset({"WH-RJ"}), max_splits=1)
    # then only Rio may add to it, though São Paulo is nearer
    assert made.groups == {"WH-RJ": {2: 1}}
    assert whys(made)["WH-SP"] == "beyond the cap of 1 location(s)"


def test_an_excluded_location_is_never_used_and_says_why():
    # given the nearest warehouse excluded by a rule
    closed = Effect("holiday", "exclude", Decimal(0), "closed for the holiday")
    made = plan(candidate("WH-SP", {"LAMP-1": 9, "MUG-2": 9}, NEEDS, closed),
                candidate("WH-RJ", {"LAMP-1": 9, "MUG-2": 9}))
    # then the next one ships, and the excluded one names the rule's reason
    assert list(made.groups) == ["WH-RJ"]
    assert whys(made)["WH-SP"] == "excluded: closed for the holiday"
    assert made.candidates[0].rank is None


def test_a_rule_score_outranks_distance():
    # given a rule scoring stores in Recife above the nearer warehouse
    boost = Effect("clear store stock", "score", Decimal(10), "clear store stock")
    made = plan(candidate("WH-SP", {"LAMP-1": 9, "MUG-2": 9}),
                candidate("ST-REC", {"LAMP-1": 9, "MUG-2": 9}, NEEDS, boost))
    # then Recife ships it
    assert list(made.groups) == ["ST-REC"]


def test_most_stock_prefers_the_location_that_fills_the_most_units():
    # given no location with everything: one lamp next door, two lamps in Rio
    sp, rio = candidate("WH-SP", {"LAMP-1": 1}), candidate("WH-RJ", {"LAMP-1": 2})
    # when the rules prefer the most stock
    made = plan(sp, rio, prefer="most_stock")
    # then Rio goes first and fills the lamps alone; São Paulo is not needed for them
    assert made.groups == {"WH-RJ": {1: 2}}
    assert whys(made)["WH-SP"] == "has nothing the order still needs"


def test_cheapest_prefers_the_location_whose_share_costs_least_to_ship():
    # given no location with everything: the lamps (4 kg) in Rio, 360 km away, the mug
    # (0.4 kg) in Belo Horizonte, 490 km away, and lamps again in Recife
    def candidates() -> tuple[Candidate, Candidate, Candidate]:
        return (candidate("WH-RJ", {"LAMP-1": 2}), candidate("WH-BH", {"MUG-2": 1}),
                candidate("ST-REC", {"LAMP-1": 2}))
    rio, bh, recife = candidates()
    assert bh.facts.shipping_cost < rio.facts.shipping_cost < recife.facts.shipping_cost
    # when the rules prefer the cheapest
    made = plan(rio, bh, recife, prefer="cheapest")
    # then the mug's light parcel ranks first, though farther; Recife is not needed
    assert [c.rank for c in (bh, rio, recife)] == [1, 2, 3]
    assert made.groups == {"WH-BH": {2: 1}, "WH-RJ": {1: 2}}
    assert whys(made)["ST-REC"] == "not needed: the order is filled"
    # and by default (nearest) Rio would rank first
    rio, bh, recife = candidates()
    plan(rio, bh, recife)
    assert [c.rank for c in (rio, bh, recife)] == [1, 2, 3]


def test_lines_of_one_sku_share_its_units():
    # given two lines of the same lamp (2 and 2 units) and 3 lamps at a location
    lines = {1: LINES[1], 5: line(5, "LAMP-1", 2000)}
    # then the first line is filled and the second gets what is left
    assert fill_lines({1: 2, 5: 2}, lines, {"LAMP-1": 3}) == {1: 2, 5: 1}
    assert fill_lines({1: 2, 5: 2}, lines, {"MUG-2": 3}) == {1: 0, 5: 0}


def test_a_candidate_knows_what_it_can_fill_and_how_far_it_is():
    # given a warehouse in Rio with the lamps and no mug
    rio = candidate("WH-RJ", {"LAMP-1": 7})
    # then the rules see what a person would check
    facts = rio.facts
    assert (facts.can_ship_complete, facts.lines_fillable, facts.units_fillable) == (False, 1, 2)
    assert facts.fill_share == Decimal("0.6667")
    assert facts.stock_depth == 5  # lamps left after this order
    assert facts.distance_known and Decimal(350) < facts.distance_km < Decimal(370)
