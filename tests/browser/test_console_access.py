"""Signing in to the console and the admin's page for people and API keys, in Chromium."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.conftest import PASSWORD


def test_an_admin_signs_in_adds_a_person_and_a_key_and_revokes_the_key(page, signed_in):
    # given an admin signed in through the form
    signed_in("admin", username="ada")
    screenshot(page, "console-home")
    expect(page.get_by_role("navigation", name="Sections")).to_contain_text("Users and keys")

    # when they add an ops person
    sections = page.get_by_role("navigation", name="Sections")
    sections.get_by_role("link", name="Users and keys").click()
    page.get_by_label("Username").fill("otto")
    page.get_by_label("Full name").fill("Otto <script>alert(1)</script> Ops")
    page.get_by_label("ops").check()
    page.get_by_role("button", name="Create account").click()

    # then the password is shown once, and the name is shown as text, not run
    password = page.locator("#new-password").inner_text()
    assert len(password) >= 10
    expect(page.get_by_role("cell", name="Otto <script>alert(1)</script> Ops")).to_be_visible()

    # when they create a channel key, it is shown once; revoking it marks it revoked
    page.get_by_label("Name", exact=True).fill("web-shop")
    page.get_by_label("Kind").select_option("channel")
    page.get_by_label("Channel").fill("web")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key")).to_have_text(re.compile(r"^oms_"))
    screenshot(page, "console-admin")
    page.get_by_role("button", name="Revoke web-shop").click()
    expect(page.get_by_role("status")).to_contain_text("web-shop is revoked")
    row = page.get_by_role("row").filter(has_text="web-shop")
    expect(row).to_contain_text("revoked")

    # and the new person signs in with the password they were given, and out again
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Username").fill("otto")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, otto")
    expect(page.get_by_role("navigation", name="Sections")).not_to_contain_text("Users and keys")


def test_a_wrong_password_is_refused_and_repeated_failures_are_throttled(page, person):
    name = person("ops")
    page.goto("/console/admin")  # a page: first, sign in
    expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
    for _ in range(5):
        page.get_by_label("Username").fill(name)
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("the username or password is wrong")
    screenshot(page, "console-sign-in-refused")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)  # right, but too soon after five failures
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("too many failed sign-ins")


def test_a_form_posted_without_its_csrf_token_is_refused(page, signed_in):
    signed_in("admin")
    answer = page.request.post("/console/admin", form={"username": "mallory", "roles": "admin"})
    assert answer.status == 400
    assert "security token" in answer.text()
    page.goto("/console/admin")
    expect(page.get_by_role("cell", name="mallory")).to_have_count(0)
