"""The rule studio in Chromium: a stage that needs a second analyst's approval, and a rollback."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot


@pytest.fixture
def app(make_app):
    """Here validation needs a second analyst's approval before it is published."""
    return make_app(RULES_APPROVAL_STAGES="validation")


def test_a_second_analyst_approves_before_publishing_and_a_rollback_restores_the_old_rules(
        page, signed_in):
    # given a draft by one analyst
    signed_in("analyst", username="ana")
    page.goto("/console/rules/validation")
    page.get_by_role("button", name="New draft from the published version").click()
    # the author may neither publish it unapproved nor approve it
    page.get_by_label("Why publish (required)").fill("ready")
    page.get_by_role("button", name="Publish version 2").click()
    expect(page.locator("#publish-card")).to_contain_text(
        "validation needs a second analyst to approve version 2")
    page.get_by_label("Approve (another analyst)").fill("looks right")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#publish-card")).to_contain_text("did not write it")
    screenshot(page, "studio-approval-refused")

    # when another analyst approves it, the author publishes it
    page.get_by_role("button", name="Sign out").click()
    signed_in("analyst", username="bob")
    page.goto("/console/rules/validation/versions/2")
    page.get_by_label("Approve (another analyst)").fill("checked the tests")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Approved version 2")
    expect(page.locator("#publish-card")).to_contain_text("Approved by user:bob")
    page.get_by_label("Why publish (required)").fill("approved by bob")
    page.get_by_role("button", name="Publish version 2").click()
    expect(page.get_by_role("status")).to_contain_text("Published version 2")

    # and a rollback publishes version 1 again, with its comment in the history
    page.goto("/console/rules/validation/versions/1")
    page.get_by_label("Why (required)").fill("back to the shipped rules")
    page.get_by_role("button", name="Publish version 1 again").click()
    expect(page.get_by_role("status")).to_contain_text("Version 1 decides validation again")
    page.goto("/console/rules/validation")
    expect(page.locator("#versions").get_by_role("row").filter(
        has=page.get_by_role("link", name="version 1", exact=True))).to_contain_text("published")
    expect(page.get_by_role("row").filter(has_text="back to the shipped rules")
           ).to_contain_text("rolled back")
    screenshot(page, "studio-rolled-back")
