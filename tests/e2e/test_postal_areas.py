"""Postal areas: integrations load where postal codes lie; sourcing measures from there."""

from __future__ import annotations

from tests.conftest import order_body, stock


def test_areas_are_loaded_in_bulk_and_a_postal_code_finds_its_longest_prefix(client, admin,
                                                                             make_key):
    rows = [
        {"country": "BR", "prefix": "01", "latitude": -23.5, "longitude": -46.6,
         "region": "SP"},
        {"country": "BR", "prefix": "01310", "latitude": -23.561, "longitude": -46.656,
         "city": "Sao Paulo", "region": "SP"},
        {"country": "BR", "prefix": "01-310", "latitude": 0, "longitude": 0},
        {"country": "BR", "prefix": "01310", "latitude": 1, "longitude": 1},
        None,
    ]
    loaded = client.post("/postal-areas/bulk", json={"rows": rows}, headers=admin)
    assert loaded.status_code == 200
    assert (loaded.json["created"], loaded.json["failed"]) == (2, 3)
    assert [r["outcome"] for r in loaded.json["results"]] == [
        "created", "created", "error", "error", "error"]
    assert loaded.json["results"][2]["errors"][0]["field"] == "rows/2/prefix"
    assert "appears twice" in loaded.json["results"][3]["errors"][0]["message"]
    analyst = make_key("analyst")
    found = client.get("/postal-areas/lookup?postal_code=01310-100", headers=analyst)
    assert (found.status_code, found.json["prefix"], found.json["city"]) == (
        200, "01310", "Sao Paulo")
    assert client.get("/postal-areas/lookup?postal_code=01999-000",
                      headers=analyst).json["prefix"] == "01"
    assert client.get("/postal-areas/lookup?postal_code=99999-000",
                      headers=analyst).status_code == 404
    assert client.get("/postal-areas/lookup?postal_code=--",
                      headers=analyst).status_code == 422
    # loading again replaces
    again = client.post("/postal-areas/bulk", headers=admin, json={"rows": [
        {"country": "BR", "prefix": "01310", "latitude": -23.562, "longitude": -46.655}]})
    assert again.json["updated"] == 1
    assert client.post("/postal-areas/bulk", headers=analyst,
                       json={"rows": rows[:1]}).status_code == 403


def test_sourcing_measures_distance_from_the_postal_area(client, admin, catalog, services):
    client.post("/locations", headers=admin, json={
        "code": "WH-RJ", "name": "Rio warehouse", "kind": "warehouse", "region": "RJ",
        "country": "BR", "latitude": -22.906847, "longitude": -43.172897})
    stock(services, {("MUG-2", "WH-RJ"): 5, ("MUG-2", "WH-SP"): 5})
    client.post("/postal-areas/bulk", headers=admin, json={"rows": [
        {"country": "BR", "prefix": "20040", "latitude": -22.903, "longitude": -43.176}]})
    rio = dict(order_body(customer_id="C-BEN",
                          lines=[{"sku": "MUG-2", "quantity": 1, "unit_price": "24.50"}]))
    rio["shipping_address"] = {**rio["shipping_address"], "city": "Rio de Janeiro",
                               "region": "RJ", "postal_code": "20040-020"}
    order = client.post("/orders", json=rio, headers=admin).json
    [group] = client.get(f"/orders/{order['id']}/fulfilment", headers=admin).json["items"]
    assert group["location"] == "WH-RJ"
    decision = [d for d in client.get(f"/orders/{order['id']}/decisions",
                                      headers=admin).json["items"] if d["stage"] == "sourcing"][0]
    distances = {c["location"]: float(c["facts"]["distance_km"]) for c in decision["trace"]}
    assert distances["WH-RJ"] < 5 < 300 < distances["WH-SP"] < 400
