"""The rule studio's pages over HTTP: each calls the same rule-set use cases as /rules."""

from __future__ import annotations

import copy
import json
import re

from rules.defaults import default_rule_set

PROBLEMS = re.compile(r'<script type="application/json" id="studio-problems">(.*?)</script>',
                      re.S)


def draft(studio) -> int:
    """Start a draft of validation from the published version; return its number."""
    answer = studio.post("/console/rules/validation/drafts")
    assert answer.status_code == 303
    return int(answer.headers["Location"].rsplit("/", 1)[1])


def test_a_save_with_a_bad_value_is_refused_on_its_field_and_stores_nothing(
        console, client, make_key):
    studio = console("analyst", username="ana")
    number = draft(studio)
    document = copy.deepcopy(default_rule_set("validation"))
    document["rules"][5]["conditions"]["all"][1]["value"] = "15OO"

    refused = studio.post(f"/console/rules/validation/versions/{number}", data={
        "document": json.dumps(document), "comment": "lower threshold"})

    assert refused.status_code == 422
    shown = json.loads(PROBLEMS.search(refused.get_data(as_text=True)).group(1))
    assert shown == [{"pointer": "/rules/5/conditions/all/1/value", "kind": "error",
                      "message": "must be a number",
                      "where": "rule 6 (first-order-over-value) › conditions › all › 1 › value"}]
    analyst = make_key("analyst")
    stored = client.get(f"/rules/validation/versions/{number}", headers=analyst).json
    assert stored["document"]["rules"][5]["conditions"]["all"][1]["value"] == 2000

    # a good value is saved, by the person, and the diff page names the field
    document["rules"][5]["conditions"]["all"][1]["value"] = 1500
    saved = studio.post(f"/console/rules/validation/versions/{number}", data={
        "document": json.dumps(document), "comment": "lower threshold"})
    assert saved.status_code == 303
    stored = client.get(f"/rules/validation/versions/{number}", headers=analyst).json
    assert (stored["comment"], stored["author"]) == ("lower threshold", "user:ana")
    history = client.get("/rules/validation/history", headers=analyst).json["items"]
    assert (history[-1]["action"], history[-1]["actor"]) == ("updated", "user:ana")
    diff = studio.get(f"/console/rules/validation/diff?from=1&to={number}")
    page = diff.get_data(as_text=True)
    assert "/rules/5/conditions/all/1/value" in page
    assert "<code>2000</code>" in page and "<code>1500</code>" in page


def test_json_that_does_not_parse_and_a_missing_comment_are_each_named(console):
    studio = console("analyst")
    number = draft(studio)
    refused = studio.post(f"/console/rules/validation/versions/{number}",
                          data={"document": "{not json", "comment": ""})
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "not valid JSON" in page
    assert "say what this change is for" in page
    assert "{not json" in page  # what was typed is kept to be corrected


def test_names_are_shown_as_text_never_run(console):
    studio = console("analyst")
    number = draft(studio)
    document = copy.deepcopy(default_rule_set("validation"))
    document["rules"][0]["name"] = "<script>alert(1)</script>\u202e"
    saved = studio.post(f"/console/rules/validation/versions/{number}", data={
        "document": json.dumps(document), "comment": "<b>bold</b>"})
    assert saved.status_code == 303
    page = studio.get(f"/console/rules/validation/versions/{number}").get_data(as_text=True)
    assert "<script>alert" not in page and "<b>bold" not in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    stage = studio.get("/console/rules/validation").get_data(as_text=True)
    assert "&lt;b&gt;bold&lt;/b&gt;" in stage


def test_a_change_without_its_csrf_token_is_refused_and_changes_nothing(console, client,
                                                                         make_key):
    studio = console("analyst")
    refused = studio.post("/console/rules/validation/drafts", csrf=False)
    assert refused.status_code == 400
    versions = client.get("/rules/validation/versions", headers=make_key("analyst")).json
    assert [v["version"] for v in versions["items"]] == [1]


def test_publishing_a_draft_whose_tests_fail_is_refused_on_the_publish_form(console, client,
                                                                          make_key):
    studio = console("analyst")
    number = draft(studio)
    document = copy.deepcopy(default_rule_set("validation"))
    document["tests"][0]["expect"]["outcome"] = "rejected"  # an ordinary order is not
    assert studio.post(f"/console/rules/validation/versions/{number}", data={
        "document": json.dumps(document), "comment": "a wrong test"}).status_code == 303
    page = studio.get(f"/console/rules/validation/versions/{number}").get_data(as_text=True)
    assert "1 of 6 test expectation fail" in page

    refused = studio.post(f"/console/rules/validation/versions/{number}/publish",
                          data={"comment": "go"})
    assert refused.status_code == 422
    assert "expected &#39;rejected&#39;, the rules decided &#39;validated&#39;" in (
        refused.get_data(as_text=True))
    stages = client.get("/rules", headers=make_key("analyst")).json["items"]
    assert stages[0]["published_version"] == 1


def test_the_exceptions_stage_is_tested_but_not_dry_run_on_an_order(console):
    studio = console("analyst")
    answer = studio.post("/console/rules/exceptions/versions/1/dry-run", data={
        "document": json.dumps(default_rule_set("exceptions")), "order_id": "1"})
    assert answer.status_code == 422
    assert "cannot be dry-run" in answer.get_data(as_text=True)
    tests = studio.post("/console/rules/exceptions/versions/1/tests", data={
        "document": json.dumps(default_rule_set("exceptions"))})
    assert tests.status_code == 200
    assert "All 8 test cases pass" in tests.get_data(as_text=True)


def test_a_discarded_draft_stays_in_the_history_and_can_no_longer_change(console):
    studio = console("analyst")
    number = draft(studio)
    assert studio.post(f"/console/rules/validation/versions/{number}/discard",
                       data={"comment": "not needed"}).status_code == 303
    again = studio.post(f"/console/rules/validation/versions/{number}", data={
        "document": json.dumps(default_rule_set("validation")), "comment": "edit"})
    assert again.status_code == 422
    assert "discarded; only drafts change" in again.get_data(as_text=True)
    history = studio.get("/console/rules/validation").get_data(as_text=True)
    assert "discarded" in history and "not needed" in history


SEEN_AT = re.compile(r'name="seen_at" value="([^"]+)"')


def test_a_draft_changed_by_someone_else_meanwhile_is_not_overwritten(console):
    ana, bob = console("analyst"), console("analyst")
    number = draft(ana)
    path = f"/console/rules/validation/versions/{number}"
    seen_by_ana = SEEN_AT.search(ana.get(path).get_data(as_text=True)).group(1)
    seen_by_bob = SEEN_AT.search(bob.get(path).get_data(as_text=True)).group(1)
    document = copy.deepcopy(default_rule_set("validation"))
    document["rules"][4]["conditions"]["value"] = 0.4
    assert bob.post(path, data={"document": json.dumps(document), "comment": "bob's",
                                "seen_at": seen_by_bob}).status_code == 303

    late = ana.post(path, data={"document": json.dumps(default_rule_set("validation")),
                                "comment": "ana's", "seen_at": seen_by_ana})

    assert late.status_code == 422
    assert "changed by someone else after you opened it" in late.get_data(as_text=True)
    page = ana.get(path).get_data(as_text=True)
    assert "bob&#39;s" in page
