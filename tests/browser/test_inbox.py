"""The exception inbox in Chromium: ops filter it, take a hold, comment, release it and
see the order's timeline say so; then release a filtered set in bulk and read each
order's result. An analyst may read and comment, never release."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.support.holds import held_order


@pytest.fixture
def app(make_app):
    return make_app(HOLD_SLA_HOURS="default=24,fraud=2")


@pytest.fixture
def queue(client, admin, catalog, services):
    """Two overdue fraud holds on web orders, one fresh on a marketplace order, a manual
    hold, and one of a customer whose name and reason carry markup."""
    made = {
        "oldest": held_order(client, admin, services, "fraud", 30, rule="velocity",
                             reason="5 orders in 10 minutes from one card"),
        "late": held_order(client, admin, services, "fraud", 3, rule="velocity",
                           reason="5 orders in 10 minutes from one card", customer_id="C-BEN"),
        "market": held_order(client, admin, services, "fraud", 1, rule="velocity",
                             channel="marketplace", reason="3 orders in 10 minutes"),
        "manual": held_order(client, admin, services, "manual", 5,
                             reason="<script>alert('x')</script> customer asked to wait"),
    }
    return {name: {"order": order_id, "hold": hold_id}
            for name, (order_id, hold_id) in made.items()}


def rows(page):
    return page.locator("table.inbox-table tbody tr[data-hold]")


def test_ops_filter_take_comment_and_release_a_hold_then_release_a_filtered_set_in_bulk(
        page, signed_in, queue):
    # given Olga of ops, signed in
    signed_in("ops", username="olga")

    # when she opens the inbox from the menu
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Inbox").click()

    # then every open hold is there, overdue first, with counts per queue; markup is text
    expect(page.get_by_role("heading", level=1)).to_have_text("Exception inbox")
    expect(rows(page)).to_have_count(4)
    expect(rows(page).first).to_have_attribute("data-hold", str(queue["oldest"]["hold"]))
    expect(rows(page).first).to_contain_text("overdue")
    queues = page.get_by_role("navigation", name="Queues")
    expect(queues).to_contain_text("fraud 3")
    reasons = page.get_by_role("navigation", name="Reasons")
    expect(reasons.get_by_role("link", name=re.compile("velocity 3"))).to_have_attribute(
        "href", "/console/inbox?queue=fraud&rule=velocity")
    expect(page.get_by_text("<script>alert('x')</script> customer asked to wait")).to_be_visible()
    screenshot(page, "inbox")

    # when she filters on the fraud queue's web orders
    page.get_by_label("Queue", exact=True).select_option("fraud")
    page.get_by_label("Channel").fill("web")
    page.get_by_role("button", name="Apply").click()

    # then the page's URL is the API's query, and only those holds are listed
    expect(page).to_have_url(re.compile(r"/console/inbox\?queue=fraud&channel=web$"))
    expect(page.get_by_role("link", name=re.compile("API"))).to_contain_text(
        "GET /holds?queue=fraud&channel=web")
    expect(rows(page)).to_have_count(2)

    # when she opens the oldest, takes it and comments
    rows(page).first.get_by_role("link", name=f"#{queue['oldest']['order']}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(
        f"Hold {queue['oldest']['hold']}")
    page.get_by_role("button", name="Assign to me").click()
    expect(page.get_by_role("status")).to_contain_text("is yours")
    expect(page.locator("#assignee")).to_contain_text("you")
    page.get_by_label("Add a comment").fill("Card holder confirmed by phone")
    page.get_by_role("button", name="Comment", exact=True).click()

    # then the comment is on the hold and on the order's timeline, with her name
    expect(page.locator(".comments")).to_contain_text("Card holder confirmed by phone")
    timeline = page.locator(".events")
    expect(timeline.locator('[data-type="hold.commented"]')).to_contain_text("user:olga")
    expect(timeline.locator('[data-type="hold.assigned"]')).to_contain_text("olga")
    screenshot(page, "inbox-hold-open")

    # when she releases it
    page.get_by_label("Release note").fill("genuine customer")
    page.get_by_role("button", name="Release hold").click()

    # then the order moved on, and the timeline shows the release by her first
    expect(page.get_by_role("status")).to_contain_text("released")
    expect(page.locator("#order-status")).not_to_have_text("on_hold")
    newest = timeline.locator(".event").first
    expect(timeline.locator('[data-type="order.hold_released"]')).to_contain_text("user:olga")
    expect(timeline.locator('[data-type="order.hold_released"]')).to_contain_text(
        "genuine customer")
    expect(newest).to_be_visible()
    screenshot(page, "inbox-hold")

    # when she goes back to the filtered inbox: one web fraud hold is left
    page.get_by_role("link", name="← Inbox").click()
    expect(page).to_have_url(re.compile(r"/console/inbox\?queue=fraud&channel=web$"))
    expect(rows(page)).to_have_count(1)

    # when she widens the filter to the whole fraud queue and previews a bulk release
    page.goto("/console/inbox?queue=fraud")
    expect(page.get_by_role("heading", name="All 2 that match")).to_be_visible()
    page.get_by_label("Bulk action").select_option("release")
    page.get_by_label("Bulk reason").fill("velocity rule misfired")
    page.get_by_role("button", name="Preview").click()

    # then the preview names every hold that matches, and nothing has happened yet
    expect(page.get_by_role("heading", level=1)).to_have_text("Release the holds: preview")
    expect(page.locator("table.inbox-table tbody tr[data-hold]")).to_have_count(2)
    screenshot(page, "inbox-bulk-preview")

    # when she confirms
    page.get_by_role("button", name="Release the holds of these 2").click()

    # then each order has its own result
    expect(page.get_by_role("heading", level=1)).to_have_text("Release the holds: done")
    results = page.locator("table.results tbody tr")
    expect(results).to_have_count(2)
    for name in ("late", "market"):
        expect(page.locator(f'tr[data-order="{queue[name]["order"]}"]')).to_contain_text(
            "released")
    expect(page.get_by_text("2 orders done")).to_be_visible()
    screenshot(page, "inbox-bulk-results")

    # and the fraud queue is empty
    page.get_by_role("link", name="Back to the inbox").click()
    expect(page.get_by_text("No holds match this filter.")).to_be_visible()


def test_an_analyst_reads_and_comments_but_cannot_release_a_hold(page, signed_in, queue):
    signed_in("analyst", username="ana")
    hold_id = queue["late"]["hold"]

    page.goto(f"/console/inbox/holds/{hold_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Hold {hold_id}")
    expect(page.get_by_role("button", name="Release hold")).to_have_count(0)
    page.get_by_label("Add a comment").fill("Is the velocity threshold too low?")
    page.get_by_role("button", name="Comment", exact=True).click()
    expect(page.locator(".comments")).to_contain_text("Is the velocity threshold too low?")
    screenshot(page, "inbox-hold-analyst")

    # a release sent anyway, with a valid token, is refused and changes nothing
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    answer = page.request.post(f"/console/inbox/holds/{hold_id}/release",
                               form={"csrf_token": token, "note": "let it go"})
    assert answer.status == 403
    page.reload()
    expect(page.locator("#order-status")).to_have_text("on_hold")
    bulk = page.request.post("/console/inbox/bulk", form={
        "csrf_token": token, "action": "release", "reason": "x", "confirm": "yes"})
    assert bulk.status == 403
