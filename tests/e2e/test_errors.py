"""Bad input gets a clear problem+json error with a stable code, never a 500."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from api import create_app
from engine.record import Order
from tests.conftest import ADMIN_KEY, POSTGRES_ADMIN_URL, order_body

PROBLEM = "application/problem+json"


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == PROBLEM
    body = response.json
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:oms:problem:{code}"
    assert body["title"] and body["detail"]
    return body


def test_malformed_json_is_a_400(client, admin, catalog):
    response = client.post("/orders", data='{"customer_id": "C-ANA",',
                           content_type="application/json", headers=admin)
    assert_problem(response, 400, "malformed_json")


def test_every_invalid_field_comes_back_in_one_422(client, admin, catalog):
    body = order_body(currency="reais", service_level="teleport", extra_field=1)
    body["lines"][0]["quantity"] = -3
    body["shipping_address"]["country"] = "br"
    problem = assert_problem(client.post("/orders", json=body, headers=admin), 422,
                             "validation_failed")
    assert {(e["field"], e["in"]) for e in problem["errors"]} == {
        ("currency", "body"), ("service_level", "body"), ("extra_field", "body"),
        ("lines/0/quantity", "body"), ("shipping_address/country", "body")}


def test_a_json_array_instead_of_an_object_is_a_422(client, admin):
    problem = assert_problem(client.post("/orders", json=[1, 2], headers=admin), 422,
                             "validation_failed")
    assert problem["errors"][0]["message"]


def test_an_unknown_order_is_a_404(client, admin):
    assert_problem(client.get("/orders/98765", headers=admin), 404, "not_found")


def test_an_unknown_path_is_a_404(client, admin):
    assert_problem(client.get("/nowhere", headers=admin), 404, "not_found")


def test_a_wrong_method_is_a_405_that_says_which_are_allowed(client, admin):
    response = client.delete("/orders", headers=admin)
    assert_problem(response, 405, "method_not_allowed")
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_a_body_over_the_limit_is_a_413_and_nothing_is_written(make_app, admin, catalog,
                                                               services):
    app = make_app(MAX_CONTENT_LENGTH=4096)
    client = app.test_client()
    body = order_body(lines=[{"sku": "LAMP-1", "quantity": 1, "unit_price": "1.00"}] * 100)
    assert_problem(client.post("/orders", json=body, headers=admin), 413, "payload_too_large")
    # the same order, small enough, is accepted: the size alone was refused
    assert client.post("/orders", json={**body, "lines": body["lines"][:10]},
                       headers=admin).status_code == 201
    with services.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Order)) == 1


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          None])
def test_a_body_that_is_not_json_is_a_415(client, admin, content_type):
    headers = dict(admin)
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/orders", data="customer_id=C-ANA", headers=headers)
    assert_problem(response, 415, "unsupported_media_type")


def test_bad_query_parameters_are_a_422_naming_each_one(client, admin):
    problem = assert_problem(
        client.get("/orders?limit=0&status=lost&created_from=yesterday&colour=red",
                   headers=admin), 422, "validation_failed")
    assert {(e["field"], e["in"]) for e in problem["errors"]} == {
        ("limit", "query"), ("status", "query"), ("created_from", "query"),
        ("colour", "query")}


def test_a_page_size_over_the_cap_is_refused(client, admin):
    problem = assert_problem(client.get("/orders?limit=201", headers=admin), 422,
                             "validation_failed")
    assert "200" in problem["errors"][0]["message"]


def test_a_database_that_cannot_be_reached_is_a_503_to_retry_not_a_500(postgres_database,
                                                                       admin):
    # given a service running on PostgreSQL
    app = create_app({"DATABASE_URL": postgres_database, "ADMIN_API_KEY": ADMIN_KEY})
    client = app.test_client()
    name = make_url(postgres_database).database
    superuser = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        assert client.get("/orders", headers=admin).status_code == 200
        # when the database stops taking connections and drops the open ones
        with superuser.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = :name"), {"name": name})
        response = client.post("/orders", json=order_body(),
                               headers={**admin, "Idempotency-Key": "during-outage"})
        # then callers are told to retry, not that the service broke
        assert_problem(response, 503, "database_unavailable")
        assert response.headers["Retry-After"] == "2"
        assert client.get("/readyz").status_code == 503
    finally:
        with superuser.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        superuser.dispose()
    # and once it is back, the service serves again without a restart
    assert client.get("/readyz").status_code == 200
    assert client.get("/orders", headers=admin).status_code == 200
    app.extensions["oms"].close()
