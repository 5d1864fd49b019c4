"""Listing orders: filters and cursor pagination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from tests.conftest import order_body


def create_orders(client, headers, bodies) -> list[int]:
    ids = []
    for body in bodies:
        response = client.post("/orders", json=body, headers=headers)
        assert response.status_code == 201, response.json
        ids.append(response.json["id"])
    return ids


def ids_of(response) -> list[int]:
    assert response.status_code == 200, response.json
    return [order["id"] for order in response.json["items"]]


def test_pages_follow_the_cursor_until_every_order_was_seen_once(client, admin, catalog):
    ids = create_orders(client, admin, [order_body() for _ in range(7)])
    seen, url = [], "/orders?limit=3"
    pages = 0
    while url:
        page = client.get(url, headers=admin)
        seen.extend(ids_of(page))
        cursor = page.json["next_cursor"]
        url = f"/orders?limit=3&cursor={cursor}" if cursor else None
        pages += 1
    assert seen == sorted(ids, reverse=True)  # newest first, each once
    assert pages == 3


def test_filters_by_status_channel_customer_and_sku(client, admin, catalog):
    web, erp, ben = create_orders(client, admin, [
        order_body(channel="web"),
        order_body(channel="erp", lines=[{"sku": "BATT-3", "quantity": 1,
                                          "unit_price": "59.00"}]),
        order_body(channel="web", customer_id="C-BEN"),
    ])
    client.post(f"/orders/{web}/cancel", json={"reason": "test"}, headers=admin)
    assert ids_of(client.get("/orders?status=cancelled", headers=admin)) == [web]
    # allocated orders are released to the warehouse as soon as they are
    assert ids_of(client.get("/orders?status=released", headers=admin)) == [ben, erp]
    assert ids_of(client.get("/orders?channel=erp", headers=admin)) == [erp]
    assert ids_of(client.get("/orders?customer_id=C-BEN", headers=admin)) == [ben]
    assert ids_of(client.get("/orders?sku=BATT-3", headers=admin)) == [erp]
    assert ids_of(client.get("/orders?sku=LAMP-1&channel=web", headers=admin)) == [ben, web]


def test_filters_by_creation_time(client, admin, catalog):
    [order_id] = create_orders(client, admin, [order_body()])
    created = datetime.fromisoformat(client.get(f"/orders/{order_id}", headers=admin
                                                ).json["created_at"])
    before = quote((created - timedelta(minutes=1)).isoformat())
    after = quote((created + timedelta(minutes=1)).isoformat())
    assert ids_of(client.get(f"/orders?created_from={before}", headers=admin)) == [order_id]
    assert ids_of(client.get(f"/orders?created_from={after}", headers=admin)) == []
    assert ids_of(client.get(f"/orders?created_to={after}", headers=admin)) == [order_id]
    assert ids_of(client.get(f"/orders?created_to={before}", headers=admin)) == []
    naive = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert ids_of(client.get(f"/orders?created_to={quote(naive)}", headers=admin)) == [
        order_id]  # a time without a zone is taken as UTC


def test_an_empty_list_has_no_next_cursor(client, admin):
    response = client.get("/orders", headers=admin)
    assert response.json == {"items": [], "next_cursor": None}
