"""Inventory over HTTP: counts, adjustments, receipts, supply, the ledger, availability."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from engine.actors import system_actor
from engine.inventory.stock import lock_levels, move
from engine.record import Order, OrderLine, PostalArea
from engine.status import OrderStatus

# Our own locations: the catalog fixture may bring stock of its own elsewhere.
NORTH = {"code": "T-WH-NORTH", "name": "Recife DC", "kind": "warehouse", "country": "BR",
         "region": "PE", "latitude": -8.0476, "longitude": -34.877}
SOUTH = {"code": "T-WH-SOUTH", "name": "Sao Paulo DC", "kind": "warehouse", "country": "BR",
         "region": "SP", "latitude": -23.5614, "longitude": -46.6559}
CLOSED = {"code": "T-ST-CLOSED", "name": "Closed store", "kind": "store", "country": "BR",
          "latitude": -23.5614, "longitude": -46.6559, "active": False}


@pytest.fixture
def sites(client, admin, catalog):
    """Our own SKUs (no stock yet), two active warehouses and an inactive store."""
    products = [{"sku": sku, "name": sku, "weight_g": 500, "length_cm": 10, "width_cm": 10,
                 "height_cm": 10, "value": "10.00", "currency": "BRL"}
                for sku in ("T-LAMP", "T-MUG", "T-BATT")]
    response = client.post("/products/bulk", json={"rows": products}, headers=admin)
    assert response.json["failed"] == 0, response.json
    for location in (NORTH, SOUTH, CLOSED):
        response = client.post("/locations", json=location, headers=admin)
        assert response.status_code == 201, response.json
    return {"north": NORTH["code"], "south": SOUTH["code"], "closed": CLOSED["code"]}


@pytest.fixture
def sao_paulo(services):
    """Postal areas have no API: the prefix 01310 lies where the south warehouse is."""
    with services.uow() as uow:
        uow.session.add(PostalArea(country="BR", prefix="01310", latitude=Decimal("-23.5614"),
                                   longitude=Decimal("-46.6559"), city="Sao Paulo",
                                   region="SP"))
        uow.commit()
    return "01310-100"


def post(client, headers, path, body, status=200):
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == status, response.json
    return response.json


def level_of(client, headers, sku, location):
    response = client.get(f"/inventory?sku={sku}&location={location}", headers=headers)
    assert response.status_code == 200, response.json
    [level] = response.json["items"]
    return level


def ledger_of(client, headers, sku, location):
    response = client.get(f"/inventory/ledger?sku={sku}&location={location}&limit=200",
                          headers=headers)
    assert response.status_code == 200, response.json
    return response.json["items"]


def reserve(services, sku, location, units):
    """Reserve units as sourcing would for an order (there is no API for it)."""
    with services.uow() as uow:
        level = lock_levels(uow, [(sku, location)])[(sku, location)]
        move(uow, system_actor("test"), level, "reservation", 0, units, reason="test order")
        uow.commit()


def today():
    return datetime.now(UTC).date()


def cursor(position) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


# ----- counts, adjustments, receipts -----

def test_a_count_sets_on_hand_and_the_ledger_records_the_difference(client, admin, sites):
    # given a first count with a safety stock
    first = post(client, admin, "/inventory/counts",
                 {"sku": "T-LAMP", "location": sites["north"], "on_hand": 10,
                  "safety_stock": 2, "reference": "CNT-1"})
    assert (first["on_hand"], first["reserved"], first["safety_stock"], first["available"]) == (
        10, 0, 2, 8)
    # when a later count finds fewer
    second = post(client, admin, "/inventory/counts",
                  {"sku": "T-LAMP", "location": sites["north"], "on_hand": 7,
                   "reason": "cycle count", "reference": "CNT-2"})
    # then the level is the count, the safety stock stays, and the ledger tells the story
    assert (second["on_hand"], second["safety_stock"], second["available"]) == (7, 2, 5)
    assert level_of(client, admin, "T-LAMP", sites["north"]) == second
    ledger = ledger_of(client, admin, "T-LAMP", sites["north"])
    assert [(m["kind"], m["on_hand_change"], m["on_hand_after"], m["reference"])
            for m in ledger] == [("count", 10, 10, "CNT-1"), ("count", -3, 7, "CNT-2")]
    assert ledger[1]["reason"] == "cycle count"
    assert ledger[1]["actor"] == "api_key:bootstrap-admin"
    assert ledger[1]["reserved_change"] == 0 and ledger[1]["order_id"] is None


def test_adjustments_and_receipts_move_the_level_by_their_quantity(client, make_key, sites):
    ops, system = make_key("ops"), make_key("warehouse", scope=(sites["south"],))
    post(client, system, "/inventory/receipts",
         {"sku": "T-MUG", "location": sites["south"], "quantity": 12, "reference": "ASN-7"})
    adjusted = post(client, ops, "/inventory/adjustments",
                    {"sku": "T-MUG", "location": sites["south"], "quantity": -2,
                     "reason": "broken in handling"})
    assert adjusted["on_hand"] == 10
    found = post(client, ops, "/inventory/adjustments",
                 {"sku": "T-MUG", "location": sites["south"], "quantity": 1,
                  "reason": "found on the wrong shelf"})
    assert found["on_hand"] == 11
    ledger = ledger_of(client, ops, "T-MUG", sites["south"])
    assert [(m["kind"], m["on_hand_change"], m["on_hand_after"]) for m in ledger] == [
        ("receipt", 12, 12), ("adjustment", -2, 10), ("adjustment", 1, 11)]
    assert ledger[1]["reason"] == "broken in handling"
    assert ledger[0]["actor"] != ledger[1]["actor"]  # each key acts as itself


def test_a_receipt_counts_against_the_expected_supply_it_names(client, admin, sites):
    expected_on = (today() + timedelta(days=9)).isoformat()
    supply = post(client, admin, "/inventory/supply",
                  {"sku": "T-LAMP", "location": sites["south"], "reference": "PO-100",
                   "quantity": 20, "expected_on": expected_on}, status=201)
    assert (supply["quantity"], supply["received"], supply["outstanding"]) == (20, 0, 20)
    # sending it again changes it rather than adding another
    changed = post(client, admin, "/inventory/supply",
                   {"sku": "T-LAMP", "location": sites["south"], "reference": "PO-100",
                    "quantity": 25, "expected_on": expected_on}, status=201)
    assert changed["id"] == supply["id"] and changed["quantity"] == 25

    post(client, admin, "/inventory/receipts", {"sku": "T-LAMP", "location": sites["south"],
                                               "quantity": 15, "reference": "PO-100"})
    [open_supply] = client.get("/inventory/supply?sku=T-LAMP", headers=admin).json["items"]
    assert (open_supply["received"], open_supply["outstanding"]) == (15, 10)
    assert open_supply["expected_on"] == expected_on

    # a receipt of other units (another reference) leaves it alone; the rest closes it
    post(client, admin, "/inventory/receipts", {"sku": "T-LAMP", "location": sites["south"],
                                               "quantity": 4, "reference": "RMA-1"})
    post(client, admin, "/inventory/receipts", {"sku": "T-LAMP", "location": sites["south"],
                                               "quantity": 10, "reference": "PO-100"})
    assert client.get("/inventory/supply?sku=T-LAMP", headers=admin).json["items"] == []
    assert level_of(client, admin, "T-LAMP", sites["south"])["on_hand"] == 29


def test_a_change_below_what_is_reserved_is_a_409_and_changes_nothing(client, admin, sites,
                                                                    services):
    # given 10 on hand of which 4 are reserved for an order
    post(client, admin, "/inventory/counts",
         {"sku": "T-LAMP", "location": sites["north"], "on_hand": 10})
    reserve(services, "T-LAMP", sites["north"], 4)
    before = level_of(client, admin, "T-LAMP", sites["north"])
    ledger_before = ledger_of(client, admin, "T-LAMP", sites["north"])
    assert (before["on_hand"], before["reserved"], before["available"]) == (10, 4, 6)
    refused = [
        ("/inventory/adjustments", {"quantity": -7, "reason": "lost"}),
        ("/inventory/counts", {"on_hand": 3, "safety_stock": 1}),
    ]
    for path, change in refused:
        response = client.post(path, json={"sku": "T-LAMP", "location": sites["north"],
                                           **change}, headers=admin)
        assert response.status_code == 409
        assert response.mimetype == "application/problem+json"
        assert response.json["code"] == "insufficient_stock"
        assert "4 reserved" in response.json["detail"]
    # then neither the level (nor its safety stock) nor the ledger moved
    assert level_of(client, admin, "T-LAMP", sites["north"]) == before
    assert ledger_of(client, admin, "T-LAMP", sites["north"]) == ledger_before
    # and exactly down to what is reserved is allowed
    assert post(client, admin, "/inventory/adjustments",
                {"sku": "T-LAMP", "location": sites["north"], "quantity": -6,
                 "reason": "lost"})["on_hand"] == 4


def test_stock_cannot_go_below_zero(client, admin, sites):
    response = client.post("/inventory/adjustments",
                           json={"sku": "T-MUG", "location": sites["north"], "quantity": -1,
                                 "reason": "lost"}, headers=admin)
    assert response.status_code == 409
    assert response.json["code"] == "insufficient_stock"
    assert ledger_of(client, admin, "T-MUG", sites["north"]) == []


def test_unknown_skus_and_locations_are_a_422_naming_them(client, admin, sites):
    response = client.post("/inventory/receipts",
                           json={"sku": "NOPE-9", "location": "T-NOWHERE", "quantity": 1},
                           headers=admin)
    assert response.status_code == 422
    assert response.json["code"] == "unknown_references"
    assert {(e["field"], e["message"]) for e in response.json["errors"]} == {
        ("sku", "unknown SKU NOPE-9"), ("location", "unknown location T-NOWHERE")}
    response = client.post("/inventory/supply",
                           json={"sku": "T-LAMP", "location": "T-NOWHERE", "reference": "PO-1",
                                 "quantity": 1, "expected_on": "2030-01-01"}, headers=admin)
    assert response.status_code == 422
    assert "T-NOWHERE" in response.json["detail"]


@pytest.mark.parametrize(("path", "body", "fields"), [
    ("/inventory/counts", {"on_hand": 5, "colour": "red"}, {"colour"}),
    ("/inventory/counts", {"on_hand": -1, "safety_stock": 10_000_001}, {"on_hand",
                                                                        "safety_stock"}),
    ("/inventory/counts", {"on_hand": 2**70}, {"on_hand"}),
    ("/inventory/counts", {"on_hand": "5"}, {"on_hand"}),
    ("/inventory/adjustments", {"quantity": 0, "reason": "x"}, {"quantity"}),
    ("/inventory/adjustments", {"quantity": -1_000_001, "reason": "x"}, {"quantity"}),
    ("/inventory/adjustments", {"quantity": 3}, {"reason"}),
    ("/inventory/receipts", {"quantity": 0}, {"quantity"}),
    ("/inventory/receipts", {"quantity": 1.5, "reason": "a" * 201}, {"quantity", "reason"}),
    ("/inventory/supply", {"reference": "PO-1", "quantity": 1, "expected_on": "someday"},
     {"expected_on"}),
    ("/inventory/supply", {"quantity": 1, "expected_on": "2030-02-30"},
     {"reference", "expected_on"}),
])
def test_unknown_fields_and_numbers_out_of_range_are_a_422(client, admin, sites, path, body,
                                                          fields):
    response = client.post(path, json={"sku": "T-LAMP", "location": sites["north"], **body},
                           headers=admin)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "validation_failed"
    assert {e["field"] for e in response.json["errors"]} == fields
    assert ledger_of(client, admin, "T-LAMP", sites["north"]) == []


def test_a_level_cannot_grow_past_its_limit(client, admin, sites):
    post(client, admin, "/inventory/counts",
         {"sku": "T-LAMP", "location": sites["north"], "on_hand": 10_000_000})
    response = client.post("/inventory/receipts", json={"sku": "T-LAMP",
                                                        "location": sites["north"],
                                                        "quantity": 1}, headers=admin)
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "quantity"
    assert level_of(client, admin, "T-LAMP", sites["north"])["on_hand"] == 10_000_000


# ----- bulk -----

def test_bulk_applies_the_good_rows_and_reports_each_row_in_order(client, admin, sites,
                                                                 services):
    north, south = sites["north"], sites["south"]
    post(client, admin, "/inventory/counts", {"sku": "T-MUG", "location": south, "on_hand": 5})
    reserve(services, "T-MUG", south, 5)
    rows = [
        {"sku": "T-LAMP", "location": north, "quantity": 4, "reason": "found"},   # applied
        {"sku": "T-LAMP", "location": north, "quantity": 0, "reason": "zero"},    # schema
        {"sku": "T-LAMP", "location": north, "quantity": 1, "reason": "x", "bin": "A1"},
        {"sku": "GHOST-1", "location": north, "quantity": 1, "reason": "x"},       # unknown SKU
        {"sku": "T-LAMP", "location": "T-NOWHERE", "quantity": 1, "reason": "x"},  # unknown loc
        {"sku": "T-MUG", "location": south, "quantity": -1, "reason": "lost"},     # reserved
        "not a row",
        {"sku": "T-LAMP", "location": north, "quantity": -3, "reason": "damaged"},  # applied
        {"sku": "T-MUG", "location": south, "quantity": 2, "reason": "found"},     # applied
    ]
    response = client.post("/inventory/adjustments/bulk", json={"rows": rows}, headers=admin)
    assert response.status_code == 200, response.json
    result = response.json
    assert (result["applied"], result["failed"]) == (3, 6)
    assert [(r["index"], r["outcome"], r["code"]) for r in result["results"]] == [
        (0, "applied", None), (1, "error", "validation_failed"),
        (2, "error", "validation_failed"), (3, "error", "unknown_references"),
        (4, "error", "unknown_references"), (5, "error", "insufficient_stock"),
        (6, "error", "validation_failed"), (7, "applied", None), (8, "applied", None)]
    by_index = result["results"]
    assert [e["field"] for e in by_index[1]["errors"]] == ["rows/1/quantity"]
    assert [e["field"] for e in by_index[2]["errors"]] == ["rows/2/bin"]
    assert [e["field"] for e in by_index[3]["errors"]] == ["rows/3/sku"]
    assert [e["field"] for e in by_index[4]["errors"]] == ["rows/4/location"]
    assert [e["field"] for e in by_index[5]["errors"]] == ["rows/5/quantity"]
    assert [e["field"] for e in by_index[6]["errors"]] == ["rows/6"]
    assert (by_index[3]["sku"], by_index[3]["location"]) == ("GHOST-1", north)
    assert by_index[6]["sku"] is None and by_index[6]["level"] is None
    assert by_index[8]["level"]["on_hand"] == 7 and by_index[8]["level"]["reserved"] == 5
    # the good rows were applied, each with its movement, and the bad ones left no trace
    assert level_of(client, admin, "T-LAMP", north)["on_hand"] == 1
    assert [m["on_hand_change"] for m in ledger_of(client, admin, "T-LAMP", north)] == [4, -3]
    assert [m["on_hand_change"] for m in ledger_of(client, admin, "T-MUG", south)] == [5, 0, 2]


def test_bulk_counts_and_receipts_report_their_own_fields(client, admin, sites):
    north = sites["north"]
    counts = client.post("/inventory/counts/bulk", json={"rows": [
        {"sku": "T-LAMP", "location": north, "on_hand": 8, "safety_stock": 1},
        {"sku": "T-MUG", "location": north, "on_hand": -8},
        {"sku": "T-BATT", "location": north, "on_hand": 3},
    ]}, headers=admin).json
    assert (counts["applied"], counts["failed"]) == (2, 1)
    assert counts["results"][1]["errors"][0]["field"] == "rows/1/on_hand"
    assert counts["results"][0]["level"]["available"] == 7
    receipts = client.post("/inventory/receipts/bulk", json={"rows": [
        {"sku": "T-LAMP", "location": north, "quantity": 2},
        {"sku": "T-LAMP", "location": north, "quantity": 10_000_000},
    ]}, headers=admin).json
    assert [r["code"] for r in receipts["results"]] == [None, "validation_failed"]
    assert receipts["results"][1]["errors"][0]["field"] == "rows/1/quantity"
    assert level_of(client, admin, "T-LAMP", north)["on_hand"] == 10
    # a row that is not an object at all (null, a number) fails on its own too
    odd = client.post("/inventory/adjustments/bulk", json={"rows": [
        None, 7, {"sku": "T-LAMP", "location": north, "quantity": 1, "reason": "found"},
    ]}, headers=admin)
    assert odd.status_code == 200
    assert [r["outcome"] for r in odd.json["results"]] == ["error", "error", "applied"]
    assert odd.json["results"][0]["errors"][0]["field"].startswith("rows/0")


def test_a_refused_count_in_a_bulk_leaves_the_safety_stock_alone(client, admin, sites,
                                                                services):
    post(client, admin, "/inventory/counts",
         {"sku": "T-LAMP", "location": sites["north"], "on_hand": 10, "safety_stock": 1})
    reserve(services, "T-LAMP", sites["north"], 6)
    result = client.post("/inventory/counts/bulk", json={"rows": [
        {"sku": "T-LAMP", "location": sites["north"], "on_hand": 2, "safety_stock": 9},
        {"sku": "T-MUG", "location": sites["north"], "on_hand": 1},
    ]}, headers=admin).json
    assert [r["outcome"] for r in result["results"]] == ["error", "applied"]
    assert level_of(client, admin, "T-LAMP", sites["north"])["safety_stock"] == 1


def test_bulk_takes_1_to_5000_rows(client, admin, sites):
    row = {"sku": "T-LAMP", "location": sites["north"], "quantity": 1}
    too_many = client.post("/inventory/receipts/bulk", json={"rows": [row] * 5001},
                           headers=admin)
    assert too_many.status_code == 422
    assert too_many.json["errors"][0]["field"] == "rows"
    empty = client.post("/inventory/receipts/bulk", json={"rows": []}, headers=admin)
    assert empty.status_code == 422
    full = client.post("/inventory/receipts/bulk", json={"rows": [row] * 5000}, headers=admin)
    assert full.status_code == 200
    assert full.json["applied"] == 5000
    assert level_of(client, admin, "T-LAMP", sites["north"])["on_hand"] == 5000


# ----- reading -----

def test_the_stock_list_pages_in_sku_then_location_order(client, admin, sites):
    # given our own SKU at three locations (the catalog's SKUs may have stock elsewhere)
    client.post("/products", json={"sku": "T-PAGE-1", "name": "Paged", "weight_g": 1,
                                   "length_cm": 1, "width_cm": 1, "height_cm": 1,
                                   "value": "1.00", "currency": "BRL"}, headers=admin)
    for location in (sites["south"], sites["closed"], sites["north"]):
        post(client, admin, "/inventory/counts",
             {"sku": "T-PAGE-1", "location": location, "on_hand": 1})
    seen, url = [], "/inventory?sku=T-PAGE-1&limit=2"
    while url:
        page = client.get(url, headers=admin)
        assert page.status_code == 200, page.json
        seen.extend(level["location"] for level in page.json["items"])
        next_cursor = page.json["next_cursor"]
        url = f"/inventory?sku=T-PAGE-1&limit=2&cursor={next_cursor}" if next_cursor else None
    assert seen == sorted([sites["north"], sites["south"], sites["closed"]])
    by_location = client.get(f"/inventory?location={sites['closed']}", headers=admin).json
    assert [level["sku"] for level in by_location["items"]] == ["T-PAGE-1"]


@pytest.mark.parametrize("forged", [
    "not-a-cursor", cursor({"after": ["only-one"]}), cursor({"after": "T-LAMP"}),
    cursor({"after": ["T-LAMP", 7]}), cursor({"after": ["T-LAMP", "\u0000"]}),
    cursor({"before": ["T-LAMP", "T-WH-NORTH"]}), cursor([1, 2]), "A" * 500,
])
def test_a_forged_stock_cursor_is_a_422(client, admin, forged):
    response = client.get(f"/inventory?cursor={forged}", headers=admin)
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "cursor"


def test_the_ledger_pages_oldest_first_and_filters(client, admin, sites):
    for quantity in (1, 2, 3, 4, 5):
        post(client, admin, "/inventory/receipts",
             {"sku": "T-BATT", "location": sites["south"], "quantity": quantity})
    post(client, admin, "/inventory/receipts",
         {"sku": "T-BATT", "location": sites["north"], "quantity": 9})
    url = f"/inventory/ledger?sku=T-BATT&location={sites['south']}&limit=2"
    first = client.get(url, headers=admin).json
    second = client.get(f"{url}&cursor={first['next_cursor']}", headers=admin).json
    assert [m["on_hand_change"] for m in first["items"] + second["items"]] == [1, 2, 3, 4]
    assert [m["on_hand_after"] for m in second["items"]] == [6, 10]
    assert client.get("/inventory/ledger?sku=T-BATT&order_id=12345",
                      headers=admin).json["items"] == []
    for bad in ("order_id=0", "order_id=x", f"cursor={cursor({'after': 0})}", "limit=201",
                "kind=count"):
        assert client.get(f"/inventory/ledger?{bad}", headers=admin).status_code == 422


def test_who_may_change_and_read_stock(client, make_key, sites):
    body = {"sku": "T-LAMP", "location": sites["north"], "on_hand": 1}
    analyst, ops = make_key("analyst"), make_key("ops")
    system = make_key("warehouse", scope=(sites["north"],))
    for path in ("/inventory/counts", "/inventory/counts/bulk"):
        payload = {"rows": [body]} if path.endswith("bulk") else body
        refused = client.post(path, json=payload, headers=analyst)
        assert refused.status_code == 403
        assert refused.json["code"] == "forbidden"
        assert client.post(path, json=payload).status_code == 401
    assert client.post("/inventory/supply", json={}, headers=analyst).status_code == 403
    assert client.post("/inventory/counts", json=body, headers=ops).status_code == 200
    assert client.post("/inventory/counts", json=body, headers=system).status_code == 200
    for path in ("/inventory", "/inventory/ledger", "/inventory/supply?sku=T-LAMP",
                 "/availability?sku=T-LAMP"):
        assert client.get(path, headers=analyst).status_code == 200
        assert client.get(path).status_code == 401
    assert client.get("/inventory/supply?sku=NOPE", headers=analyst).status_code == 404


def test_a_stock_command_replays_under_its_idempotency_key(client, admin, sites):
    body = {"sku": "T-LAMP", "location": sites["north"], "quantity": 3}
    headers = {**admin, "Idempotency-Key": "receipt-asn-1"}
    first = client.post("/inventory/receipts", json=body, headers=headers)
    again = client.post("/inventory/receipts", json=body, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json == first.json
    assert level_of(client, admin, "T-LAMP", sites["north"])["on_hand"] == 3


# ----- availability -----

def test_the_promise_from_stock_is_today_plus_the_transit_from_that_location(
        client, admin, sites, sao_paulo):
    # given 10 in the far north and 3 next door to the customer
    post(client, admin, "/inventory/counts",
         {"sku": "T-LAMP", "location": sites["north"], "on_hand": 10})
    post(client, admin, "/inventory/counts",
         {"sku": "T-LAMP", "location": sites["south"], "on_hand": 3})
    near = client.get(f"/availability?sku=T-LAMP&qty=2&postal_code={sao_paulo}",
                      headers=admin).json
    assert near["destination_known"] is True
    assert near["promise"] == {"date": (today() + timedelta(days=2)).isoformat(),
                               "location": sites["south"], "source": "stock"}
    by_code = {entry["location"]: entry for entry in near["locations"]}
    assert by_code[sites["south"]]["distance_km"] == 0
    assert by_code[sites["south"]]["transit_days"] == 2
    assert 2000 < by_code[sites["north"]]["distance_km"] < 2300
    assert by_code[sites["north"]]["transit_days"] == 6
    # when more is wanted than the near location has, the far one promises later
    far = client.get(f"/availability?sku=T-LAMP&qty=5&postal_code={sao_paulo}",
                     headers=admin).json
    assert far["promise"] == {"date": (today() + timedelta(days=6)).isoformat(),
                              "location": sites["north"], "source": "stock"}


def test_the_promise_from_supply_is_its_arrival_plus_transit(client, admin, sites, sao_paulo):
    # given 3 next door and 5 more expected there in 10 days
    post(client, admin, "/inventory/counts",
         {"sku": "T-MUG", "location": sites["south"], "on_hand": 3})
    arrival = today() + timedelta(days=10)
    post(client, admin, "/inventory/supply",
         {"sku": "T-MUG", "location": sites["south"], "reference": "PO-7", "quantity": 5,
          "expected_on": arrival.isoformat()}, status=201)
    result = client.get(f"/availability?sku=T-MUG&qty=5&postal_code={sao_paulo}",
                        headers=admin).json
    assert result["promise"] == {"date": (arrival + timedelta(days=2)).isoformat(),
                                 "location": sites["south"], "source": "supply"}
    [south] = [e for e in result["locations"] if e["location"] == sites["south"]]
    assert south["available_to_promise"] == 3
    assert south["supply"] == [{"reference": "PO-7", "expected_on": arrival.isoformat(),
                                "quantity": 5, "promisable": 5}]
    # when overdue supply is on record in the north, it counts as arriving today
    post(client, admin, "/inventory/supply",
         {"sku": "T-MUG", "location": sites["north"], "reference": "PO-3", "quantity": 6,
          "expected_on": (today() - timedelta(days=4)).isoformat()}, status=201)
    result = client.get(f"/availability?sku=T-MUG&qty=5&postal_code={sao_paulo}",
                        headers=admin).json
    assert result["promise"] == {"date": (today() + timedelta(days=6)).isoformat(),
                                 "location": sites["north"], "source": "supply"}


def test_there_is_no_promise_when_nothing_covers_the_quantity(client, admin, sites):
    post(client, admin, "/inventory/counts",
         {"sku": "T-BATT", "location": sites["north"], "on_hand": 4, "safety_stock": 1})
    post(client, admin, "/inventory/supply",
         {"sku": "T-BATT", "location": sites["south"], "reference": "PO-9", "quantity": 4,
          "expected_on": "2030-01-01"}, status=201)
    result = client.get("/availability?sku=T-BATT&qty=5", headers=admin).json
    assert result["promise"] is None
    assert "5 unit(s)" in result["reason"]
    assert [(e["location"], e["available_to_promise"], e["promise_date"])
            for e in result["locations"]] == [(sites["north"], 3, None),
                                               (sites["south"], 0, None)]
    # an unknown postal code: no distance, a cautious transit time
    result = client.get("/availability?sku=T-BATT&qty=3&postal_code=99999", headers=admin).json
    assert result["destination_known"] is False
    assert result["locations"][0]["distance_km"] is None
    assert result["promise"]["date"] == (today() + timedelta(days=6)).isoformat()


def test_waiting_backorders_are_held_back_from_the_promise(client, admin, sites, services):
    # given 10 in the north, 3 in the south and 4 more expected in the south
    post(client, admin, "/inventory/counts",
         {"sku": "T-LAMP", "location": sites["north"], "on_hand": 10})
    post(client, admin, "/inventory/counts",
         {"sku": "T-LAMP", "location": sites["south"], "on_hand": 3})
    post(client, admin, "/inventory/supply",
         {"sku": "T-LAMP", "location": sites["south"], "reference": "PO-1", "quantity": 4,
          "expected_on": (today() + timedelta(days=3)).isoformat()}, status=201)
    # and an order waiting for 15 units (more than there is in stock)
    waiting_order(services, "T-LAMP", 15)
    result = client.get("/availability?sku=T-LAMP&qty=1", headers=admin).json
    by_code = {entry["location"]: entry for entry in result["locations"]}
    # then the backorder takes stock in location order, then the earliest supply
    assert (by_code[sites["north"]]["held_back"],
            by_code[sites["north"]]["available_to_promise"]) == (10, 0)
    assert (by_code[sites["south"]]["held_back"],
            by_code[sites["south"]]["available_to_promise"]) == (3, 0)
    assert by_code[sites["south"]]["supply"][0]["promisable"] == 2
    assert result["promise"]["source"] == "supply"
    assert client.get("/availability?sku=T-LAMP&qty=3",
                      headers=admin).json["promise"] is None


def test_availability_leaves_out_inactive_locations_and_checks_its_query(client, admin,
                                                                        sites):
    post(client, admin, "/inventory/counts",
         {"sku": "T-MUG", "location": sites["closed"], "on_hand": 50})
    result = client.get("/availability?sku=T-MUG&qty=1", headers=admin).json
    assert sites["closed"] not in {entry["location"] for entry in result["locations"]}
    assert result["promise"] is None
    assert result["quantity"] == 1 and result["country"] == "BR"
    missing = client.get("/availability?sku=NOPE-1", headers=admin)
    assert missing.status_code == 404
    assert missing.json["code"] == "not_found"
    for bad in ("sku=T-MUG&qty=0", "sku=T-MUG&qty=-3", "sku=T-MUG&qty=x", "qty=1",
                "sku=T-MUG&country=XX", "sku=T-MUG&colour=red"):
        response = client.get(f"/availability?{bad}", headers=admin)
        assert response.status_code == 422, bad
        assert response.mimetype == "application/problem+json"


def waiting_order(services, sku, units):
    """Record an order that waits for units of a SKU (as sourcing leaves a backorder)."""
    with services.uow() as uow:
        order = Order(channel="web", customer_id="C-BEN", status=OrderStatus.BACKORDERED,
                      currency="BRL", service_level="standard", payment_terms="prepaid",
                      ship_to_name="Ben", ship_to_line1="Rua 1", ship_to_city="Recife",
                      ship_to_country="BR", subtotal=Decimal(1), shipping_amount=Decimal(0),
                      tax_amount=Decimal(0), total=Decimal(1), created_by="test")
        order.lines.append(OrderLine(line_no=1, sku=sku, unit_price=Decimal(1),
                                     line_total=Decimal(units), quantity_ordered=units,
                                     quantity_backordered=units))
        uow.session.add(order)
        uow.commit()


def test_the_quantity_defaults_to_one_unit(client, admin, sites):
    post(client, admin, "/inventory/counts",
         {"sku": "T-LAMP", "location": sites["south"], "on_hand": 1})
    promise = client.get("/availability?sku=T-LAMP", headers=admin).json["promise"]
    assert date.fromisoformat(promise["date"]) == today() + timedelta(days=6)
