"""API keys and roles: deny by default, integration keys see their own channel only."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from flask import current_app

from api import BOOTSTRAP_ADMIN_KEY_NAME, create_app
from api.access import PUBLIC, ROLES_ATTRIBUTE
from api.cli import main as cli
from engine.access import list_api_keys
from engine.models import ApiKey
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
    assert public == ["/", "/docs", "/docs/static/<path:filename>", "/healthz", "/openapi.json",
                      "/readyz"]


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
    web = make_key("system", channel="web")
    erp = make_key("system", channel="erp")
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
    web = make_key("system", channel="web")
    response = client.post("/orders", json=order_body(channel="erp"), headers=web)
    assert response.status_code == 403
    assert "web" in response.json["detail"]
    body = order_body()
    del body["channel"]
    assert client.post("/orders", json=body, headers=web).json["channel"] == "web"


def test_keys_are_created_once_shown_and_stored_only_as_a_hash(app, database_url, monkeypatch):
    monkeypatch.setenv("OMS_DATABASE_URL", database_url)
    runner = app.test_cli_runner()
    result = runner.invoke(cli, ["keys", "create", "shop", "--role", "system",
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


def test_an_integration_key_must_name_its_channel(app, database_url, monkeypatch):
    monkeypatch.setenv("OMS_DATABASE_URL", database_url)
    result = app.test_cli_runner().invoke(cli, ["keys", "create", "erp", "--role", "system"])
    assert result.exit_code != 0
    assert "channel" in result.output
