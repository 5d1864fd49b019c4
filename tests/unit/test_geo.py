"""Distances, and the transit and cost estimates sourcing and availability make from them."""

from __future__ import annotations

from decimal import Decimal

from engine.catalog.geo import distance_km, postal_prefix, shipping_cost, transit_days

SAO_PAULO = (-23.5505, -46.6333)
RIO = (-22.9068, -43.1729)
RECIFE = (-8.0476, -34.8770)


def test_the_distance_between_two_cities_is_the_great_circle_in_km():
    # given São Paulo and Rio de Janeiro, and São Paulo and Recife
    # then the distances are those on a map, to 100 m
    assert Decimal(355) < distance_km(SAO_PAULO, RIO) < Decimal(362)
    assert Decimal(2120) < distance_km(SAO_PAULO, RECIFE) < Decimal(2140)
    assert distance_km(SAO_PAULO, RIO).as_tuple().exponent == -1


def test_a_distance_is_the_same_both_ways_and_nothing_to_the_same_place():
    assert distance_km(SAO_PAULO, RIO) == distance_km(RIO, SAO_PAULO)
    assert distance_km(RIO, RIO) == Decimal("0.0")


def test_the_farthest_two_points_are_half_the_earth_apart():
    # given two antipodes (rounding must not push the arcsine out of its domain)
    # then the distance is half the circumference, about 20,015 km
    assert Decimal(20_010) < distance_km((0.0, 0.0), (0.0, 180.0)) < Decimal(20_020)


def test_transit_takes_a_day_of_handling_and_a_day_per_500_km():
    # given destinations next door, 500 km, 501 km and 2,130 km away
    # then the parcel takes 2, 2, 3 and 6 days
    assert [transit_days(Decimal(km)) for km in (0, 500, 501, 2130)] == [2, 2, 3, 6]
    # and where the distance cannot be known, a cautious national average
    assert transit_days(None) == 6


def test_the_shipping_estimate_grows_with_weight_and_distance():
    # given a 2 kg parcel sent 100 km: 8.00 base + 0.90 per kg per 100 km
    assert shipping_cost(Decimal(100), Decimal(2)) == Decimal("9.80")
    # then a lighter parcel than half a kilo is billed as half a kilo
    assert shipping_cost(Decimal(100), Decimal("0.1")) == shipping_cost(Decimal(100),
                                                                        Decimal("0.5"))
    # and an unknown distance is estimated as a national parcel (1,500 km)
    assert shipping_cost(None, Decimal(2)) == shipping_cost(Decimal(1500), Decimal(2))


def test_postal_codes_are_keyed_by_their_letters_and_digits():
    assert postal_prefix("01310-100") == "01310100"
    assert postal_prefix("sw1a 1aa") == "SW1A1AA"
    assert postal_prefix("") == ""
