"""The rule studio in Chromium: an analyst changes a hold threshold and publishes it."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.conftest import order_body

THRESHOLD = 'input[data-pointer="/rules/5/conditions/all/1/value"]'  # first-order-over-value


def first_order(client, admin, customer: str, reference: str) -> dict:
    """Capture a first order of 1,813.00 from a new customer through the API."""
    assert client.post("/customers/bulk", headers=admin, json={"rows": [
        {"id": customer, "name": f"New customer {customer}", "country": "BR"}]}
    ).status_code == 200
    response = client.post("/orders", headers=admin, json=order_body(
        customer_id=customer, channel_order_ref=reference,
        lines=[{"sku": "LAMP-1", "quantity": 20, "unit_price": "89.90"}]))
    assert response.status_code == 201, response.json
    return response.json


def test_an_analyst_lowers_a_hold_threshold_tries_it_and_publishes_it(
        page, signed_in, client, admin, catalog):
    # given a first order of 1,813.00, validated under the shipped threshold of 2,000
    before = first_order(client, admin, "C-NEW-1", "FIRST-1")
    assert before["status"] != "on_hold"

    # when an analyst opens the studio and starts a draft of the validation rules
    signed_in("analyst", username="ana")
    page.get_by_role("navigation", name="Sections").get_by_role(
        "link", name="Rule studio").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Rule studio")
    screenshot(page, "studio-stages")
    page.get_by_role("link", name="validation", exact=True).click()
    page.get_by_role("button", name="New draft from the published version").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Validation · version 2")

    # and types a bad value into the threshold of the first-order rule and saves
    threshold = page.locator(THRESHOLD)
    expect(threshold).to_have_value("2000")
    threshold.fill("15OO")
    threshold.press("Tab")
    page.get_by_label("What changes").fill("first orders above 1,500 need a fraud review")
    page.get_by_role("button", name="Save draft").click()

    # then the problem is shown on that field, and nothing is saved
    threshold = page.locator(THRESHOLD)
    expect(threshold).to_have_attribute("aria-invalid", "true")
    expect(threshold).to_have_value("15OO")
    note = page.locator(".leaf", has=threshold).locator(".problem-note")
    expect(note).to_have_text("must be a number")
    threshold.scroll_into_view_if_needed()
    screenshot(page, "studio-builder-error")

    # when the analyst corrects it and saves, the checks and the test cases pass
    threshold.fill("1500")
    threshold.press("Tab")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status")).to_contain_text("Saved version 2")
    status = page.locator("#status")
    expect(status).to_contain_text("Checks pass")
    expect(status).to_contain_text("6 test cases pass")
    page.get_by_role("button", name="Run the tests on the editor's rules").click()
    expect(page.locator("#tests-passed")).to_have_text(
        "✓ All 6 test cases pass on the editor's rules")
    page.get_by_role("tab", name="JSON").click()
    expect(page.get_by_label("The rule set as JSON")).to_contain_text('"value": 1500')
    page.get_by_role("tab", name="Test cases").click()
    expect(page.locator('input[data-pointer="/tests/4/name"]')).to_have_value(
        "a first order above 2,000 waits for fraud review")
    screenshot(page, "studio-tests")

    # and a dry run on the earlier order shows it would now be held, the rule highlighted
    page.get_by_role("tab", name="Dry run & simulation").click()
    page.get_by_label("Order number").fill(str(before["id"]))
    page.get_by_role("button", name="Dry run").click()
    result = page.locator("#dry-run")
    expect(result.get_by_role("heading")).to_have_text(
        f"Order {before['id']} would be: on hold")
    fired = result.locator("li.rule--fired")
    expect(fired).to_have_count(1)
    expect(fired).to_have_attribute("data-rule", "first-order-over-value")
    expect(fired.locator('tr[data-path="/rules/5/conditions/all/1"]')).to_contain_text("1500")
    screenshot(page, "studio-dry-run")

    # and the simulation over recent orders names the order that changes, with a link
    page.get_by_role("button", name="Simulate").click()
    simulation = page.locator("#simulation")
    expect(simulation.get_by_role("heading")).to_have_text(
        re.compile(r"^1 of \d+ recent orders would be decided differently$"))
    expect(simulation).to_contain_text("validated → on hold")
    expect(simulation.get_by_role("link", name=f"order {before['id']}")).to_have_attribute(
        "href", f"/console/orders/{before['id']}")
    simulation.scroll_into_view_if_needed()
    screenshot(page, "studio-simulation")

    # and the diff with the published version names the changed field, from and to
    page.get_by_role("link", name="compare with published v1").click()
    row = page.get_by_role("row").filter(has_text="/rules/5/conditions/all/1/value")
    expect(row).to_contain_text("first-order-over-value")
    expect(row.locator("td.before")).to_have_text("2000")
    expect(row.locator("td.after")).to_have_text("1500")
    expect(page.locator("#diff tbody tr")).to_have_count(1)
    screenshot(page, "studio-diff")

    # when the analyst publishes it with a comment
    page.get_by_role("link", name="Open version 2").click()
    page.get_by_label("Why publish (required)").fill("fraud team asked for 1,500")
    page.get_by_role("button", name="Publish version 2").click()
    expect(page.get_by_role("status")).to_contain_text("Published version 2")
    expect(page.get_by_role("heading", level=1)).to_contain_text("published")
    screenshot(page, "studio-published")
    page.get_by_role("link", name="validation").first.click()
    versions = page.locator("#versions")
    expect(versions.get_by_role("row").filter(has_text="version 2")).to_contain_text(
        "user:ana")
    screenshot(page, "studio-versions")

    # then the next order captured through the API is decided by version 2
    after = first_order(client, admin, "C-NEW-2", "FIRST-2")
    assert after["status"] == "on_hold"
    decisions = client.get(f"/orders/{after['id']}/decisions", headers=admin).json["items"]
    validation = next(d for d in decisions if d["stage"] == "validation")
    assert validation["version"] == 2
    assert [h["code"] for h in validation["decision"]["holds"]] == ["fraud-review"]


def test_a_first_match_draft_shows_overlaps_on_the_rule_and_can_be_discarded(page, signed_in):
    signed_in("analyst")
    page.goto("/console/rules/exceptions")
    page.get_by_role("button", name="New draft from the published version").click()
    # the overlap of two rules is shown on the later one, and beside the tests
    rule = page.locator('section.rule[data-pointer="/rules/2"]')
    expect(rule.locator(".problem-note.warn")).to_contain_text(
        "overlaps the earlier rule 'payment-retry'")
    expect(page.locator("#status")).to_contain_text("Rule 3 (payment-give-up) overlaps")
    # moving a rule up is one click, and the JSON view follows
    rule.get_by_role("button", name="Move rule 3 up").click()
    expect(page.locator('section.rule[data-pointer="/rules/1"] input[data-pointer="/rules/1/name"]')
           ).to_have_value("payment-give-up")
    screenshot(page, "studio-exceptions-draft")
    # and what is typed in the JSON view shows in the builder
    page.get_by_role("tab", name="JSON").click()
    json_view = page.get_by_label("The rule set as JSON")
    text = json_view.input_value()
    assert text.index('"payment-give-up"') < text.index('"payment-retry"')
    json_view.fill(text.replace('"payment-give-up"', '"give-up-on-payment"'))
    page.get_by_role("tab", name="Rules").click()
    expect(page.locator('input[data-pointer="/rules/1/name"]')).to_have_value(
        "give-up-on-payment")
    # discarding takes a comment and keeps the version in the history
    page.get_by_text("Discard this draft").click()
    page.get_by_label("Why (required)").fill("only trying")
    page.get_by_role("button", name="Discard", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Discarded version 2")
    expect(page.get_by_role("heading", level=1)).to_contain_text("discarded")


def test_an_ops_user_cannot_open_the_studio(page, signed_in):
    signed_in("ops")
    expect(page.get_by_role("navigation", name="Sections")).not_to_contain_text("Rule studio")
    answer = page.goto("/console/rules")
    assert answer.status == 403
    answer = page.request.post("/console/rules/validation/drafts", form={})
    assert answer.status in (400, 403)

