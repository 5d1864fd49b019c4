"""Carriers: every service is rated per shipment, the rules choose, the choice is explained."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from click.testing import CliRunner

from adapters.carriers import shipped_carriers
from api.cli import main as cli
from rules.vocabulary import SERVICE_LEVELS
from tests.conftest import order_body

RIO_CUSTOMER = {"id": "C-RIO", "name": "Rio Buyer", "country": "BR", "postal_code": "22021-001",
                "latitude": -22.906847, "longitude": -43.172897}
RIO_ADDRESS = {"name": "Rio Buyer", "line1": "Av. Atlantica 1702", "city": "Rio de Janeiro",
               "region": "RJ", "postal_code": "22021-001", "country": "BR"}
STRIKE = {
    "name": "correios-strike",
    "description": "Correios is on strike: nothing goes with them.",
    "conditions": {"name": "carrier", "operator": "equal_to", "value": "CORREIOS"},
    "actions": [{"name": "exclude_option", "params": {"reason": "Correios is on strike."}}],
}


def services_by_option(client, headers):
    """Return every service of GET /carriers by its trace label, CARRIER/SERVICE."""
    return {f"{carrier['code']}/{service['code']}": service
            for carrier in client.get("/carriers", headers=headers).json["items"]
            for service in carrier["services"]}


def carrier_decision(client, headers, order_id):
    """Return the order's latest carrier decision."""
    decisions = client.get(f"/orders/{order_id}/decisions", headers=headers).json["items"]
    return [d for d in decisions if d["stage"] == "carrier"][-1]


def only_group(client, headers, order_id):
    [group] = client.get(f"/orders/{order_id}/fulfilment", headers=headers).json["items"]
    return group


def compared(option):
    """What the choice compares: the cost with the rules' penalties."""
    return Decimal(option["cost"]) + Decimal(option["penalty"])


def winner(options):
    [won] = [option for option in options if option["result"] == "won"]
    return won


def as_put(carrier, **changes):
    """A GET /carriers/{code} body made fit for PUT: the code is in the path."""
    body = {key: value for key, value in carrier.items() if key not in ("code", "updated_at")}
    return {**body, **changes}


def new_carrier(service_code="FLASH", service_level="overnight", price="20.00",
                transit_days=3):
    return {"name": "New Co", "services": [{
        "code": service_code, "name": "Flash", "service_level": service_level,
        "mode": "ground", "max_weight_kg": 30, "cutoff_hour": 24,
        "rates": [{"max_km": 5000, "max_kg": 30, "price": price,
                   "transit_days": transit_days}]}]}


def test_an_ordinary_order_goes_by_the_cheapest_service_that_keeps_the_promise(client, admin,
                                                                              catalog):
    # two lamps and a mug, express
    order = client.post("/orders", json=order_body(), headers=admin).json
    assert order["status"] == "allocated"

    # the shipment has a carrier, a service, a cost and a promised delivery
    group = only_group(client, admin, order["id"])
    assert group["carrier"] and group["service"]
    assert Decimal(group["shipping_cost"]) > 0
    assert datetime.fromisoformat(group["promised_at"]) > datetime.fromisoformat(
        order["created_at"])

    # every active service was rated, and each says whether it won and why
    decision = carrier_decision(client, admin, order["id"])
    assert (decision["outcome"], decision["version"]) == ("selected", 1)
    assert group["carrier_decision_id"] == decision["id"]
    [shipment] = decision["trace"]
    services = services_by_option(client, admin)
    options = shipment["options"]
    assert sorted(option["option"] for option in options) == sorted(services)
    assert {option["result"] for option in options} == {"won", "lost"}
    assert all(option["why"] for option in options)
    won = winner(options)
    assert won["option"] == f"{group['carrier']}/{group['service']}"
    assert (won["cost"], won["promised_at"]) == (group["shipping_cost"], group["promised_at"])
    assert won["why"] == "the cheapest that keeps the promise"

    # the winner is the cheapest of the services at least as fast as express...
    express = SERVICE_LEVELS.index("express")
    keeping = [option for option in options if not option["excluded_because"]
               and SERVICE_LEVELS.index(services[option["option"]]["service_level"]) >= express]
    assert won is min(keeping, key=compared)
    # ...and cheaper services lost because they are slower than what was asked for
    cheaper = [option for option in options if compared(option) < compared(won)]
    assert cheaper
    assert all(option not in keeping for option in cheaper)
    assert all(option["why"] == f"its {services[option['option']]['service_level']} service "
               "is below the requested express" for option in cheaper)
    assert all(option["why"].startswith(f"{won['option']} is the cheapest that keeps the promise")
               for option in keeping if option is not won)
    assert any(rule["rule"] == "otherwise-cheapest" and rule["fired"] for rule in won["rules"])


def test_hazardous_goods_never_fly_nor_go_with_a_service_that_refuses_them(client, admin,
                                                                           catalog):
    # one battery in the box makes the whole parcel hazardous
    body = order_body(customer_id="C-BEN", service_level="standard", lines=[
        {"sku": "LAMP-1", "quantity": 1, "unit_price": "89.90"},
        {"sku": "BATT-3", "quantity": 1, "unit_price": "59.00"}])
    order = client.post("/orders", json=body, headers=admin).json
    assert order["status"] == "allocated"

    services = services_by_option(client, admin)
    [shipment] = carrier_decision(client, admin, order["id"])["trace"]
    flying = refusing = 0
    for option in shipment["options"]:
        service = services[option["option"]]
        expected = []
        if service["mode"] == "air":
            expected.append("Hazardous goods cannot go by air.")
            flying += 1
        if not service["hazmat_allowed"]:
            expected.append("The service does not accept hazardous goods.")
            refusing += 1
        assert option["excluded_because"] == expected, option["option"]
        if expected:
            assert option["result"] == "lost"
            assert option["why"].startswith("excluded: ")
    assert flying and refusing  # the shipped carriers have both kinds

    group = only_group(client, admin, order["id"])
    chosen = services[f"{group['carrier']}/{group['service']}"]
    assert (chosen["mode"], chosen["hazmat_allowed"]) == ("ground", True)


def test_an_overnight_order_goes_by_the_fastest_service_whatever_it_costs(client, admin,
                                                                         catalog):
    # a new courier sells a cheap "overnight" service whose rate card takes three days
    assert client.put("/carriers/NEWCO", json=new_carrier(), headers=admin).status_code == 201
    order = client.post("/orders", json=order_body(service_level="overnight"),
                        headers=admin).json
    assert order["status"] == "allocated"

    decision = carrier_decision(client, admin, order["id"])
    [shipment] = decision["trace"]
    assert shipment["policy"]["pick"] == "fastest"
    won = winner(shipment["options"])
    assert won["why"] == "the fastest"
    assert any(rule["rule"] == "overnight-is-fastest" and rule["fired"]
               for rule in won["rules"])
    # nothing arrives sooner; of those that arrive as soon, it is the cheapest
    open_options = [o for o in shipment["options"] if not o["excluded_because"]]
    soonest = min(datetime.fromisoformat(o["promised_at"]) for o in open_options)
    assert datetime.fromisoformat(won["promised_at"]) == soonest
    assert won is min((o for o in open_options
                       if datetime.fromisoformat(o["promised_at"]) == soonest), key=compared)
    # the cheaper "overnight" label did not win: the promise date did
    [newco] = [o for o in shipment["options"] if o["option"] == "NEWCO/FLASH"]
    assert compared(newco) < compared(won)
    assert newco["why"].startswith(f"{won['option']} is the fastest")
    assert only_group(client, admin, order["id"])["carrier"] != "NEWCO"


def test_a_very_heavy_order_can_only_go_by_freight(client, admin, catalog):
    # 30 lamps to Rio (about 360 km): 27 kg, but 30 x 30x20x45 cm is 135 kg by volume
    # (at 6,000 cm3 a kg), over every parcel service's limit. A trade price keeps this
    # first order of the customer under the fraud review threshold.
    client.post("/customers/bulk", json={"rows": [RIO_CUSTOMER]}, headers=admin)
    body = order_body(customer_id="C-RIO", service_level="standard",
                      shipping_address=RIO_ADDRESS,
                      lines=[{"sku": "LAMP-1", "quantity": 30, "unit_price": "50.00"}])
    order = client.post("/orders", json=body, headers=admin).json
    assert order["status"] == "allocated"

    group = only_group(client, admin, order["id"])
    assert (group["carrier"], group["service"]) == ("BRASPRESS", "FRACIONADA")
    # the 250 kg cell of the 800 km band (freight counts 4,000 cm3 a kg: 202.5 kg):
    # 400.00 + 9.5% fuel + 0.3% insurance of the 1,500.00 of goods
    assert group["shipping_cost"] == "442.50"

    decision = carrier_decision(client, admin, order["id"])
    assert decision["facts"]["shipments"][0]["weight_kg"] == "27.000"
    [shipment] = decision["trace"]
    for option in shipment["options"]:
        if option["option"] == "BRASPRESS/FRACIONADA":
            assert option["excluded_because"] == []
            assert option["transit_days"] == 3
        else:
            assert "Heavier than the service takes." in option["excluded_because"], option
    # freight is an economy service: none keeps the standard promise, so it goes the fastest
    assert winner(shipment["options"])["why"] == (
        "the fastest, as none keeps the promised service level")


def test_an_order_no_carrier_can_take_waits_for_a_person_and_ships_once_one_can(
        client, admin, make_key, catalog):
    ops = make_key("ops")
    carriers = client.get("/carriers", headers=ops).json["items"]
    for carrier in carriers:
        response = client.put(f"/carriers/{carrier['code']}",
                              json=as_put(carrier, active=False), headers=ops)
        assert response.status_code == 200, response.json
        assert response.json["active"] is False

    # the stock is reserved, but nobody can ship it
    order = client.post("/orders", json=order_body(), headers=ops).json
    assert order["status"] == "on_hold"
    assert order["lines"][0]["quantities"]["allocated"] == 2
    [hold] = client.get("/holds", headers=ops).json["items"]
    assert (hold["order_id"], hold["queue"], hold["stage"]) == (
        order["id"], "carrier-review", "carrier")
    assert hold["reason"] == "No carrier service can ship the group from WH-SP."
    group = only_group(client, ops, order["id"])
    assert (group["carrier"], group["service"], group["shipping_cost"]) == (None, None, None)
    decision = carrier_decision(client, ops, order["id"])
    assert decision["outcome"] == "on_hold"
    assert decision["trace"][0]["chosen"] is None

    # Total Express is back; releasing the hold chooses a carrier
    total = next(carrier for carrier in carriers if carrier["code"] == "TOTAL")
    assert client.put("/carriers/TOTAL", json=as_put(total, active=True),
                      headers=ops).status_code == 200
    released = client.post(f"/holds/{hold['id']}/release", json={"note": "Total is back"},
                           headers=ops)
    assert released.status_code == 200, released.json
    # allocated, and at once released to the (embedded) warehouse
    assert client.get(f"/orders/{order['id']}", headers=ops).json["status"] == "released"
    group = only_group(client, ops, order["id"])
    assert (group["carrier"], group["service"]) == ("TOTAL", "STANDARD")
    assert Decimal(group["shipping_cost"]) > 0
    assert carrier_decision(client, ops, order["id"])["outcome"] == "selected"
    assert client.get("/holds", headers=ops).json["items"] == []
    events = client.get(f"/orders/{order['id']}/events", headers=ops).json["items"]
    assert [e["type"] for e in events][-6:] == [
        "order.held", "order.hold_released", "order.carrier_selected", "group.released",
        "order.released", "customer.notified"]


def test_an_analyst_excludes_a_carrier_and_the_next_order_never_uses_it(client, admin,
                                                                        make_key, catalog):
    analyst = make_key("analyst")
    standard = order_body(service_level="standard")
    before = client.post("/orders", json=standard, headers=admin).json
    assert only_group(client, admin, before["id"])["carrier"] == "CORREIOS"

    # the analyst drafts version 2 with the strike rule and a test case for it
    document = client.get("/rules/carrier/versions/1", headers=analyst).json["document"]
    document["rules"].insert(0, STRIKE)
    document["tests"].append({"name": "nothing goes with Correios",
                              "facts": {"carrier": "CORREIOS"}, "expect": {"excluded": "yes"}})
    draft = client.post("/rules/carrier/versions", headers=analyst,
                        json={"document": document, "comment": "Correios strike"})
    assert draft.status_code == 201, draft.json
    assert draft.json["version"] == 2

    # the cases that expect an option to stay in play rate a Correios service (the
    # baseline): publishing is refused until they name another carrier
    refused = client.post("/rules/carrier/versions/2/publish", headers=analyst,
                          json={"comment": "strike from Monday"})
    assert (refused.status_code, refused.json["code"]) == (422, "rule_set_tests_failed")
    assert [e["field"] for e in refused.json["errors"]] == [
        "document/tests/0/expect/excluded", "document/tests/5/expect/excluded"]
    for case in (document["tests"][0], document["tests"][5]):
        case["facts"]["carrier"] = "TOTAL"
    assert client.put("/rules/carrier/versions/2", headers=analyst, json={
        "document": document, "comment": "cases rate Total"}).status_code == 200
    published = client.post("/rules/carrier/versions/2/publish", headers=analyst,
                            json={"comment": "strike from Monday"})
    assert published.status_code == 200, published.json
    assert published.json["state"] == "published"

    # the next order is decided by version 2, and no Correios service wins
    after = client.post("/orders", json=order_body(service_level="standard"),
                        headers=admin).json
    assert after["status"] == "allocated"
    assert only_group(client, admin, after["id"])["carrier"] != "CORREIOS"
    decision = carrier_decision(client, admin, after["id"])
    assert decision["version"] == 2
    [shipment] = decision["trace"]
    correios = [o for o in shipment["options"] if o["option"].startswith("CORREIOS/")]
    assert len(correios) == 2
    assert all(o["excluded_because"] == ["Correios is on strike."] and o["result"] == "lost"
               for o in correios)
    # the order rated before keeps its carrier
    assert only_group(client, admin, before["id"])["carrier"] == "CORREIOS"
    assert carrier_decision(client, admin, before["id"])["version"] == 1


def test_the_shipped_carriers_are_listed_with_their_services(client, make_key):
    analyst = make_key("analyst")
    listed = client.get("/carriers", headers=analyst)
    assert listed.status_code == 200
    shipped = {row["code"]: sorted(s["code"] for s in row["services"])
               for row in shipped_carriers()}
    assert {c["code"]: [s["code"] for s in c["services"]]
            for c in listed.json["items"]} == shipped
    assert all(c["active"] for c in listed.json["items"])
    correios = client.get("/carriers/CORREIOS", headers=analyst).json
    pac = next(s for s in correios["services"] if s["code"] == "PAC")
    assert (pac["service_level"], pac["mode"], pac["max_weight_kg"]) == (
        "standard", "ground", 30)
    assert client.get("/carriers/NOPE", headers=analyst).status_code == 404


def test_a_put_creates_a_carrier_and_a_second_put_replaces_it_whole(client, admin, make_key,
                                                                  catalog):
    ops = make_key("ops")
    created = client.put("/carriers/NEWCO", json=new_carrier(), headers=ops)
    assert created.status_code == 201, created.json
    assert created.json["code"] == "NEWCO"
    assert [s["code"] for s in created.json["services"]] == ["FLASH"]

    replaced = client.put("/carriers/NEWCO", headers=ops, json=new_carrier(
        service_code="SLOW", service_level="economy", price="9.00", transit_days=10))
    assert replaced.status_code == 200, replaced.json
    read = client.get("/carriers/NEWCO", headers=ops).json
    assert [(s["code"], s["service_level"]) for s in read["services"]] == [("SLOW", "economy")]
    assert read["services"][0]["rates"] == [
        {"max_km": 5000, "max_kg": 30, "price": "9.00", "transit_days": 10}]

    # what GET returns can be edited and PUT back as it is; another code is refused
    read["services"][0]["rates"][0]["price"] = "8.50"
    assert client.put("/carriers/NEWCO", json=read, headers=ops).status_code == 200
    assert client.get("/carriers/NEWCO", headers=ops).json["services"][0]["rates"][0][
        "price"] == "8.50"
    other = client.put("/carriers/NEWCO", json={**read, "code": "OTHER"}, headers=ops)
    assert (other.status_code, other.json["errors"][0]["field"]) == (422, "code")

    # the next order rates the new service alongside the others
    order = client.post("/orders", json=order_body(), headers=admin).json
    [shipment] = carrier_decision(client, admin, order["id"])["trace"]
    labels = [o["option"] for o in shipment["options"]]
    assert "NEWCO/SLOW" in labels and "NEWCO/FLASH" not in labels


def test_bad_carriers_are_refused_with_every_offending_field(client, make_key):
    ops = make_key("ops")
    body = new_carrier()
    body["colour"] = "blue"
    service = body["services"][0]
    service["service_level"] = "warp"
    service["rates"] = [{"max_km": 300, "max_kg": 5, "price": "-1.00", "transit_days": 2},
                        {"max_km": 300, "max_kg": 5, "price": "12.00", "transit_days": 2}]
    refused = client.put("/carriers/NEWCO", json=body, headers=ops)
    assert refused.status_code == 422
    assert refused.content_type == "application/problem+json"
    assert refused.json["code"] == "validation_failed"
    assert sorted((e["field"], e["message"]) for e in refused.json["errors"]) == [
        ("colour", "Unknown field."),
        ("services/0/rates", "two rates for the same distance and weight"),
        ("services/0/rates/0/price", "must not be negative"),
        ("services/0/service_level", "must be one of economy, standard, express, overnight"),
    ]

    # a good body under a bad code
    bad_code = client.put("/carriers/new co", json=new_carrier(), headers=ops)
    assert bad_code.status_code == 422
    assert bad_code.content_type == "application/problem+json"
    assert bad_code.json["errors"] == [{
        "field": "code", "in": "path",
        "message": "1 to 32 upper-case letters, digits, '_', '.' or '-'"}]
    assert client.get("/carriers/NEWCO", headers=ops).status_code == 404


def test_analysts_read_carriers_but_only_ops_change_them(client, make_key):
    analyst = make_key("analyst")
    assert client.get("/carriers", headers=analyst).status_code == 200
    refused = client.put("/carriers/NEWCO", json=new_carrier(), headers=analyst)
    assert refused.status_code == 403
    assert refused.json["code"] == "forbidden"
    assert client.get("/carriers/NEWCO", headers=analyst).status_code == 404


def test_carriers_round_trip_through_files(client, admin, database_url, monkeypatch,
                                           tmp_path):
    monkeypatch.setenv("OMS_DATABASE_URL", database_url)
    runner = CliRunner()
    exported = runner.invoke(cli, ["carriers", "export"])
    assert exported.exit_code == 0, exported.output
    document = json.loads(exported.output)
    assert sorted(c["code"] for c in document["carriers"]) == sorted(
        row["code"] for row in shipped_carriers())

    # the exported file imports as it is, and a price changed in it is what the API shows
    pac = next(s for c in document["carriers"] if c["code"] == "CORREIOS"
               for s in c["services"] if s["code"] == "PAC")
    pac["rates"][0]["price"] = "99.00"
    path = tmp_path / "carriers.json"
    path.write_text(json.dumps(document))
    imported = runner.invoke(cli, ["carriers", "import", str(path)])
    assert imported.exit_code == 0, imported.output
    assert "CORREIOS: replaced" in imported.output
    again = json.loads(runner.invoke(cli, ["carriers", "export"]).output)
    assert again == document
    read = client.get("/carriers/CORREIOS", headers=admin).json
    assert (pac["rates"][0]["max_km"], pac["rates"][0]["max_kg"], "99.00") in [
        (r["max_km"], r["max_kg"], r["price"]) for s in read["services"] for r in s["rates"]]

    # a file the API would refuse is refused whole
    path.write_text(json.dumps({"carriers": [{"code": "X", "name": "X", "services": []}]}))
    refused = runner.invoke(cli, ["carriers", "import", str(path)])
    assert refused.exit_code != 0
    assert "not a carriers file" in refused.output


def test_a_carrier_draft_is_dry_run_and_simulated_before_it_is_published(client, admin,
                                                                         make_key, catalog):
    analyst = make_key("analyst")
    placed = [client.post("/orders", json=order_body(customer_id="C-BEN"), headers=admin).json
              for _ in range(2)]
    before = {only_group(client, admin, o["id"])["carrier"] for o in placed}
    assert len(before) == 1
    [carrier] = before
    document = client.get("/rules/carrier/versions/1", headers=analyst).json["document"]
    document["rules"].insert(0, {
        "name": "avoid-one-carrier",
        "conditions": {"name": "carrier", "operator": "equal_to", "value": carrier},
        "actions": [{"name": "exclude_option", "params": {"reason": "Under review."}}]})
    document["tests"] = []
    # a dry run on an existing order shows another carrier, and nothing changes
    trial = client.post("/rules/carrier/dry-run", headers=analyst,
                        json={"document": document, "order_id": placed[0]["id"]})
    assert trial.status_code == 200, trial.json
    [group] = trial.json["decision"]["groups"]
    assert group["chosen"]["carrier"] != carrier
    assert only_group(client, admin, placed[0]["id"])["carrier"] == carrier
    # a posted order that was never sourced is sourced in the trial, then rated
    posted = client.post("/rules/carrier/dry-run", headers=analyst,
                         json={"document": document, "order": order_body(customer_id="C-BEN")})
    assert posted.json["outcome"] == "selected"
    assert posted.json["decision"]["groups"][0]["location"] == "WH-SP"
    # the simulation counts both orders moving away from that carrier, with the cost
    result = client.post("/rules/carrier/simulate", headers=analyst,
                         json={"document": document}).json
    assert (result["orders"], result["changed"]) == (2, 2)
    [(move, count)] = result["by_carrier"].items()
    assert move.startswith(f"{carrier}/") and count == 2
    assert set(result["shipping_cost"]) == {"before", "after", "change"}
