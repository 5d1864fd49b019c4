"""API keys and roles: deny by default; channel, warehouse and carrier integrations each see
only what they are bound to."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import current_app
from sqlalchemy import text

from adapters.migrations import upgrade
from adapters.sql import make_engine
from api import BOOTSTRAP_ADMIN_KEY_NAME, create_app
from api.access import PUBLIC, ROLES_ATTRIBUTE
from api.cli import main as cli
from engine.access import list_api_keys
from engine.record import ApiKey
from tests.conftest import order_body


def test_every_route_declares_who_may_call_it(app):
    public_endpoints = app.extensions.get("oms_public_endpoints", set())
    undeclared = [
        rule.rule for rule in app.url_map.iter_rules()
        if rule.endpoint not in public_endpoints
        and getattr(app.view_functions[rule.endpoint], ROLES_ATTRIBUTE, None) is None
    ]
    assert undeclared == []
    public = sorted(rule.rule for rule in app.url_map.iter_rules()
                    if rule.endpoint in public_endpoints
                    or getattr(app.view_functions[rule.endpoint], ROLES_ATTRIBUTE) == PUBLIC)
    # what a person needs before signing in to the console is open too, and nothing else
    assert public == ["/", "/console/sign-in", "/console/sign-out",
                      "/console/static/<path:filename>", "/docs", "/docs/static/<path:filename>",
                      "/healthz", "/openapi.json", "/readyz"]


def test_a_route_that_declares_nothing_is_closed(app, admin):
    @app.get("/undeclared")
    def undeclared():
        return "open"

    response = app.test_client().get("/undeclared", headers=admin)
    assert response.status_code == 403
    assert response.json["code"] == "forbidden"


def test_no_key_is_a_401_and_a_wrong_key_too(client):
    assert client.get("/orders").status_code == 401
    response = client.get("/orders", headers={"Authorization": "Bearer oms_wrong"})
    assert response.status_code == 401
    assert response.json["code"] == "unauthenticated"
    assert "WWW-Authenticate" in response.headers


def test_the_key_can_also_come_in_x_api_key(client, make_key):
    headers = make_key("ops")
    key = headers["Authorization"].removeprefix("Bearer ")
    assert client.get("/orders", headers={"X-API-Key": key}).status_code == 200


def test_a_role_that_is_not_allowed_is_a_403(client, make_key, catalog):
    analyst = make_key("analyst")
    response = client.post("/orders", json=order_body(), headers=analyst)
    assert response.status_code == 403
    assert "analyst" in response.json["detail"]
    assert client.get("/orders", headers=analyst).status_code == 200


def test_an_integration_key_sees_only_its_own_channel(client, make_key, admin, catalog):
    web = make_key("channel", channel="web")
    erp = make_key("channel", channel="erp")
    web_order = client.post("/orders", json=order_body(channel="web"), headers=web).json
    erp_order = client.post("/orders", json=order_body(channel="erp"), headers=erp).json
    listed = client.get("/orders", headers=web).json["items"]
    assert [order["id"] for order in listed] == [web_order["id"]]
    assert client.get(f"/orders/{erp_order['id']}", headers=web).status_code == 404
    assert client.get(f"/orders/{erp_order['id']}/events", headers=web).status_code == 404
    assert client.post(f"/orders/{erp_order['id']}/cancel", json={"reason": "x"},
                       headers=web).status_code == 404
    # while ops and admin see every channel
    assert len(client.get("/orders", headers=admin).json["items"]) == 2


def test_an_integration_key_cannot_submit_for_another_channel(client, make_key, catalog):
    web = make_key("channel", channel="web")
    response = client.post("/orders", json=order_body(channel="erp"), headers=web)
    assert response.status_code == 403
    assert "web" in response.json["detail"]
    body = order_body()
    del body["channel"]
    assert client.post("/orders", json=body, headers=web).json["channel"] == "web"


def test_keys_are_created_once_shown_and_stored_only_as_a_hash(app, database_url, monkeypatch):
    monkeypatch.setenv("OMS_DATABASE_URL", database_url)
    runner = app.test_cli_runner()
    result = runner.invoke(cli, ["keys", "create", "shop", "--role", "channel",
                                 "--channel", "shop"])
    assert result.exit_code == 0, result.output
    plaintext = result.output.strip().splitlines()[-1]
    assert plaintext.startswith("oms_")
    with app.app_context():
        services = current_app.extensions["oms"]
        with services.uow() as uow:
            stored = uow.session.query(ApiKey).filter_by(name="shop").one()
            assert plaintext not in (stored.key_hash, stored.display_prefix)
    client = app.test_client()
    assert client.get("/orders", headers={"Authorization": f"Bearer {plaintext}"}
                      ).status_code == 200
    listed = runner.invoke(cli, ["keys", "list"])
    assert "shop" in listed.output and plaintext not in listed.output


def test_a_revoked_key_stops_working(app, database_url, monkeypatch):
    monkeypatch.setenv("OMS_DATABASE_URL", database_url)
    monkeypatch.setattr("api.access.KEY_CACHE_SECONDS", 0.0)
    runner = app.test_cli_runner()
    plaintext = runner.invoke(cli, ["keys", "create", "temp", "--role", "ops"]
                              ).output.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {plaintext}"}
    client = app.test_client()
    assert client.get("/orders", headers=headers).status_code == 200
    assert runner.invoke(cli, ["keys", "revoke", "temp"]).exit_code == 0
    assert client.get("/orders", headers=headers).status_code == 401


def test_the_admin_key_from_the_environment_is_ensured_once_by_concurrent_workers(
        make_app, services):
    # given four workers starting at once with the same OMS_ADMIN_API_KEY
    with ThreadPoolExecutor(max_workers=4) as pool:
        apps = list(pool.map(lambda _: make_app(ADMIN_API_KEY="oms_from_the_environment_42"),
                             range(4)))
    # then each serves with it, and exactly one such key exists
    headers = {"Authorization": "Bearer oms_from_the_environment_42"}
    for app in apps:
        assert app.test_client().get("/orders", headers=headers).status_code == 200
    with services.uow() as uow:
        assert [key.role for key in list_api_keys(uow)
                if key.name == BOOTSTRAP_ADMIN_KEY_NAME] == ["admin"]


def test_a_numeric_admin_key_from_the_environment_stays_text(make_app, database_url,
                                                             monkeypatch):
    monkeypatch.setenv("OMS_DATABASE_URL", database_url)
    monkeypatch.setenv("OMS_ADMIN_API_KEY", "123456789012")
    app = create_app()
    try:
        response = app.test_client().get("/orders",
                                         headers={"Authorization": "Bearer 123456789012"})
        assert response.status_code == 200
    finally:
        app.extensions["oms"].close()


def test_an_integration_key_must_name_what_it_is_bound_to(app, database_url, monkeypatch):
    monkeypatch.setenv("OMS_DATABASE_URL", database_url)
    runner = app.test_cli_runner()
    for role, missing in (("channel", "channel"), ("warehouse", "locations"),
                          ("carrier", "carriers")):
        result = runner.invoke(cli, ["keys", "create", f"k-{role}", "--role", role])
        assert result.exit_code != 0
        assert missing in result.output
    assert runner.invoke(cli, ["keys", "create", "old", "--role", "system",
                               "--channel", "web"]).exit_code != 0


def test_each_kind_of_integration_key_is_created_with_its_binding(app, database_url,
                                                                  monkeypatch):
    monkeypatch.setenv("OMS_DATABASE_URL", database_url)
    runner = app.test_cli_runner()
    # when a warehouse key for two locations and a carrier key for one carrier are created
    made = runner.invoke(cli, ["keys", "create", "wms-south", "--role", "warehouse",
                               "--location", "WH-SP", "--location", "WH-RJ"])
    assert made.exit_code == 0, made.output
    assert "locations WH-RJ, WH-SP" in made.output
    made = runner.invoke(cli, ["keys", "create", "correios", "--role", "carrier",
                               "--carrier", "CORREIOS"])
    assert made.exit_code == 0, made.output
    # then the list shows each key's kind and binding, and a channel does not fit them
    listed = runner.invoke(cli, ["keys", "list"]).output
    assert "warehouse" in listed and "WH-RJ,WH-SP" in listed and "CORREIOS" in listed
    refused = runner.invoke(cli, ["keys", "create", "mixed", "--role", "warehouse",
                                  "--location", "WH-SP", "--channel", "web"])
    assert refused.exit_code != 0 and "channel" in refused.output


# ----- defect: integration keys crossed channels (issue 10, defect 2) -----

@pytest.fixture
def web_order(client, admin, catalog):
    """A web order, released to the Sao Paulo warehouse, with its group."""
    order = client.post("/orders", json=order_body(channel="web"), headers=admin).json
    [group] = client.get(f"/orders/{order['id']}/fulfilment", headers=admin).json["items"]
    assert group["status"] == "released"
    return {"id": order["id"], "group": group}


@pytest.fixture
def marketplace(make_key):
    return make_key("channel", channel="marketplace")


def _wms(client, headers, group_id, type, event_id, **fields):
    return client.post("/wms/events", headers=headers,
                       json={"event_id": event_id, "type": type, "group_id": group_id, **fields})


def _timeline(client, admin, order_id):
    return [event["type"] for event in
            client.get(f"/orders/{order_id}/events", headers=admin).json["items"]]


def test_a_channel_key_cannot_confirm_warehouse_work_on_another_channels_order(
        client, admin, make_key, web_order, marketplace):
    group_id = web_order["group"]["id"]
    before = _timeline(client, admin, web_order["id"])
    # when the marketplace's key sends a picked, then a short pick, for the web order's group
    for type, event_id in (("picked", "mp-1"), ("short_picked", "mp-2")):
        refused = _wms(client, marketplace, group_id, type, event_id,
                       lines=[{"sku": "LAMP-1", "quantity": 2}])
        # then it is refused, and nothing happened to the order
        assert refused.status_code == 403, refused.json
    assert _timeline(client, admin, web_order["id"]) == before
    # and a warehouse key of another location does not find the group at all
    elsewhere = make_key("warehouse", scope=("WH-RJ",))
    missing = _wms(client, elsewhere, group_id, "picked", "rj-1")
    assert missing.status_code == 404 and missing.json["code"] == "not_found"
    assert _timeline(client, admin, web_order["id"]) == before
    # while the key of the warehouse it ships from confirms it
    here = make_key("warehouse", scope=("WH-SP",))
    assert _wms(client, here, group_id, "picked", "sp-1").json["outcome"] == "applied"


def test_a_channel_key_cannot_report_on_another_channels_parcel(
        client, admin, make_key, web_order, marketplace):
    # given the web order's lamps shipped: a parcel with a tracking number
    here = make_key("warehouse", scope=("WH-SP",))
    packed = _wms(client, here, web_order["group"]["id"], "packed", "sp-2",
                  package_ref="BOX-1", weight_kg=2.1, lines=[{"sku": "LAMP-1", "quantity": 2}])
    assert packed.status_code == 200, packed.json
    shipped = _wms(client, here, web_order["group"]["id"], "shipped", "sp-3",
                   package_ref="BOX-1")
    assert shipped.status_code == 200, shipped.json
    before = _timeline(client, admin, web_order["id"])
    [parcel] = client.get(f"/orders/{web_order['id']}/shipments", headers=admin).json["items"]
    event = {"event_id": "tr-1", "tracking_number": parcel["tracking_number"],
             "status": "exception", "detail": "address not found"}
    # when the marketplace's key, then another carrier's key, report an exception on it
    assert client.post("/carriers/events", json=event, headers=marketplace).status_code == 403
    other = make_key("carrier", scope=("NOT-" + parcel["carrier"],))
    missing = client.post("/carriers/events", json=event, headers=other)
    assert missing.status_code == 404
    # then the parcel is as it was
    [after] = client.get(f"/orders/{web_order['id']}/shipments", headers=admin).json["items"]
    assert after["status"] == "shipped"
    assert _timeline(client, admin, web_order["id"]) == before
    # while its own carrier's key is heard
    own = make_key("carrier", scope=(parcel["carrier"],))
    heard = client.post("/carriers/events", json=event, headers=own)
    assert heard.status_code == 200 and heard.json["outcome"] == "applied"


def test_a_pick_list_is_read_only_by_its_warehouse(client, make_key, web_order, marketplace):
    refused = client.get("/wms/work?location=WH-SP", headers=marketplace)
    assert refused.status_code == 403
    elsewhere = make_key("warehouse", scope=("WH-RJ",))
    assert client.get("/wms/work?location=WH-SP", headers=elsewhere).status_code == 404
    here = make_key("warehouse", scope=("WH-SP",))
    work = client.get("/wms/work?location=WH-SP", headers=here).json["items"]
    assert [group["id"] for group in work] == [web_order["group"]["id"]]


def test_another_channels_reservations_are_not_readable(client, admin, make_key, web_order,
                                                        marketplace):
    path = f"/inventory/ledger?order_id={web_order['id']}"
    assert client.get(path, headers=marketplace).status_code == 403
    elsewhere = make_key("warehouse", scope=("WH-RJ",))
    assert client.get(path, headers=elsewhere).json["items"] == []
    here = make_key("warehouse", scope=("WH-SP",))
    reserved = client.get(path, headers=here).json["items"]
    assert {move["kind"] for move in reserved} == {"reservation"}
    assert client.get(path, headers=admin).json["items"] == reserved


def test_only_ops_and_admin_change_a_customers_credit_limit(client, admin, make_key, catalog,
                                                            marketplace):
    # when the marketplace's key raises Ana's credit limit
    refused = client.patch("/customers/C-ANA", json={"credit_limit": "999999.00"},
                           headers=marketplace)
    # then it is refused and the limit is unchanged
    assert refused.status_code == 403
    assert "credit_limit" in refused.json["detail"]
    assert client.get("/customers/C-ANA", headers=admin).json["credit_limit"] == "5000.00"
    # and a bulk upsert by a channel cannot set it, nor reset it by leaving it out
    bulk = client.post("/customers/bulk", headers=marketplace, json={"rows": [
        {"id": "C-ANA", "name": "Ana Lima", "credit_limit": "999999.00"},
        {"id": "C-ANA2", "name": "Ana Lima Filho", "payment_terms": "net60"},
        {"id": "C-BEN", "name": "Ben S. Souza", "country": "BR"}]}).json
    assert [row["outcome"] for row in bulk["results"]] == ["error", "error", "updated"]
    assert bulk["results"][0]["errors"][0]["field"] == "rows/0/credit_limit"
    ana = client.get("/customers/C-ANA", headers=admin).json
    assert (ana["credit_limit"], ana["payment_terms"]) == ("5000.00", "net30")
    # while the channel may keep other fields current, and ops may change the limit
    renamed = client.patch("/customers/C-ANA", json={"name": "Ana L. Lima"},
                           headers=marketplace)
    assert renamed.status_code == 200
    ops = make_key("ops")
    raised = client.patch("/customers/C-ANA", json={"credit_limit": "7000.00"}, headers=ops)
    assert raised.status_code == 200 and raised.json["credit_limit"] == "7000.00"
    assert client.get("/customers/C-ANA", headers=admin).json["payment_terms"] == "net30"


def test_a_forbidden_route_is_named_as_documented(client, make_key):
    response = client.post("/holds/7/release", json={}, headers=make_key("analyst"))
    assert response.status_code == 403
    assert "POST /holds/{hold_id}/release" in response.json["detail"]
    assert "int(" not in response.json["detail"]


def test_existing_system_keys_become_the_kind_they_behaved_as(tmp_path):
    # given a database at 0008 with three system keys: a shop's, the warehouse's ("wms"),
    # and one bound to a location's code
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    upgrade(engine, "0008")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO locations (code, name, kind, active, city, region, postal_code, "
            "country, latitude, longitude, created_at, updated_at) VALUES ('WH-RJ', 'Rio', "
            "'warehouse', 1, 'Rio', 'RJ', '20000-000', 'BR', 0, 0, '2026-01-01', "
            "'2026-01-01')"))
        for number, (name, channel) in enumerate((("shop", "web"), ("wms", "wms"),
                                                  ("rio", "WH-RJ"))):
            connection.execute(text(
                "INSERT INTO api_keys (name, role, channel, key_hash, display_prefix, "
                "created_at) VALUES (:name, 'system', :channel, :hash, 'oms_x', "
                "'2026-01-01')"), {"name": name, "channel": channel, "hash": f"h{number}"})
    # when it is migrated
    upgrade(engine)
    # then the shop's key is a channel integration, the others warehouse integrations,
    # and every hash is kept
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT name, role, channel, scope, key_hash FROM api_keys ORDER BY id")).all()
    engine.dispose()
    assert [(name, role, channel, key_hash) for name, role, channel, _, key_hash in rows] == [
        ("shop", "channel", "web", "h0"), ("wms", "warehouse", None, "h1"),
        ("rio", "warehouse", None, "h2")]
    assert [row[3] for row in rows][1:] in (['["*"]', '["WH-RJ"]'], [["*"], ["WH-RJ"]])
