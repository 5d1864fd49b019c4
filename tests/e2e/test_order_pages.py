"""The order pages over HTTP: who may do what, the search's query, escaping, refusals."""

from __future__ import annotations

from tests.conftest import order_body


def capture(client, admin, **overrides) -> int:
    response = client.post("/orders", json=order_body(**overrides), headers=admin)
    assert response.status_code == 201, response.json
    return response.json["id"]


def test_empty_search_fields_leave_the_url_so_that_it_is_the_rest_query(console, catalog):
    ops = console("ops")
    response = ops.get("/console/orders?channel_order_ref=&sku=MUG-2&status=released&channel=")
    assert response.status_code == 303
    assert response.headers["Location"] == "/console/orders?sku=MUG-2&status=released"


def test_a_bad_search_is_refused_on_the_field_as_the_api_refuses_it(console, client, admin,
                                                                     catalog):
    ops = console("ops")
    page = ops.get("/console/orders?status=lost&created_from=yesterday")
    api = client.get("/orders?status=lost&created_from=yesterday", headers=admin)
    assert page.status_code == api.status_code == 422
    html = page.get_data(as_text=True)
    assert 'id="f-created_from" name="created_from"' in html
    assert 'aria-invalid="true" aria-describedby="f-created_from-error"' in html
    assert sorted(e["field"].split("/")[0] for e in api.json["errors"]) == [
        "created_from", "status"]


def test_the_page_finds_what_the_api_finds(console, client, admin, catalog):
    first = capture(client, admin, channel_order_ref="REF-1")
    second = capture(client, admin, channel="erp")
    ops = console("ops")
    html = ops.get("/console/orders?channel=erp").get_data(as_text=True)
    assert f">#{second}</a>" in html and f">#{first}</a>" not in html
    assert [o["id"] for o in client.get("/orders?channel=erp", headers=admin).json["items"]] == [
        second]


def test_an_order_number_opens_its_page(console, client, admin, catalog):
    order_id = capture(client, admin)
    ops = console("ops")
    response = ops.get(f"/console/orders/go?id=%23{order_id}")
    assert (response.status_code, response.headers["Location"]) == (
        303, f"/console/orders/{order_id}")
    assert ops.get("/console/orders/go?id=abc").headers["Location"] == "/console/orders"
    assert ops.get("/console/orders/999999").status_code == 404


def test_everything_a_channel_sent_is_shown_as_text(console, client, admin, catalog):
    address = {"name": "<script>alert(1)</script>\u202eevil", "line1": "\"><b>bold</b>",
               "city": "Sao Paulo", "region": "SP", "postal_code": "01310-100", "country": "BR"}
    order_id = capture(client, admin, shipping_address=address,
                       channel_order_ref="<i>ref</i>")
    html = console("ops").get(f"/console/orders/{order_id}").get_data(as_text=True)
    assert "<script>alert(1)" not in html and "<b>bold</b>" not in html and "<i>ref" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<bdi>&lt;script&gt;alert(1)&lt;/script&gt;\u202eevil</bdi>" in html
    search = console("ops").get("/console/orders").get_data(as_text=True)
    assert "&lt;i&gt;ref&lt;/i&gt;" in search and "<i>ref" not in search


def test_an_analyst_reads_orders_but_may_not_hold_one(console, client, admin, catalog):
    order_id = capture(client, admin)
    analyst = console("analyst")
    assert analyst.get(f"/console/orders/{order_id}").status_code == 200
    refused = analyst.post(f"/console/orders/{order_id}/hold", {"reason": "why not"})
    assert refused.status_code == 403
    assert client.get(f"/orders/{order_id}", headers=admin).json["status"] == "released"


def test_an_action_without_its_csrf_token_is_refused_and_changes_nothing(console, client,
                                                                         admin, catalog):
    order_id = capture(client, admin)
    ops = console("ops")
    refused = ops.post(f"/console/orders/{order_id}/hold", {"reason": "x"}, csrf=False)
    assert refused.status_code == 400
    assert client.get(f"/orders/{order_id}", headers=admin).json["status"] == "released"


def test_a_hold_from_the_page_is_the_apis_hold_with_the_persons_name(console, client, admin,
                                                                      catalog):
    order_id = capture(client, admin)
    ops = console("ops", username="olga")
    # when olga holds the order from its page
    response = ops.post(f"/console/orders/{order_id}/hold", {"reason": "double charge"})
    assert (response.status_code, response.headers["Location"]) == (
        303, f"/console/orders/{order_id}")
    # then the API shows the same hold, done by her
    holds = client.get("/holds?state=open", headers=admin).json["items"]
    assert [(h["order_id"], h["queue"], h["reason"]) for h in holds] == [
        (order_id, "manual", "double charge")]
    [held] = [e for e in client.get(f"/orders/{order_id}/events", headers=admin).json["items"]
              if e["type"] == "order.held"]
    assert held["actor"] == {"type": "user", "id": "olga"}
    # and holding it without a reason is refused on the field, as the API refuses it
    again = ops.post(f"/console/orders/{order_id}/hold", {"reason": ""})
    assert again.status_code == 422
    assert "reason" in again.get_data(as_text=True)


def test_releasing_an_order_not_on_hold_says_so(console, client, admin, catalog):
    order_id = capture(client, admin)
    response = console("ops").post(f"/console/orders/{order_id}/release-hold", {})
    assert response.status_code == 409
    assert "not on hold" in response.get_data(as_text=True)


def test_a_time_from_the_forms_date_picker_is_read_as_utc(console, client, admin, catalog):
    order_id = capture(client, admin)
    ops = console("ops")
    # a datetime-local box sends no zone: the page and the API both read it as UTC
    early = ops.get("/console/orders?created_from=2020-01-01T00:00").get_data(as_text=True)
    late = ops.get("/console/orders?created_from=2099-01-01T00:00").get_data(as_text=True)
    assert f">#{order_id}</a>" in early and f">#{order_id}</a>" not in late
    assert [o["id"] for o in client.get("/orders?created_from=2020-01-01T00:00",
                                        headers=admin).json["items"]] == [order_id]
