"""Customers, products and locations: create, update, list, bulk upsert."""

from __future__ import annotations

LOCATION = {"code": "WH-SP", "name": "Sao Paulo DC", "kind": "warehouse", "city": "Sao Paulo",
            "region": "SP", "postal_code": "01310", "country": "BR",
            "latitude": -23.5614, "longitude": -46.6559, "daily_capacity": 500}


def test_a_location_is_created_read_and_updated(client, admin):
    created = client.post("/locations", json=LOCATION, headers=admin)
    assert created.status_code == 201
    assert created.headers["Location"] == "/locations/WH-SP"
    assert created.json["latitude"] == -23.5614
    changed = client.patch("/locations/WH-SP", json={"daily_capacity": 650, "kind": "store"},
                           headers=admin)
    assert changed.status_code == 200
    read = client.get("/locations/WH-SP", headers=admin).json
    assert (read["daily_capacity"], read["kind"], read["name"]) == (650, "store", "Sao Paulo DC")


def test_creating_an_existing_key_is_a_409(client, admin):
    client.post("/locations", json=LOCATION, headers=admin)
    response = client.post("/locations", json=LOCATION, headers=admin)
    assert response.status_code == 409
    assert response.json["code"] == "already_exists"


def test_the_key_of_a_record_cannot_be_changed_and_bad_values_are_refused(client, admin):
    client.post("/locations", json=LOCATION, headers=admin)
    response = client.patch("/locations/WH-SP", json={"code": "WH-X", "latitude": 123,
                                                      "kind": "moon"}, headers=admin)
    assert response.status_code == 422
    assert {e["field"] for e in response.json["errors"]} == {"code", "latitude", "kind"}
    assert client.get("/locations/WH-SP", headers=admin).json["latitude"] == -23.5614


def test_reading_or_updating_a_missing_record_is_a_404(client, admin):
    assert client.get("/customers/NOPE", headers=admin).status_code == 404
    assert client.patch("/products/NOPE", json={"name": "x"}, headers=admin).status_code == 404


def test_bulk_upsert_reports_each_row_and_applies_the_good_ones(client, admin, catalog):
    rows = [
        {"id": "C-ANA", "name": "Ana Lima Souza", "tier": "platinum"},  # existing: updated
        {"id": "C-NEW", "name": "New Customer", "credit_limit": "250.00"},  # created
        {"id": "C-BAD", "name": "", "tier": "diamond"},  # invalid
        {"id": "C-NEW", "name": "Twice"},  # duplicate within the request
        "not an object",
    ]
    response = client.post("/customers/bulk", json={"rows": rows}, headers=admin)
    assert response.status_code == 200
    result = response.json
    assert (result["created"], result["updated"], result["failed"]) == (1, 1, 3)
    outcomes = [(r["index"], r["key"], r["outcome"]) for r in result["results"]]
    assert outcomes == [(0, "C-ANA", "updated"), (1, "C-NEW", "created"),
                        (2, "C-BAD", "error"), (3, "C-NEW", "error"), (4, None, "error")]
    assert {e["field"] for e in result["results"][2]["errors"]} == {"rows/2/name",
                                                                   "rows/2/tier"}
    assert client.get("/customers/C-ANA", headers=admin).json["tier"] == "platinum"
    assert client.get("/customers/C-NEW", headers=admin).json["credit_limit"] == "250.00"
    assert client.get("/customers/C-BAD", headers=admin).status_code == 404


def test_bulk_upsert_takes_at_most_1000_rows(client, admin):
    rows = [{"id": f"C-{n}", "name": f"Customer {n}"} for n in range(1001)]
    response = client.post("/customers/bulk", json={"rows": rows}, headers=admin)
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "rows"
    ok = client.post("/customers/bulk", json={"rows": rows[:1000]}, headers=admin)
    assert ok.json["created"] == 1000


def test_lists_page_through_records_in_key_order(client, admin):
    rows = [{"id": f"C-{n:03}", "name": f"Customer {n}"} for n in range(5)]
    client.post("/customers/bulk", json={"rows": rows}, headers=admin)
    first = client.get("/customers?limit=3", headers=admin).json
    assert [c["id"] for c in first["items"]] == ["C-000", "C-001", "C-002"]
    second = client.get(f"/customers?limit=3&cursor={first['next_cursor']}", headers=admin).json
    assert [c["id"] for c in second["items"]] == ["C-003", "C-004"]
    assert second["next_cursor"] is None


def test_locations_are_written_by_people_not_by_channel_integrations(client, make_key):
    erp = make_key("channel", channel="erp")
    assert client.post("/locations", json=LOCATION, headers=erp).status_code == 403
    assert client.get("/locations", headers=erp).status_code == 200
    ops = make_key("ops")
    assert client.post("/locations", json=LOCATION, headers=ops).status_code == 201
