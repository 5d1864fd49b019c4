"""The demo command: migrate, install the shipped rules, load Olist data, decide its orders."""

from __future__ import annotations

import re

from click.testing import CliRunner
from sqlalchemy import func, select

from adapters.bootstrap import build_services
from adapters.settings import Settings
from api import create_app
from api.cli import main as cli
from engine.record import Hold, Order, OrderDecision, PostalArea, StockLevel
from engine.status import OrderStatus
from tests.conftest import Console


def test_the_demo_loads_olist_data_and_the_shipped_rules_decide_its_orders(tmp_path,
                                                                            monkeypatch):
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    monkeypatch.setenv("OMS_DATABASE_URL", url)
    monkeypatch.setattr("api.cli.DEMO_KEY_FILE", tmp_path / "demo-api-key")
    monkeypatch.setattr("api.cli.DEMO_USERS_FILE", tmp_path / "demo-users")
    result = CliRunner().invoke(cli, ["demo", "--orders", "20", "--no-serve"])
    assert result.exit_code == 0, result.output
    assert "20 orders replayed from the Olist sample" in result.output
    assert "demo API key: oms_" in result.output
    services = build_services(Settings(database_url=url))
    with services.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Order)) == 20
        # each stage's shipped rules decided (one version each), and sourcing found the
        # seeded stock for most orders at the cities that sold them
        versions = dict(uow.session.execute(
            select(OrderDecision.stage, func.count(func.distinct(
                OrderDecision.rule_set_version_id))).group_by(OrderDecision.stage)).all())
        assert versions == {"validation": 1, "sourcing": 1, "carrier": 1}
        statuses = dict(uow.session.execute(
            select(Order.status, func.count()).group_by(Order.status)).all())
        # allocated, then released to the embedded warehouses at once
        # allocated, then released to the embedded warehouses at once; two thirds of the
        # packages shipped and most of those delivered; five held by hand for review
        assert sum(statuses.get(status, 0) for status in (
            OrderStatus.RELEASED, OrderStatus.SHIPPED, OrderStatus.PARTIALLY_SHIPPED,
            OrderStatus.COMPLETED, OrderStatus.ON_HOLD)) >= 15, statuses
        assert statuses.get(OrderStatus.COMPLETED, 0) >= 5, statuses
        assert uow.session.scalar(select(func.count()).select_from(Hold).where(
            Hold.resolved_at.is_(None))) >= 5
        levels = uow.session.scalar(select(func.count()).select_from(StockLevel))
        assert levels > 5000
        assert uow.session.scalar(select(func.count()).select_from(PostalArea)) > 19000
    services.close()

    # the printed accounts sign in, and each finds its work: held orders in the inbox, the
    # demo's KPIs on the dashboard, users and keys on the admin page
    accounts = dict(re.findall(r"console user (\w+): (\S+)", result.output))
    assert set(accounts) == {"analyst", "ops", "admin"}
    app = create_app({"DATABASE_URL": url, "TESTING": True})
    try:
        inbox = Console(app, "ops", accounts["ops"]).get("/console/inbox")
        assert inbox.status_code == 200 and "manual" in inbox.get_data(as_text=True)
        board = Console(app, "analyst", accounts["analyst"]).get("/console/dashboard")
        text = board.get_data(as_text=True)
        assert board.status_code == 200
        assert re.search(r"Orders captured</[^>]+>\s*<[^>]+>20<", text), text[:2000]
        assert "CORREIOS" in text or "JADLOG" in text  # the carrier scorecard has packages
        admin_page = Console(app, "admin", accounts["admin"]).get("/console/admin")
        assert admin_page.status_code == 200 and "demo-admin" in admin_page.get_data(as_text=True)
    finally:
        app.extensions["oms"].close()


def test_a_replay_posts_orders_over_http_and_can_run_again(live_server, client, admin,
                                                           catalog):
    from adapters.replay import post_orders
    from tests.conftest import order_body

    bodies = [order_body(channel_order_ref=f"REPLAY-{n}") for n in range(3)]
    key = admin["Authorization"].removeprefix("Bearer ")
    first = post_orders(live_server.url, key, bodies)
    assert first.statuses == {201: 3}
    assert first.order_statuses == {"allocated": 3}
    # the same replay again: each request replays its first answer, nothing is added
    again = post_orders(live_server.url, key, bodies)
    assert again.statuses == {201: 3}
    assert len(client.get("/orders", headers=admin).json["items"]) == 3
