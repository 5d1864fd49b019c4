"""Input no real client sends, but some will: always a 4xx problem, never a 500."""

from __future__ import annotations

import base64
import json

import pytest

from api.schemas import encode_cursor
from tests.conftest import order_body

PROBLEM = "application/problem+json"


def refused(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == PROBLEM
    return response.json


@pytest.mark.parametrize("bad", ["A\u0000B", "A\ud800B", "bell\u0007"])
def test_text_with_nul_control_characters_or_broken_unicode_is_refused(client, admin, catalog,
                                                                       bad):
    body = order_body(channel_order_ref=bad)
    raw = json.dumps(body)  # escapes them as \u0000, \ud800: valid JSON text
    problem = refused(client.post("/orders", data=raw, content_type="application/json",
                                  headers=admin), 422)
    assert problem["errors"][0]["field"] == "channel_order_ref"
    rows = [{"id": "C-OK", "name": "Fine"}, {"id": "C-BAD", "name": bad}]
    result = client.post("/customers/bulk", json={"rows": rows}, headers=admin).json
    assert [r["outcome"] for r in result["results"]] == ["created", "error"]
    refused(client.get("/orders?channel=A%00B&sku=%07", headers=admin), 422)


def test_a_nul_in_a_path_key_is_a_404(client, admin):
    refused(client.get("/customers/A%00B", headers=admin), 404)


def test_numbers_beyond_what_the_record_holds_are_refused(client, admin, catalog):
    refused(client.get(f"/orders/{2**70}", headers=admin), 404)
    refused(client.get("/orders/0", headers=admin), 404)
    location = {"code": "WH", "name": "W", "kind": "warehouse", "country": "BR",
                "latitude": 1, "longitude": 1, "daily_capacity": 2**40}
    assert refused(client.post("/locations", json=location, headers=admin), 422)[
        "errors"][0]["field"] == "daily_capacity"
    huge = order_body(lines=[{"sku": "LAMP-1", "quantity": 1_000_000,
                              "unit_price": "999999999999.00"}])
    problem = refused(client.post("/orders", json=huge, headers=admin), 422)
    assert {e["field"] for e in problem["errors"]} == {"lines/0/quantity", "lines"}


def test_nan_and_infinity_are_not_numbers_we_keep(client, admin):
    for literal in ("NaN", "Infinity", "-Infinity", "1e400"):
        raw = ('{"code": "WH", "name": "W", "kind": "warehouse", "country": "BR", '
               f'"latitude": {literal}, "longitude": 1}}')
        problem = refused(client.post("/locations", data=raw, content_type="application/json",
                                      headers=admin), 422)
        assert problem["errors"][0]["field"] == "latitude", literal


def test_more_decimals_than_the_record_keeps_are_refused_not_rounded(client, admin):
    location = {"code": "WH", "name": "W", "kind": "warehouse", "country": "BR",
                "latitude": -23.1234567, "longitude": 1e-7}
    problem = refused(client.post("/locations", json=location, headers=admin), 422)
    assert {e["field"] for e in problem["errors"]} == {"latitude", "longitude"}
    location.update(latitude=-23.123456, longitude=-46.654321)
    created = client.post("/locations", json=location, headers=admin).json
    assert client.get("/locations/WH", headers=admin).json["latitude"] == created["latitude"] \
        == -23.123456
    product = {"sku": "YEN-1", "name": "Tea", "weight_g": 1, "length_cm": 1, "width_cm": 1,
               "height_cm": 1, "value": "10.5", "currency": "JPY"}
    assert refused(client.post("/products", json=product, headers=admin), 422)[
        "errors"][0]["field"] == "value"


def test_deeply_nested_json_is_a_400(client, admin):
    raw = "[" * 100_000 + "]" * 100_000
    problem = refused(client.post("/orders", data=raw, content_type="application/json",
                                  headers=admin), 400)
    assert problem["code"] == "malformed_json"


def test_timestamps_far_outside_any_order_are_refused(client, admin):
    for bad in ("9999-12-31T23:00:00-14:00", "0001-01-01T00:00:00+14:00"):
        problem = refused(client.get("/orders", query_string={"created_from": bad},
                                     headers=admin), 422)
        assert problem["errors"][0]["field"] == "created_from"


def test_forged_cursors_are_refused(client, admin):
    nested = base64.urlsafe_b64encode(b"[" * 1000 + b"]" * 1000).decode()
    for cursor in (encode_cursor({"before": True}), encode_cursor({"before": 2**70}),
                   encode_cursor({"before": "1"}), nested, "x" * 500):
        problem = refused(client.get("/orders", query_string={"cursor": cursor},
                                     headers=admin), 422)
        assert problem["errors"][0]["field"] == "cursor"


def test_null_where_a_value_is_required_is_a_422(client, admin, catalog):
    body = order_body(customer_id=None, lines=[{"sku": None, "quantity": None,
                                                "unit_price": None}])
    problem = refused(client.post("/orders", json=body, headers=admin), 422)
    assert {e["field"] for e in problem["errors"]} == {
        "customer_id", "lines/0/sku", "lines/0/quantity", "lines/0/unit_price"}


def test_a_body_that_is_not_utf8_is_refused(client, admin):
    problem = refused(client.post("/orders", data=b'{"customer_id": "\xff\xfe"}',
                                  content_type="application/json", headers=admin), 400)
    assert problem["code"] == "malformed_json"
