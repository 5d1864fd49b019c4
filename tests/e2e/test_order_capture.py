"""Capturing orders through the API, as a channel would."""

from __future__ import annotations

from sqlalchemy import func, select

from engine.record import Order, OrderEvent, OrderLine
from tests.conftest import order_body


def count(services, model) -> int:
    with services.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(model))


def test_a_captured_order_is_recorded_in_status_received_with_its_totals(client, admin, catalog):
    # given a valid order from the web channel
    body = order_body(tax_amount="10.05")
    # when it is posted
    response = client.post("/orders", json=body, headers=admin)
    # then it is recorded, and the response says where
    assert response.status_code == 201
    order = response.json
    assert response.headers["Location"] == f"/orders/{order['id']}"
    # the default validation rules found nothing, and the warehouse has every unit
    assert order["status"] == "allocated"
    assert order["channel"] == "web"
    assert order["channel_order_ref"] == body["channel_order_ref"]
    assert order["subtotal"] == "204.30"  # 2 x 89.90 + 24.50
    assert order["total"] == "229.35"  # + 15.00 shipping + 10.05 tax
    assert order["payment_terms"] == "net30"  # the customer's terms, as none were sent
    assert [line["line_total"] for line in order["lines"]] == ["179.80", "24.50"]
    assert order["lines"][0]["quantities"] == {
        "ordered": 2, "allocated": 2, "shipped": 0, "delivered": 0, "cancelled": 0,
        "returned": 0, "backordered": 0}
    assert order["shipping_address"]["postal_code"] == "01310-100"
    # and reading it back gives the same record, released to the warehouse meanwhile
    again = client.get(response.headers["Location"], headers=admin)
    assert again.status_code == 200
    assert again.json["status"] == "released"
    assert {**again.json, "status": "allocated", "updated_at": None} == {
        **order, "updated_at": None}


def test_the_timeline_records_the_capture_and_who_did_it(client, make_key, catalog):
    erp = make_key("channel", channel="erp", name="erp-integration")
    created = client.post("/orders", json=order_body(channel="erp"), headers=erp).json
    events = client.get(f"/orders/{created['id']}/events", headers=erp).json["items"]
    assert [event["type"] for event in events] == [
        "order.received", "order.validated", "order.allocated", "order.carrier_selected",
        "group.released", "order.released", "customer.notified"]
    assert {event["actor"]["id"] for event in events[:4]} == {"erp-integration"}
    assert [event["actor"]["id"] for event in events[4:]] == [
        "wms-release", "wms-release", "notifier"]
    validation, sourcing, carrier = client.get(f"/orders/{created['id']}/decisions",
                                               headers=erp).json["items"]
    assert events[1]["data"] == {"previous_status": "received", "status": "validated",
                                 "reasons": [], "stage": "validation", "version": 1,
                                 "decision_id": validation["id"]}
    assert events[2]["data"] == {"previous_status": "validated", "status": "allocated",
                                 "reasons": [], "stage": "sourcing", "version": 1,
                                 "groups": [{"location": "WH-SP", "units": 3}],
                                 "backordered_units": 0, "decision_id": sourcing["id"]}
    [shipment] = events[3]["data"]["shipments"]
    assert (events[3]["data"]["stage"], events[3]["data"]["decision_id"]) == (
        "carrier", carrier["id"])
    assert shipment["location"] == "WH-SP"
    assert events[0]["data"]["total"] == created["total"]


def test_a_resubmitted_channel_reference_points_at_the_existing_order(client, admin, catalog):
    body = order_body()
    first = client.post("/orders", json=body, headers=admin)
    # the channel sends the same order again (a new request, no idempotency key)
    second = client.post("/orders", json={**body, "tax_amount": "1.00"}, headers=admin)
    assert second.status_code == 409
    assert second.json["code"] == "duplicate_order"
    assert second.json["order_id"] == first.json["id"]
    assert second.headers["Location"] == f"/orders/{first.json['id']}"


def test_the_same_reference_from_another_channel_is_another_order(client, admin, catalog):
    body = order_body()
    assert client.post("/orders", json=body, headers=admin).status_code == 201
    assert client.post("/orders", json={**body, "channel": "marketplace"},
                       headers=admin).status_code == 201


def test_unknown_customer_and_skus_are_listed_and_nothing_is_written(client, admin, catalog,
                                                                      services):
    body = order_body(customer_id="C-NOBODY", lines=[
        {"sku": "LAMP-1", "quantity": 1, "unit_price": "89.90"},
        {"sku": "GHOST-1", "quantity": 1, "unit_price": "1.00"},
        {"sku": "GHOST-2", "quantity": 1, "unit_price": "1.00"},
    ])
    response = client.post("/orders", json=body, headers=admin)
    assert response.status_code == 422
    problem = response.json
    assert problem["code"] == "unknown_references"
    assert problem["unknown_skus"] == ["GHOST-1", "GHOST-2"]
    assert problem["unknown_customer_id"] == "C-NOBODY"
    assert {e["field"] for e in problem["errors"]} == {"customer_id", "lines/1/sku",
                                                      "lines/2/sku"}
    assert (count(services, Order), count(services, OrderLine), count(services, OrderEvent)) == (
        0, 0, 0)


def test_prices_with_more_decimals_than_the_currency_allows_are_refused(client, admin, catalog):
    body = order_body(currency="JPY", lines=[{"sku": "MUG-2", "quantity": 1,
                                              "unit_price": "100.5"}], shipping_amount="0")
    response = client.post("/orders", json=body, headers=admin)
    assert response.status_code == 422
    assert response.json["errors"] == [{"field": "lines/0/unit_price", "in": "body",
                                        "message": "JPY amounts have at most 0 decimals"}]


def test_an_inactive_product_cannot_be_ordered(client, admin, catalog):
    assert client.patch("/products/MUG-2", json={"active": False},
                        headers=admin).status_code == 200
    response = client.post("/orders", json=order_body(), headers=admin)
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "lines/1/sku"


def test_an_order_without_a_channel_from_ops_is_a_manual_order(client, make_key, catalog):
    ops = make_key("ops")
    body = order_body()
    del body["channel"]
    response = client.post("/orders", json=body, headers=ops)
    assert response.status_code == 201
    assert response.json["channel"] == "manual"
