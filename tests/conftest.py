"""Shared fixtures: real databases (SQLite and PostgreSQL) and a real Redis.

Every test that touches a database runs once per backend in OMS_TEST_BACKENDS
(default: both). Each test session creates its own PostgreSQL database and drops it at the
end; a service that cannot be reached fails the run: it never skips.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import create_engine, text

from adapters.bootstrap import Services
from adapters.migrations import upgrade
from adapters.sql import make_engine
from api import create_app
from engine import access, people
from engine.actors import system_actor
from engine.inventory import stock as inventory
from engine.record import Base, StockLevel

POSTGRES_ADMIN_URL = os.environ.get(
    "OMS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("OMS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BACKENDS = [name.strip() for name in
            os.environ.get("OMS_TEST_BACKENDS", "sqlite,postgresql").split(",") if name.strip()]
ADMIN_KEY = "oms_test_admin_key_0123456789"

# reference_versions keeps its rows (the migration's): its versions only ever grow
_TABLES = [table.name for table in reversed(Base.metadata.sorted_tables)
           if table.name != "reference_versions"]


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """Create this session's PostgreSQL database, migrated, and drop it afterwards."""
    name = f"oms_test_{_worker()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # the suite needs PostgreSQL: say so, never skip
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({error}); start it "
                    "or set OMS_TEST_BACKENDS=sqlite to run without it", pytrace=False)
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate one SQLite file; each test gets a copy of it."""
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database of each backend."""
    if request.param == "sqlite":
        path = tmp_path / "oms.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def redis_url() -> str:
    """A reachable Redis; the run fails if there is none."""
    client = Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except Exception as error:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({error})", pytrace=False)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def make_app(database_url: str) -> Iterator[Callable[..., Flask]]:
    """Build apps on the test database; they are closed after the test."""
    built: list[Flask] = []

    def make(**config: Any) -> Flask:
        # WAVE_SECONDS=0: what an order's commit makes ready is released at once, as the
        # tests of the round trip expect; tests of waves give a window of their own
        app = create_app({"DATABASE_URL": database_url, "ADMIN_API_KEY": ADMIN_KEY,
                          "TESTING": True, "WAVE_SECONDS": 0, **config})
        built.append(app)
        return app

    yield make
    for app in built:
        app.extensions["oms"].close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def services(app: Flask) -> Services:
    built: Services = app.extensions["oms"]
    return built


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_key(services: Services) -> Callable[..., dict[str, str]]:
    """Create an API key with a role (and its channel, or its locations or carriers in
    `scope`); return the headers that present it."""

    def make(role: str, channel: str | None = None, name: str | None = None,
             scope: tuple[str, ...] = ()) -> dict[str, str]:
        with services.uow() as uow:
            _, plaintext = access.create_api_key(uow, name or f"{role}-{uuid.uuid4().hex[:6]}",
                                                 role, channel, scope)
            uow.commit()
        return {"Authorization": f"Bearer {plaintext}"}

    return make


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def catalog(client: FlaskClient, admin: dict[str, str], services: Services) -> dict[str, Any]:
    """Two customers, three products and a Sao Paulo warehouse with 100 of each."""
    return load_catalog(client, admin, services)


def load_catalog(client: FlaskClient, admin: dict[str, str],
                 services: Services) -> dict[str, Any]:
    """Load the catalog fixture's data through the API (for apps a test configures)."""
    customers = [
        {"id": "C-ANA", "name": "Ana Lima", "tier": "gold", "credit_limit": "5000.00",
         "payment_terms": "net30", "country": "BR", "postal_code": "01310"},
        {"id": "C-BEN", "name": "Ben Souza", "country": "BR"},
    ]
    products = [
        {"sku": "LAMP-1", "name": "Desk lamp", "weight_g": 900, "length_cm": 30,
         "width_cm": 20, "height_cm": 45, "value": "89.90", "currency": "BRL"},
        {"sku": "MUG-2", "name": "Mug", "weight_g": 350, "length_cm": 12, "width_cm": 9,
         "height_cm": 10, "value": "24.50", "currency": "BRL"},
        {"sku": "BATT-3", "name": "Lithium battery", "weight_g": 120, "length_cm": 6,
         "width_cm": 4, "height_cm": 2, "value": "59.00", "currency": "BRL", "hazmat": True},
    ]
    locations = [
        {"code": "WH-SP", "name": "Sao Paulo warehouse", "kind": "warehouse", "city": "Sao Paulo",
         "region": "SP", "postal_code": "01001-000", "country": "BR",
         "latitude": -23.550381, "longitude": -46.634027},
    ]
    for path, rows in (("/customers/bulk", customers), ("/products/bulk", products),
                       ("/locations/bulk", locations)):
        response = client.post(path, json={"rows": rows}, headers=admin)
        assert response.status_code == 200, response.json
        assert response.json["failed"] == 0
    stock(services, {(product["sku"], "WH-SP"): 100 for product in products})
    return {"customers": customers, "products": products, "locations": locations}


def stock(services: Services, counts: dict[tuple[str, str], int]) -> None:
    """Set on-hand counts of (sku, location) pairs, as a WMS count would."""
    with services.uow() as uow:
        outcomes = inventory.apply_changes(uow, system_actor("test-wms"), [
            inventory.StockChange("count", sku, code, units)
            for (sku, code), units in counts.items()])
        assert [outcome.error for outcome in outcomes if outcome.error] == []
        uow.commit()


def order_body(**overrides: Any) -> dict[str, Any]:
    """Return a valid POST /orders body for the catalog fixture."""
    body: dict[str, Any] = {
        "channel": "web",
        "channel_order_ref": f"WEB-{uuid.uuid4().hex[:10]}",
        "customer_id": "C-ANA",
        "currency": "BRL",
        "service_level": "express",
        "shipping_address": {"name": "Ana Lima", "line1": "Av. Paulista 1000",
                             "city": "Sao Paulo", "region": "SP", "postal_code": "01310-100",
                             "country": "BR"},
        "lines": [{"sku": "LAMP-1", "quantity": 2, "unit_price": "89.90"},
                  {"sku": "MUG-2", "quantity": 1, "unit_price": "24.50"}],
        "shipping_amount": "15.00",
    }
    body.update(overrides)
    return body


class LiveServer:
    """The app served over real HTTP on 127.0.0.1, by werkzeug's threaded server."""

    def __init__(self, app: Flask) -> None:
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """Send one request on a new connection; return status, headers and body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.server.server_port,
                                                timeout=30)
        payload = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            connection.request(method, path, body=payload, headers=all_headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    server = LiveServer(app)
    server.thread.start()
    yield server
    server.server.shutdown()
    server.thread.join(timeout=10)


def pytest_configure(config: pytest.Config) -> None:
    """In CI the suite runs on every backend: leaving one out there is an error, not a skip."""
    if os.environ.get("CI") and set(BACKENDS) != {"sqlite", "postgresql"}:
        raise pytest.UsageError(f"CI runs on sqlite and postgresql, not {BACKENDS}: unset "
                                "OMS_TEST_BACKENDS")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out PostgreSQL-only tests only when the developer asked for no PostgreSQL."""
    if "postgresql" in BACKENDS:
        return
    kept = [item for item in items
            if "postgres_database" not in getattr(item, "fixturenames", ())]
    left_out = [item for item in items if item not in kept]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


def wms_event(client: FlaskClient, headers: dict[str, str], group_id: int, type: str,
                   event_id: str, **fields: Any) -> Any:
    """Send one warehouse event about a fulfilment group, as the warehouse would."""
    return client.post("/wms/events", headers=headers,
                       json={"event_id": event_id, "type": type, "group_id": group_id, **fields})


class Console:
    """A person signed in to the console over Flask's test client: `get`/`post` as them,
    `post` sending the session's CSRF token unless told `csrf=False`."""

    def __init__(self, app: Flask, username: str, password: str) -> None:
        self.client = app.test_client()
        self.username = username
        signin = self.client.get("/console/sign-in")
        self.csrf = CSRF_FIELD.search(signin.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
        answer = self.client.post("/console/sign-in", data={
            "username": username, "password": password, "csrf_token": self.csrf})
        assert answer.status_code == 303, answer.get_data(as_text=True)
        home = self.client.get("/console/").get_data(as_text=True)  # a new session's token
        self.csrf = CSRF_FIELD.search(home).group(1)  # type: ignore[union-attr]

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict[str, Any] | None = None, csrf: bool = True,
             **kwargs: Any) -> Any:
        form = {**(data or {}), **({"csrf_token": self.csrf} if csrf else {})}
        return self.client.post(path, data=form, **kwargs)


CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery staple"


@pytest.fixture
def console(app: Flask, services: Services) -> Callable[..., Console]:
    """Sign a new person with these roles in to the console (`console("ops")`)."""

    def sign_in(*roles: str, username: str | None = None) -> Console:
        name = username or f"{'-'.join(roles)}-{uuid.uuid4().hex[:6]}"
        with services.uow() as uow:
            people.create_user(uow, system_actor("test"), name, roles, password=PASSWORD)
            uow.commit()
        return Console(app, name, PASSWORD)

    return sign_in


def stock_level(services: Services, sku: str, location: str = "WH-SP") -> tuple[int, int]:
    """Return (on hand, reserved) of a SKU at a location, read from the record."""
    with services.uow() as uow:
        found = uow.session.get(StockLevel, (sku, location))
        return found.on_hand, found.reserved
