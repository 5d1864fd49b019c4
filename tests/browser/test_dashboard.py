"""The KPI dashboard in Chromium: an analyst reads the KPIs of a known world, each with its
definition, as tiles, charts and tables, then the same per rule version."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.support.kpi_world import build_kpi_world


@pytest.fixture
def world(catalog, services):
    return build_kpi_world(services)


def tile(page, key):
    return page.locator(f"#kpi-{key}")


def test_an_analyst_reads_the_kpis_with_their_definitions_and_per_rule_version(
        page, signed_in, world):
    # given an analyst signed in, when they open the dashboard from the menu
    signed_in("analyst")
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")

    # then each KPI of the last 30 days shows, with its definition beside it
    expect(tile(page, "orders").locator(".kpi-value")).to_have_text("4")
    expect(tile(page, "fill_rate").locator(".kpi-value")).to_have_text("71.4%")
    expect(tile(page, "fill_rate")).to_contain_text("5 of 7 units")
    expect(tile(page, "perfect_order").locator(".kpi-value")).to_have_text("50.0%")
    expect(tile(page, "perfect_order")).to_contain_text("APQC 101741")
    expect(tile(page, "cycle_to_shipment").locator(".kpi-value")).to_have_text("12.0 h")
    expect(tile(page, "cycle_to_delivery")).to_contain_text("p90 4.0 d")
    expect(tile(page, "backorders").locator(".kpi-value")).to_have_text("2 units")
    expect(tile(page, "return_rate").locator(".kpi-value")).to_have_text("14.3%")
    expect(tile(page, "exceptions")).to_contain_text("1 still open")
    for key in ("orders", "fill_rate", "on_time_delivery", "backorders", "carrier_scorecard"):
        expect(tile(page, key).locator(".kpi-definition")).not_to_be_empty()
    # four charts drawn on the server, the orders of each day as bars
    expect(page.get_by_role("img")).to_have_count(4)
    assert page.locator("#chart-orders svg rect").count() >= 4
    # the tables a person would rather read
    expect(page.get_by_role("row").filter(has_text="fraud")).to_contain_text("1")
    assert page.get_by_role("link", name="1 open in fraud: the inbox").get_attribute(
        "href") == "/console/inbox?queue=fraud"
    expect(page.get_by_role("row").filter(has_text="CORREIOS")).to_contain_text("0.0%")
    expect(page.get_by_role("row").filter(has_text="Damaged in transit")).to_be_visible()
    screenshot(page, "dashboard")

    # when they ask for the KPIs per version of the sourcing rules
    page.get_by_label("Group by").select_option("rule_version")
    page.get_by_role("button", name="Show").click()

    # then the page's query is the API's, and each version has its row
    query = parse_qs(urlsplit(page.url).query)
    assert query["group_by"] == ["rule_version"] and query["stage"] == ["sourcing"]
    api_link = page.locator(".api-link a")
    assert "group_by=rule_version" in api_link.get_attribute("href")
    version_two = page.get_by_role("row").filter(has_text="sourcing v2 (published")
    expect(version_two).to_contain_text("by ana")
    expect(version_two.get_by_role("cell").nth(3)).to_have_text("50.0%")  # fill rate
    version_one = page.get_by_role("row").filter(has_text="sourcing v1 (retired")
    expect(version_one.get_by_role("cell").nth(3)).to_have_text("100.0%")
    screenshot(page, "dashboard-per-rule-version")


def test_ops_may_read_the_dashboard_and_a_wrong_period_is_explained(page, signed_in, world):
    signed_in("ops")
    page.goto("/console/dashboard?from=2026-02-01&to=2026-01-01")
    expect(page.get_by_role("alert")).to_contain_text("to: must be on or after from")
    expect(page.get_by_label("To")).to_have_attribute("aria-invalid", "true")
    page.goto("/console/dashboard?channel=marketplace")
    expect(tile(page, "orders").locator(".kpi-value")).to_have_text("2")
    # the open holds of a queue lead to the inbox, filtered on that queue
    page.get_by_role("link", name="1 open in fraud: the inbox").click()
    page.wait_for_url("**/console/inbox?queue=fraud")
