"""Every action an exceptions rule may choose is carried out for the events it may be
chosen for, or the rule set is refused when it is saved."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from engine.decisions.rulesets import default_rule_set
from rules.stages.exceptions import ACTIONS_BY_EVENT, EVENTS
from tests.conftest import order_body, stock, wms_event

RIO = {"code": "WH-RJ", "name": "Rio warehouse", "kind": "warehouse", "city": "Rio de Janeiro",
       "region": "RJ", "postal_code": "20010-000", "country": "BR",
       "latitude": -22.906847, "longitude": -43.172897}


def test_a_short_pick_is_re_sourced_from_another_warehouse_and_nothing_is_cancelled(
        client, admin, make_key, catalog, services):
    ops = make_key("ops")
    # given a second warehouse with mugs, and an order shipping whole from Sao Paulo
    assert client.post("/locations/bulk", json={"rows": [RIO]}, headers=admin).json[
        "failed"] == 0
    stock(services, {("MUG-2", "WH-RJ"): 10})
    order = client.post("/orders", json=order_body(customer_id="C-BEN"), headers=admin).json
    [first] = client.get(f"/orders/{order['id']}/fulfilment", headers=ops).json["items"]
    assert (first["location"], first["status"]) == ("WH-SP", "released")

    # when Sao Paulo cannot find the mug
    short = wms_event(client, ops, first["id"], "short_picked", "sp-1",
                lines=[{"sku": "MUG-2", "quantity": 1}])
    assert short.json["outcome"] == "applied"

    # then the shipped rules re-source it: Rio has it reserved, with a carrier, released
    seen = client.get(f"/orders/{order['id']}", headers=ops).json
    assert seen["status"] == "released"
    mug = seen["lines"][1]["quantities"]
    assert (mug["cancelled"], mug["backordered"], mug["allocated"]) == (0, 0, 1)
    groups = client.get(f"/orders/{order['id']}/fulfilment", headers=ops).json["items"]
    [second] = [g for g in groups if g["id"] != first["id"]]
    assert second["location"] == "WH-RJ" and second["status"] == "released"
    assert second["carrier"] is not None
    assert [(line["sku"], line["quantity"]) for line in second["lines"]] == [("MUG-2", 1)]
    [decision] = [d for d in client.get(f"/orders/{order['id']}/decisions", headers=ops)
                  .json["items"] if d["stage"] == "exceptions"]
    assert decision["outcome"] == "resource" and "not_applied" not in decision["decision"]

    # and both warehouses ship: the customer pays the whole order, once
    assert wms_event(client, ops, first["id"], "shipped", "s-1", tracking_number="RS000000001BR",
               lines=[{"sku": "LAMP-1", "quantity": 2}]).status_code == 200
    assert wms_event(client, ops, second["id"], "shipped", "s-2", tracking_number="RS000000002BR",
               lines=[{"sku": "MUG-2", "quantity": 1}]).status_code == 200
    assert client.get(f"/orders/{order['id']}", headers=ops).json["status"] == "shipped"
    ledger = client.get(f"/orders/{order['id']}/ledger", headers=ops).json["items"]
    assert sum(Decimal(e["amount"]) for e in ledger if e["kind"] == "invoice") == Decimal(
        order["total"])


def test_a_second_short_pick_holds_the_order_and_its_release_sources_the_units_again(
        client, admin, make_key, catalog, services):
    ops = make_key("ops")
    # given an order whose mug was short once already (re-sourced, and waiting for stock)
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    [group] = client.get(f"/orders/{order_id}/fulfilment", headers=ops).json["items"]
    wms_event(client, ops, group["id"], "short_picked", "sp-1",
        lines=[{"sku": "MUG-2", "quantity": 1}])
    # when a lamp is short too: the shipped rules hold the order in the inventory queue
    wms_event(client, ops, group["id"], "short_picked", "sp-2",
        lines=[{"sku": "LAMP-1", "quantity": 1}])
    order = client.get(f"/orders/{order_id}", headers=ops).json
    assert order["status"] == "on_hold"
    assert [line["quantities"]["backordered"] for line in order["lines"]] == [1, 1]
    assert [line["quantities"]["cancelled"] for line in order["lines"]] == [0, 0]
    [hold] = client.get("/holds", headers=ops).json["items"]
    assert hold["queue"] == "inventory"
    # then ops find stock and release the hold: the missing units are allocated again
    stock(services, {("MUG-2", "WH-SP"): 120, ("LAMP-1", "WH-SP"): 120})
    released = client.post(f"/orders/{order_id}/release-hold", json={}, headers=ops)
    assert released.status_code == 200, released.json
    order = client.get(f"/orders/{order_id}", headers=ops).json
    assert order["status"] == "released"
    assert [line["quantities"]["allocated"] for line in order["lines"]] == [2, 1]
    assert [line["quantities"]["backordered"] for line in order["lines"]] == [0, 0]


def exceptions_with(rule, at=0):
    document = copy.deepcopy(default_rule_set("exceptions"))
    document["rules"].insert(at, rule)
    return document


@pytest.mark.parametrize(("rule", "message"), [
    ({"name": "re-source-late", "conditions": {"name": "event_type", "operator": "equal_to",
                                               "value": "carrier_delay"},
      "actions": [{"name": "notify", "params": {"recipient": "ops", "message": "late"}},
                  {"name": "resource", "params": {"reason": "late"}}]},
     "'resource' cannot be carried out for carrier_delay"),
    ({"name": "retry-short", "conditions": {"all": [
        {"name": "event_type", "operator": "is_in", "value": ["stock_short", "wms_rejected"]},
        {"name": "attempts", "operator": "less_than", "value": 2}]},
      "actions": [{"name": "notify", "params": {"recipient": "ops", "message": "short"}},
                  {"name": "retry", "params": {"after_minutes": 5}}]},
     "'retry' cannot be carried out for stock_short"),
    ({"name": "re-source-anything", "conditions": {"name": "attempts", "operator":
                                                   "greater_than", "value": 5},
      "actions": [{"name": "notify", "params": {"recipient": "ops", "message": "again"}},
                  {"name": "resource", "params": {"reason": "again"}}]},
     "'resource' cannot be carried out for carrier_delay, label_failed, payment_failed, "
     "rule_error, wms_rejected"),
])
def test_a_rule_set_choosing_an_action_impossible_for_its_event_is_refused_at_save(
        client, make_key, rule, message):
    analyst = make_key("analyst")
    # when an analyst saves exceptions rules with an action the engine cannot carry out
    refused = client.post("/rules/exceptions/versions", headers=analyst, json={
        "document": exceptions_with(rule), "comment": "try"})
    # then it is refused with the pointer to the action, and nothing is stored
    assert refused.status_code == 422
    assert refused.json["code"] == "rule_set_invalid"
    [problem] = refused.json["errors"]
    assert problem["field"] == "document/rules/0/actions/1/name"
    assert problem["message"].startswith(message)
    assert len(client.get("/rules/exceptions/versions", headers=analyst).json["items"]) == 1


def test_a_rule_that_narrows_its_event_may_choose_what_that_event_allows(client, make_key):
    analyst = make_key("analyst")
    rule = {"name": "re-source-short", "conditions": {"all": [
        {"name": "event_type", "operator": "equal_to", "value": "stock_short"},
        {"name": "order_total", "operator": "greater_than", "value": 1000}]},
        "actions": [{"name": "resource", "params": {"reason": "big order"}}]}
    saved = client.post("/rules/exceptions/versions", headers=analyst, json={
        "document": exceptions_with(rule), "comment": "big orders re-source"})
    assert saved.status_code == 201, saved.json


def test_every_event_can_be_held_and_notified_about():
    # the catch-all rule of any rule set must be possible whatever happened
    assert set(ACTIONS_BY_EVENT) == set(EVENTS)
    assert all({"hold", "notify"} <= actions for actions in ACTIONS_BY_EVENT.values())


def test_rules_that_cancel_a_short_pick_cancel_only_the_units_left_once_part_has_shipped(
        client, admin, make_key, catalog, services):
    ops, analyst = make_key("ops"), make_key("analyst")
    # given exceptions rules that cancel what a short pick misses
    document = {"rules": [
        {"name": "short-cancels", "conditions": {"name": "event_type", "operator":
                                                 "equal_to", "value": "stock_short"},
         "actions": [{"name": "cancel", "params": {"reason": "Out of stock."}}]},
        {"name": "anything-else", "conditions": {"name": "event_type", "operator":
                                                 "non_empty", "value": None},
         "actions": [{"name": "hold", "params": {"queue": "exceptions",
                                                 "reason": "Look at it."}}]}]}
    draft = client.post("/rules/exceptions/versions", headers=analyst,
                        json={"document": document, "comment": "cancel shorts"})
    assert draft.status_code == 201, draft.json
    assert client.post(f"/rules/exceptions/versions/{draft.json['version']}/publish",
                       headers=analyst, json={"comment": "go"}).status_code == 200
    # and an order whose lamps have shipped
    order = client.post("/orders", json=order_body(customer_id="C-BEN"), headers=admin).json
    [group] = client.get(f"/orders/{order['id']}/fulfilment", headers=ops).json["items"]
    assert wms_event(client, ops, group["id"], "shipped", "s-1", tracking_number="CS000000001BR",
               lines=[{"sku": "LAMP-1", "quantity": 2}]).status_code == 200
    # when the mug is short
    wms_event(client, ops, group["id"], "short_picked", "sp-1",
        lines=[{"sku": "MUG-2", "quantity": 1}])
    # then the mug is cancelled, the order has shipped all it will, and bills the lamps only
    seen = client.get(f"/orders/{order['id']}", headers=ops).json
    assert seen["status"] == "shipped"
    assert seen["lines"][1]["quantities"]["cancelled"] == 1
    ledger = client.get(f"/orders/{order['id']}/ledger", headers=ops).json["items"]
    billed = sum(Decimal(e["amount"]) for e in ledger if e["kind"] == "invoice")
    assert billed < Decimal(order["total"])
    [decision] = [d for d in client.get(f"/orders/{order['id']}/decisions", headers=ops)
                  .json["items"] if d["stage"] == "exceptions"]
    assert decision["outcome"] == "cancel" and "not_applied" not in decision["decision"]
    assert decision["decision"]["cancelled_units"] == 1
