"""Analysts change validation through the API alone: draft, check, dry run, publish, roll back."""

from __future__ import annotations

import copy
import json

from rules.defaults import default_rule_set
from tests.conftest import order_body

HIGH_VALUE = {
    "name": "high-value-review",
    "description": "Every order above 200 gets a second look.",
    "conditions": {"name": "order_totl", "operator": "greater_than", "value": 200},
    "actions": [{"name": "hold", "params": {"queue": "high-value",
                                            "reason": "Order above 200."}}],
}


def with_rule(rule) -> dict:
    document = copy.deepcopy(default_rule_set("validation"))
    document["rules"].append(rule)
    return document


def test_an_analyst_drafts_fixes_tries_publishes_and_the_next_order_follows(client, make_key,
                                                                           admin, catalog):
    analyst = make_key("analyst", name="ana-analyst")
    existing = client.post("/orders", json=order_body(), headers=admin).json

    # a misspelled variable is refused with the path of the bad node; nothing is stored
    refused = client.post("/rules/validation/versions", headers=analyst, json={
        "document": with_rule(HIGH_VALUE), "comment": "review big orders"})
    assert refused.status_code == 422
    assert refused.json["code"] == "rule_set_invalid"
    assert refused.json["errors"] == [{
        "field": "document/rules/11/conditions/name", "in": "body",
        "message": "unknown variable 'order_totl'; did you mean 'order_total'?"}]
    assert [v["version"] for v in client.get("/rules/validation/versions",
                                             headers=analyst).json["items"]] == [1]

    # the fixed draft is stored as version 2
    fixed = {**HIGH_VALUE, "conditions": {**HIGH_VALUE["conditions"], "name": "order_total"}}
    draft = client.post("/rules/validation/versions", headers=analyst, json={
        "document": with_rule(fixed), "comment": "review big orders"})
    assert draft.status_code == 201
    assert (draft.json["version"], draft.json["state"], draft.json["author"]) == (
        2, "draft", "api_key:ana-analyst")

    # a dry run on the existing order shows what the draft would do, and changes nothing
    trial = client.post("/rules/validation/dry-run", headers=analyst,
                        json={"version": 2, "order_id": existing["id"]})
    assert trial.status_code == 200
    assert trial.json["outcome"] == "on_hold"
    assert trial.json["decision"]["holds"][0]["rule"] == "high-value-review"
    fired = next(e for e in trial.json["trace"] if e["rule"] == "high-value-review")
    assert fired["conditions"][0]["fact"] == "219.30"
    assert client.get(f"/orders/{existing['id']}", headers=admin).json["status"] == "released"
    assert client.get("/holds", headers=admin).json["items"] == []

    # the version's own test cases guard the publish: the new rule changes two of them
    refused = client.post("/rules/validation/versions/2/publish", headers=analyst,
                          json={"comment": "approved by ops lead"})
    assert refused.status_code == 422
    assert refused.json["code"] == "rule_set_tests_failed"
    assert [e["field"] for e in refused.json["errors"]] == [
        "document/tests/4/expect/holds", "document/tests/5/expect/holds"]
    document = with_rule(fixed)
    document["tests"][4]["expect"]["holds"] = ["fraud-review", "high-value"]
    document["tests"][5]["expect"]["holds"] = ["fraud-review", "high-value"]
    assert client.put("/rules/validation/versions/2", headers=analyst, json={
        "document": document, "comment": "tests follow the new rule"}).status_code == 200
    assert client.get("/rules/validation/versions/2/tests", headers=analyst).json == {
        "tests": 6, "passed": True, "failures": []}

    # publishing makes it decide the next order, with the version recorded
    published = client.post("/rules/validation/versions/2/publish", headers=analyst,
                            json={"comment": "approved by ops lead"})
    assert published.json["state"] == "published"
    assert client.get("/rules/validation/versions/1", headers=analyst).json["state"] == (
        "retired")
    following = client.post("/orders", json=order_body(), headers=admin).json
    assert following["status"] == "on_hold"
    decision = client.get(f"/orders/{following['id']}/decisions", headers=admin
                          ).json["items"][0]
    assert decision["version"] == 2
    assert [h["queue"] for h in client.get("/holds", headers=admin).json["items"]] == [
        "high-value"]

    # rolling back republishes version 1, and the audit trail tells the story
    rolled = client.post("/rules/validation/versions/1/rollback", headers=analyst,
                         json={"comment": "too many holds"})
    assert rolled.json["state"] == "published"
    after = client.post("/orders", json=order_body(), headers=admin).json
    assert after["status"] == "allocated"
    history = client.get("/rules/validation/history", headers=analyst).json["items"]
    assert [(h["version"], h["action"]) for h in history] == [
        (1, "drafted"), (1, "published"), (2, "drafted"), (2, "updated"), (2, "published"),
        (1, "rolled_back")]
    assert history[-1]["actor"] == "api_key:ana-analyst"


def test_a_dry_run_on_a_posted_order_leaves_no_order_behind(client, make_key, admin, catalog):
    analyst = make_key("analyst")
    body = order_body()
    body["shipping_address"]["country"] = "KP"
    result = client.post("/rules/validation/dry-run", headers=analyst, json={"order": body})
    assert result.status_code == 200
    assert result.json["version"] == 1
    assert result.json["outcome"] == "rejected"
    assert client.get("/orders", headers=admin).json["items"] == []
    # and the same channel reference can still be used for real
    assert client.post("/orders", json=order_body(channel_order_ref=body["channel_order_ref"]),
                       headers=admin).status_code == 201


def test_a_dry_run_of_an_unsaved_rule_set_is_checked_first(client, make_key, admin, catalog):
    analyst = make_key("analyst")
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    bad = with_rule({**HIGH_VALUE, "actions": [{"name": "hold", "params": {"queue": "x"}}]})
    response = client.post("/rules/validation/dry-run", headers=analyst,
                           json={"document": bad, "order_id": order_id})
    assert response.status_code == 422
    assert {e["field"] for e in response.json["errors"]} == {
        "document/rules/11/conditions/name", "document/rules/11/actions/0/params/reason"}


def test_the_diff_lists_rules_added_removed_and_changed(client, make_key):
    analyst = make_key("analyst")
    document = copy.deepcopy(default_rule_set("validation"))
    document["rules"] = [rule for rule in document["rules"] if rule["name"] != "price-floor"]
    document["rules"][0]["description"] = "changed"
    document["rules"].append({**HIGH_VALUE, "conditions": {
        "name": "order_total", "operator": "greater_than", "value": 200}})
    client.post("/rules/validation/versions", headers=analyst,
                json={"document": document, "comment": "c"})
    changes = client.get("/rules/validation/diff?from=1&to=2", headers=analyst).json["changes"]
    assert sorted((c["rule"], c["change"]) for c in changes) == [
        ("high-value-review", "added"), ("postal-code-required", "changed"),
        ("price-floor", "removed")]
    # a version that changes only its test cases shows that too
    document["tests"] = document["tests"][:2]
    client.post("/rules/validation/versions", headers=analyst,
                json={"document": document, "comment": "fewer tests"})
    changes = client.get("/rules/validation/diff?from=2&to=3", headers=analyst).json["changes"]
    assert [(c["rule"], c["change"]) for c in changes] == [("(tests)", "changed")]


def test_the_diff_names_each_changed_field_down_to_the_value(client, make_key):
    # given a draft that lowers the first-order threshold and moves the price floor last
    analyst = make_key("analyst")
    document = copy.deepcopy(default_rule_set("validation"))
    [rule] = [r for r in document["rules"] if r["name"] == "first-order-over-value"]
    rule["conditions"]["all"][1]["value"] = 1500
    document["rules"].append(document["rules"].pop(4))  # price-floor
    client.post("/rules/validation/versions", headers=analyst,
                json={"document": document, "comment": "lower threshold"})
    # then the diff says which field changed, from what to what, and what moved
    fields = client.get("/rules/validation/diff?from=1&to=2", headers=analyst).json["fields"]
    assert {"path": "/rules/4/conditions/all/1/value", "change": "changed", "before": 2000,
            "after": 1500, "rule": "first-order-over-value"} in fields
    assert {"path": "/rules/10", "change": "moved", "before": 4, "after": 10,
            "rule": "price-floor"} in fields
    assert all(f["change"] == "moved" or f["rule"] == "first-order-over-value"
               for f in fields)


def test_a_draft_is_discarded_kept_in_the_history_and_never_published(client, make_key):
    analyst = make_key("analyst")
    client.post("/rules/validation/versions", headers=analyst,
                json={"document": default_rule_set("validation"), "comment": "try"})
    discarded = client.post("/rules/validation/versions/2/discard", headers=analyst,
                            json={"comment": "not needed"})
    assert discarded.status_code == 200
    assert discarded.json["state"] == "discarded"
    for action in ("publish", "discard"):
        refused = client.post(f"/rules/validation/versions/2/{action}", headers=analyst,
                              json={"comment": "again"})
        assert (refused.status_code, refused.json["code"]) == (409, "rule_set_state")
    assert client.post("/rules/validation/versions/1/discard", headers=analyst,
                       json={"comment": "x"}).status_code == 409  # published
    assert [(e["version"], e["action"], e["comment"]) for e in client.get(
        "/rules/validation/history", headers=analyst).json["items"]][-1] == (
        2, "discarded", "not needed")


def test_a_first_match_draft_that_overlaps_is_saved_with_a_warning_on_the_rule(
        client, make_key):
    analyst = make_key("analyst")
    created = client.post("/rules/exceptions/versions", headers=analyst, json={
        "document": default_rule_set("exceptions"), "comment": "as shipped"})
    assert created.status_code == 201
    warned = {w["field"]: w["message"] for w in created.json["warnings"]}
    assert warned["document/rules/2/conditions"].startswith(
        "overlaps the earlier rule 'payment-retry': both hold when")


def test_only_drafts_change_and_only_drafts_are_published(client, make_key):
    analyst = make_key("analyst")
    document = default_rule_set("validation")
    edit = client.put("/rules/validation/versions/1", headers=analyst,
                      json={"document": document, "comment": "sneaky"})
    assert edit.status_code == 409
    assert edit.json["code"] == "rule_set_state"
    again = client.post("/rules/validation/versions/1/publish", headers=analyst,
                        json={"comment": "again"})
    assert again.status_code == 409
    assert client.post("/rules/validation/versions/9/publish", headers=analyst,
                       json={"comment": "x"}).status_code == 404
    assert client.get("/rules/pricing/schema", headers=analyst).status_code == 404


def test_ops_and_integrations_read_rules_and_only_analysts_change_them(client, make_key):
    ops, system = make_key("ops"), make_key("channel", channel="web")
    for reader in (ops, system):
        assert client.get("/rules", headers=reader).json["items"][0] == {
            "name": "validation", "published_version": 1, "stop_on_first_trigger": False,
            "description": client.get("/rules", headers=reader).json["items"][0]["description"]}
        assert client.get("/rules/validation/schema", headers=reader).status_code == 200
    response = client.post("/rules/validation/versions", headers=ops, json={
        "document": default_rule_set("validation"), "comment": "c"})
    assert response.status_code == 403


def test_the_check_endpoint_stores_nothing(client, make_key):
    analyst = make_key("analyst")
    ok = client.post("/rules/validation/validate", headers=analyst,
                     json={"document": default_rule_set("validation")})
    assert ok.json == {"valid": True, "warnings": []}
    bad = client.post("/rules/validation/validate", headers=analyst,
                      json={"document": {"rules": [{"name": "x"}]}})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json["errors"]} == {"document/rules/0/conditions",
                                                       "document/rules/0/actions"}
    assert len(client.get("/rules/validation/versions", headers=analyst).json["items"]) == 1


def test_rule_sets_round_trip_through_files_for_review_in_git(app, database_url, monkeypatch,
                                                             tmp_path):
    from api.cli import main as cli

    monkeypatch.setenv("OMS_DATABASE_URL", database_url)
    runner = app.test_cli_runner()
    exported = runner.invoke(cli, ["rules", "export", "validation"])
    assert exported.exit_code == 0, exported.output
    document = json.loads(exported.output)
    assert document == default_rule_set("validation")
    document["rules"] = document["rules"][:8]
    document["tests"] = document["tests"][:4]  # the ones the kept rules decide
    path = tmp_path / "validation.json"
    path.write_text(json.dumps(document))
    imported = runner.invoke(cli, ["rules", "import", "validation", str(path),
                                   "--comment", "trimmed", "--publish"])
    assert imported.exit_code == 0, imported.output
    assert "validation version 2 published" in imported.output
    again = json.loads(runner.invoke(cli, ["rules", "export", "validation"]).output)
    assert len(again["rules"]) == 8
    path.write_text(json.dumps({"rules": [{"name": "x"}]}))
    refused = runner.invoke(cli, ["rules", "import", "validation", str(path), "--comment", "x"])
    assert refused.exit_code != 0
    assert "document/rules/0/conditions: missing" in refused.output


def test_a_simulation_shows_how_many_recent_decisions_a_draft_would_change(client, make_key,
                                                                           admin, catalog):
    analyst = make_key("analyst")
    small = [{"sku": "MUG-2", "quantity": 1, "unit_price": "24.50"}]
    orders = [client.post("/orders", json=order_body(lines=small), headers=admin).json
              for _ in range(3)]
    big = client.post("/orders", json=order_body(), headers=admin).json  # 219.30
    fixed = {**HIGH_VALUE, "conditions": {**HIGH_VALUE["conditions"], "name": "order_total"}}
    client.post("/rules/validation/versions", headers=analyst,
                json={"document": with_rule(fixed), "comment": "c"})
    result = client.post("/rules/validation/simulate", headers=analyst,
                         json={"version": 2, "last": 1000}).json
    assert (result["baseline_version"], result["candidate_version"]) == (1, 2)
    assert result["orders"] == 4
    assert result["changed"] == 1
    assert result["by_change"] == {"validated->on_hold": 1}
    assert result["examples"] == [{
        "order_id": big["id"], "before": "validated", "after": "on_hold",
        "before_reasons": [], "after_reasons": ["high-value:high-value-review"]}]
    # nothing was decided for real
    assert {o["status"] for o in orders} == {"allocated"}
    assert client.get("/holds", headers=admin).json["items"] == []


def test_a_stage_can_require_a_second_analyst_to_approve(make_app, make_key):
    app = make_app(RULES_APPROVAL_STAGES="validation")
    client = app.test_client()
    author, reviewer = make_key("analyst", name="author"), make_key("analyst", name="reviewer")
    document = default_rule_set("validation")
    client.post("/rules/validation/versions", headers=author,
                json={"document": document, "comment": "c"})
    refused = client.post("/rules/validation/versions/2/publish", headers=author,
                          json={"comment": "ship it"})
    assert (refused.status_code, refused.json["code"]) == (409, "approval_required")
    own = client.post("/rules/validation/versions/2/approve", headers=author,
                      json={"comment": "looks good to me"})
    assert (own.status_code, own.json["code"]) == (409, "approval_required")
    approved = client.post("/rules/validation/versions/2/approve", headers=reviewer,
                           json={"comment": "checked the simulation"})
    assert approved.json["approved_by"] == "api_key:reviewer"
    # a change after approval needs approving again
    client.put("/rules/validation/versions/2", headers=author,
               json={"document": document, "comment": "tweak"})
    assert client.post("/rules/validation/versions/2/publish", headers=author,
                       json={"comment": "x"}).status_code == 409
    client.post("/rules/validation/versions/2/approve", headers=reviewer,
                json={"comment": "again"})
    published = client.post("/rules/validation/versions/2/publish", headers=author,
                            json={"comment": "ship it"})
    assert published.json["state"] == "published"
    actions = [(h["action"], h["actor"]) for h in client.get(
        "/rules/validation/history", headers=author).json["items"]][2:]
    assert actions == [("drafted", "api_key:author"), ("approved", "api_key:reviewer"),
                       ("updated", "api_key:author"), ("approved", "api_key:reviewer"),
                       ("published", "api_key:author")]


def test_the_exceptions_stage_is_edited_and_tested_but_not_yet_tried_on_orders(client,
                                                                            make_key,
                                                                            admin, catalog):
    analyst = make_key("analyst")
    stages = {s["name"]: s for s in client.get("/rules", headers=analyst).json["items"]}
    assert stages["exceptions"]["stop_on_first_trigger"] is True
    assert stages["exceptions"]["published_version"] == 1
    assert client.get("/rules/exceptions/versions/1/tests", headers=analyst).json == {
        "tests": 8, "passed": True, "failures": []}
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    response = client.post("/rules/exceptions/dry-run", headers=analyst,
                           json={"order_id": order_id})
    assert response.status_code == 409
    assert response.json["code"] == "stage_not_runnable"


def test_a_simulation_decides_each_order_with_the_facts_its_capture_saw(client, make_key,
                                                                       admin, catalog):
    analyst = make_key("analyst")
    small = [{"sku": "MUG-2", "quantity": 1, "unit_price": "24.50"}]
    big = [{"sku": "LAMP-1", "quantity": 30, "unit_price": "89.90"}]  # 2,697 + 15 shipping
    client.post("/orders", json=order_body(lines=small), headers=admin)  # C-ANA returns
    first = client.post("/orders", json=order_body(lines=big), headers=admin).json
    second = client.post("/orders", json=order_body(lines=big), headers=admin).json
    assert (first["status"], second["status"]) == ("allocated", "on_hold")  # out of credit
    # the first big order is cancelled afterwards: today the credit would suffice
    client.post(f"/orders/{first['id']}/cancel", json={"reason": "changed"}, headers=admin)
    without_credit_rule = copy.deepcopy(default_rule_set("validation"))
    without_credit_rule["rules"] = [r for r in without_credit_rule["rules"]
                                    if r["name"] != "credit-limit"]
    without_credit_rule["tests"] = [t for t in without_credit_rule["tests"]
                                    if "credit" not in t["name"]]
    result = client.post("/rules/validation/simulate", headers=analyst,
                         json={"document": without_credit_rule}).json
    assert result["by_change"] == {"on_hold->validated": 1}
    assert result["examples"][0]["order_id"] == second["id"]


def test_a_simulation_by_an_integration_key_sees_only_its_channel(client, make_key, admin,
                                                                  catalog):
    client.post("/orders", json=order_body(channel="web"), headers=admin)
    client.post("/orders", json=order_body(channel="erp"), headers=admin)
    web = make_key("channel", channel="web")
    result = client.post("/rules/validation/simulate", headers=web,
                         json={"version": 1}).json
    assert result["orders"] == 1


def test_a_customer_whose_only_earlier_order_was_rejected_is_still_new(client, admin, catalog):
    rejected = order_body(customer_id="C-BEN")
    rejected["shipping_address"].pop("postal_code")
    assert client.post("/orders", json=rejected, headers=admin).json["status"] == "rejected"
    big = order_body(customer_id="C-BEN", lines=[
        {"sku": "LAMP-1", "quantity": 30, "unit_price": "89.90"}])
    held = client.post("/orders", json=big, headers=admin).json
    assert held["status"] == "on_hold"
    decision = client.get(f"/orders/{held['id']}/decisions", headers=admin).json["items"][0]
    assert decision["facts"]["customer_is_new"] is True


def test_an_analyst_keeps_business_orders_out_of_stores_through_the_api_alone(
        client, make_key, admin, catalog, services):
    from tests.conftest import stock

    analyst = make_key("analyst", name="ana-analyst")
    # before: a sourcing set without the store rule is live, and a business order (C-ANA
    # buys on net 30) is shipped from the only place with lamps, a store
    without = copy.deepcopy(default_rule_set("sourcing"))
    without["rules"] = [r for r in without["rules"] if r["name"] != "business-orders-skip-stores"]
    without["tests"] = [t for t in without["tests"] if "store" not in t["name"]]
    assert client.post("/rules/sourcing/versions", headers=analyst, json={
        "document": without, "comment": "stores for everyone"}).status_code == 201
    assert client.post("/rules/sourcing/versions/2/publish", headers=analyst,
                       json={"comment": "trial"}).status_code == 200
    client.post("/locations", headers=admin, json={
        "code": "ST-PINHEIROS", "name": "Pinheiros store", "kind": "store", "region": "SP",
        "country": "BR", "latitude": -23.566, "longitude": -46.692})
    stock(services, {("LAMP-1", "WH-SP"): 0, ("LAMP-1", "ST-PINHEIROS"): 10})
    lamps = [{"sku": "LAMP-1", "quantity": 2, "unit_price": "89.90"}]
    existing = client.post("/orders", json=order_body(lines=lamps), headers=admin).json
    assert existing["status"] == "allocated"
    assert [g["location"] for g in client.get(f"/orders/{existing['id']}/fulfilment",
                                              headers=admin).json["items"]] == ["ST-PINHEIROS"]

    # the analyst drafts the rule with a misspelled variable: one precise 422
    rule = {"name": "b2b-no-stores",
            "conditions": {"all": [
                {"name": "is_busines_order", "operator": "is_true", "value": None},
                {"name": "location_kind", "operator": "equal_to", "value": "store"}]},
            "actions": [{"name": "exclude_location",
                         "params": {"reason": "Business orders ship from warehouses."}}]}
    draft = copy.deepcopy(without)
    draft["rules"].insert(0, rule)
    refused = client.post("/rules/sourcing/versions", headers=analyst,
                          json={"document": draft, "comment": "b2b"})
    assert (refused.status_code, refused.json["code"]) == (422, "rule_set_invalid")
    assert refused.json["errors"] == [{
        "field": "document/rules/0/conditions/all/0/name", "in": "body",
        "message": "unknown variable 'is_busines_order'; did you mean 'is_business_order'?"}]

    # fixed, it is stored as version 3
    rule["conditions"]["all"][0]["name"] = "is_business_order"
    stored = client.post("/rules/sourcing/versions", headers=analyst,
                         json={"document": draft, "comment": "b2b from warehouses only"})
    assert (stored.status_code, stored.json["version"]) == (201, 3)

    # a dry run on the existing order shows the store excluded by the new rule; no change
    trial = client.post("/rules/sourcing/dry-run", headers=analyst,
                        json={"version": 3, "order_id": existing["id"]})
    assert trial.status_code == 200
    assert (trial.json["outcome"], trial.json["decision"]["groups"]) == ("backordered", [])
    [store] = [c for c in trial.json["trace"] if c["location"] == "ST-PINHEIROS"]
    assert store["excluded_because"] == ["Business orders ship from warehouses."]
    fired = next(r for r in store["rules"] if r["rule"] == "b2b-no-stores")
    assert [(c["variable"], c["fact"], c["held"]) for c in fired["conditions"]] == [
        ("is_business_order", True, True), ("location_kind", "store", True)]
    assert client.get(f"/orders/{existing['id']}", headers=admin).json["status"] == "released"

    # simulated over the last 1,000 orders: this one order would move
    simulation = client.post("/rules/sourcing/simulate", headers=analyst,
                             json={"version": 3, "last": 1000}).json
    assert (simulation["orders"], simulation["changed"]) == (1, 1)
    assert simulation["by_change"] == {"allocated->backordered": 1}
    assert simulation["by_location"] == {"ST-PINHEIROS->none": 1}

    # published, it decides the next order, and the decision names version 3
    assert client.post("/rules/sourcing/versions/3/publish", headers=analyst,
                       json={"comment": "approved"}).json["state"] == "published"
    following = client.post("/orders", json=order_body(lines=lamps), headers=admin).json
    assert following["status"] == "backordered"
    sourcing = [d for d in client.get(f"/orders/{following['id']}/decisions",
                                      headers=admin).json["items"] if d["stage"] == "sourcing"]
    assert [(d["version"], d["outcome"]) for d in sourcing] == [(3, "backordered")]
    history = client.get("/rules/sourcing/history", headers=analyst).json["items"]
    assert [(h["version"], h["action"]) for h in history][-2:] == [(3, "drafted"),
                                                                  (3, "published")]


def test_a_simulation_can_cover_a_time_window_of_orders(client, make_key, admin, catalog):
    from datetime import UTC, datetime, timedelta

    analyst = make_key("analyst")
    for _ in range(3):
        client.post("/orders", json=order_body(), headers=admin)
    now = datetime.now(UTC)
    fixed = {**HIGH_VALUE, "conditions": {**HIGH_VALUE["conditions"], "name": "order_total"}}

    def simulate(**window):
        return client.post("/rules/validation/simulate", headers=analyst, json={
            "document": with_rule(fixed), **{k: v.isoformat() for k, v in window.items()}})

    covering = simulate(created_from=now - timedelta(hours=1), created_to=now + timedelta(hours=1))
    assert (covering.json["orders"], covering.json["changed"]) == (3, 3)
    assert covering.json["window"]["from"] == (now - timedelta(hours=1)).isoformat()
    earlier = simulate(created_to=now - timedelta(hours=1)).json
    assert (earlier["orders"], earlier["changed"]) == (0, 0)
    backwards = simulate(created_from=now, created_to=now - timedelta(days=1))
    assert backwards.status_code == 422
    assert [e["field"] for e in backwards.json["errors"]] == ["created_to"]
    # the same window as a background job
    job = client.post("/rules/validation/simulations", headers=analyst, json={
        "document": with_rule(fixed), "created_from": (now - timedelta(hours=1)).isoformat()})
    assert job.status_code == 202
    done = client.get(job.headers["Location"], headers=analyst).json
    assert (done["state"], done["result"]["orders"]) == ("done", 3)
