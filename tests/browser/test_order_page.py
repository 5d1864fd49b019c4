"""Operations find an order, read its whole story and act on it, in Chromium."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.conftest import order_body, wms_event

# What a channel sent us: markup and a right-to-left override in the customer's address.
HOSTILE_NAME = "Ana <script>alert('name')</script> \u202eLima"
HOSTILE_STREET = "Av. Paulista 1000 <img src=x onerror=alert(1)>"


def capture(client, admin, **overrides) -> dict:
    response = client.post("/orders", json=order_body(**overrides), headers=admin)
    assert response.status_code == 201, response.json
    return response.json


def test_ops_find_an_order_read_why_it_ships_as_it_does_and_work_it(
        page, signed_in, client, admin, make_key, catalog):
    # given an order whose address holds markup and a right-to-left override, and others
    address = {"name": HOSTILE_NAME, "line1": HOSTILE_STREET, "city": "Sao Paulo",
               "region": "SP", "postal_code": "01310-100", "country": "BR"}
    order = capture(client, admin, channel_order_ref="WEB-7781", shipping_address=address)
    capture(client, admin, channel_order_ref="WEB-7782")
    capture(client, admin, channel="erp", customer_id="C-BEN")
    order_id = order["id"]

    # when an ops person signs in and searches by the channel reference
    otto = signed_in("ops", username="otto")
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Orders").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Orders")
    page.get_by_label("Channel reference").fill("WEB-7781")
    page.get_by_role("checkbox", name="released").check()
    page.get_by_role("button", name="Search").click()

    # then the page's query is the REST query, and only that order is listed
    expect(page).to_have_url(re.compile(r"/console/orders\?channel_order_ref=WEB-7781&status="
                                        r"released$"))
    expect(page.locator(".api-query")).to_contain_text(
        "GET /orders?channel_order_ref=WEB-7781&status=released")
    rows = page.locator("table.orders tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(f"#{order_id}")
    expect(rows.first).to_contain_text("Ana Lima")
    screenshot(page, "order-search")

    # when they open it
    rows.first.get_by_role("link", name=f"#{order_id}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Order #{order_id}")
    # then the address is shown as the text it is (nothing of it runs), isolated
    expect(page.locator("#ship-to")).to_contain_text("<script>alert('name')</script>")
    expect(page.locator("#ship-to")).to_contain_text("<img src=x onerror=alert(1)>")
    assert page.locator("#ship-to script, #ship-to img").count() == 0
    # and each line shows every quantity
    lamp = page.locator("#lines tbody tr[data-sku='LAMP-1']")
    expect(lamp.locator("[data-q='ordered']")).to_have_text("2")
    expect(lamp.locator("[data-q='allocated']")).to_have_text("2")
    expect(lamp.locator("[data-q='shipped']")).to_have_text("0")
    expect(page.get_by_role("region", name="Fulfilment")).to_contain_text("WH-SP")

    # when they open why the order ships from where it does
    sourcing = page.locator("li.tl-entry[data-type='order.allocated']")
    sourcing.locator("summary", has_text="Why").click()
    # then every location considered says why it won, and the rules that fired are marked
    explanation = sourcing.locator("section.explanation")
    expect(explanation).to_be_visible()
    expect(explanation.locator("tr.candidate--won")).to_contain_text("WH-SP")
    expect(explanation.locator("tr.candidate--won")).to_contain_text(
        "can ship the whole order")
    validation = page.locator("li.tl-entry[data-type='order.validated']")
    validation.locator("summary", has_text="Why").click()
    rule = validation.locator("li.rule[data-rule='restricted-destination']")
    rule.locator("summary").click()
    expect(rule.locator("tr.condition")).to_contain_text("Destination country")
    expect(rule.locator("tr.condition")).to_contain_text("is one of CU, IR, KP, SY")
    expect(rule.locator("tr.condition")).to_contain_text("did not hold")
    screenshot(page, "order-page")

    # when they put it on hold with a reason
    page.get_by_text("Put on hold…").click()
    page.get_by_label("Why hold it").fill("Customer called: the address is wrong")
    page.get_by_role("button", name="Hold the order").click()
    # then it is on hold, the reason is shown, and the timeline says who did it
    expect(page.get_by_role("status")).to_contain_text("The order is on hold.")
    expect(page.locator("#order-status")).to_have_text("on hold")
    expect(page.locator("#holds")).to_contain_text("Customer called: the address is wrong")
    held = page.locator("li.tl-entry[data-type='order.held']")
    expect(held).to_contain_text(f"by person {otto}")
    expect(held).to_contain_text("released → on hold")

    # when they release it with a note
    page.get_by_label("Note").fill("Address confirmed by phone")
    page.get_by_role("button", name="Release the hold").click()
    # then it goes on where it was, and the release is on the timeline with their name
    expect(page.locator("#order-status")).to_have_text("released")
    released = page.locator("li.tl-entry[data-type='order.hold_released']")
    expect(released).to_contain_text(otto)
    expect(released).to_contain_text("Address confirmed by phone")

    # when they cancel the mug only
    page.get_by_text("Cancel what has not shipped…").click()
    page.get_by_label("Only these units:").check()
    page.get_by_label("Units of line 2 to cancel").fill("1")
    page.get_by_label("Why cancel").fill("No longer wanted")
    page.get_by_role("button", name="Cancel these units").click()
    # then the mug's line shows it cancelled; the lamps are still to ship
    mug = page.locator("#lines tbody tr[data-sku='MUG-2']")
    expect(mug.locator("[data-q='cancelled']")).to_have_text("1")
    expect(lamp.locator("[data-q='allocated']")).to_have_text("2")

    # given the lamps then shipped with a tracking number (the warehouse says so)
    ops_key = make_key("ops")
    [group] = [g for g in client.get(f"/orders/{order_id}/fulfilment",
                                     headers=ops_key).json["items"] if g["status"] != "cancelled"]
    assert wms_event(client, ops_key, group["id"], "shipped", "s-1",
                     tracking_number="TR423456785BR",
                     lines=[{"sku": "LAMP-1", "quantity": 2}]).status_code == 200
    # when they find the order by its tracking number and record one lamp coming back
    page.goto("/console/orders?tracking_number=TR423456785BR")
    expect(page.locator("table.orders tbody tr")).to_have_count(1)
    page.get_by_role("link", name=f"#{order_id}").click()
    expect(page.get_by_role("region", name="Shipments")).to_contain_text("TR423456785BR")
    page.get_by_text("Record a return…").click()
    page.get_by_label("Units of LAMP-1 returned").fill("1")
    page.get_by_label("Why it came back").fill("Arrived broken")
    page.get_by_label("Fit to sell").uncheck()
    page.get_by_role("button", name="Record the return").click()
    # then the line counts it returned, and the return is listed
    expect(page.get_by_role("status")).to_contain_text("The return is recorded")
    expect(lamp.locator("[data-q='returned']")).to_have_text("1")
    expect(page.get_by_role("region", name="Returns")).to_contain_text("Arrived broken")
    screenshot(page, "order-page-after-actions")


def test_a_refused_action_says_why_on_the_page(page, signed_in, client, admin, catalog):
    order_id = capture(client, admin)["id"]
    signed_in("ops")
    page.goto(f"/console/orders/{order_id}")
    # when ops ask to cancel more lamps than the order has left
    page.get_by_text("Cancel what has not shipped…").click()
    page.get_by_label("Only these units:").check()
    page.get_by_label("Units of line 1 to cancel").evaluate("box => box.removeAttribute('max')")
    page.get_by_label("Units of line 1 to cancel").fill("5")
    page.get_by_label("Why cancel").fill("Too many")
    page.get_by_role("button", name="Cancel these units").click()
    # then nothing is cancelled, and the form says what is wrong with which field
    expect(page.locator("#cancel-problems")).to_contain_text("lines/0/quantity")
    lamp = page.locator("#lines tbody tr[data-sku='LAMP-1']")
    expect(lamp.locator("[data-q='cancelled']")).to_have_text("0")


def test_an_analyst_reads_an_order_but_is_offered_no_actions(page, signed_in, client, admin,
                                                              catalog):
    order_id = capture(client, admin)["id"]
    signed_in("analyst")
    page.goto(f"/console/orders/{order_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Order #{order_id}")
    expect(page.get_by_role("region", name="Actions")).to_have_count(0)
    expect(page.get_by_text("Put on hold…")).to_have_count(0)


def test_a_held_order_shows_why_the_rules_held_it_with_the_fired_rule_highlighted(
        page, signed_in, client, admin, catalog):
    # given an order whose lamps are priced under half their list value
    order = capture(client, admin, lines=[{"sku": "LAMP-1", "quantity": 1, "unit_price": "9.90"}])
    assert order["status"] == "on_hold"
    signed_in("ops")
    page.goto(f"/console/orders/{order['id']}")
    # then the hold says why, and the decision behind it opens on the rule that fired
    expect(page.locator("#holds")).to_contain_text("price-floor")
    held = page.locator("li.tl-entry[data-type='order.held']")
    held.locator("summary", has_text="Why").click()
    fired = held.locator("li.rule--fired")
    expect(fired).to_have_count(1)
    expect(fired).to_have_attribute("data-rule", "price-floor")
    expect(fired.locator("tr.condition")).to_contain_text("held")
    expect(fired.locator(".rule__actions")).to_contain_text("Hold the order for review")
    fired.scroll_into_view_if_needed()
    screenshot(page, "order-page-held-by-rule")


def test_the_timeline_shows_only_what_people_did_when_asked(page, signed_in, client, admin,
                                                          catalog):
    order_id = capture(client, admin)["id"]
    signed_in("ops", username="olga")
    page.goto(f"/console/orders/{order_id}")
    page.get_by_text("Put on hold…").click()
    page.get_by_label("Why hold it").fill("Checking the payment")
    page.get_by_role("button", name="Hold the order").click()
    entries = page.locator("li.tl-entry")
    # when ops choose to see what people did
    page.get_by_label("what people did").check()
    # then only olga's hold is left in view; the rule decisions are back on the other choice
    expect(entries.filter(visible=True)).to_have_count(1)
    expect(entries.filter(visible=True)).to_contain_text("Put on hold")
    page.get_by_label("rule decisions").check()
    expect(entries.filter(visible=True).first).to_contain_text("Validated")
    page.get_by_label("everything", exact=True).check()
    assert entries.filter(visible=True).count() == entries.count()
