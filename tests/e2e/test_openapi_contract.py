"""The API keeps the promises of its own OpenAPI document, for every operation and caller.

Schemathesis generates requests from `/openapi.json` (valid ones and broken ones) and sends
them through the WSGI app on PostgreSQL, where a number too large for a column shows. Any
5xx, any status code or content type the spec does not list for that operation, and any
body that does not match the documented schema fails the test.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api import create_app
from engine import access
from tests.conftest import ADMIN_KEY, load_catalog, order_body

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
# Every kind of caller, one line each: role, channel the key is bound to, and how many
# requests per operation and mode (an admin reaches every view; the others are mostly
# refused early, so a few requests show what they are answered).
CALLERS: dict[str, tuple[str, str | None, tuple[str, ...], int]] = {
    "admin": ("admin", None, (), 8),
    "analyst": ("analyst", None, (), 2),
    "ops": ("ops", None, (), 2),
    "channel-integration": ("channel", "web", (), 2),
    "warehouse-integration": ("warehouse", None, ("WH-SP",), 2),
    "carrier-integration": ("carrier", None, ("*",), 2),
}


@pytest.fixture(scope="module")
def contract_app(postgres_database: str) -> Iterator[Flask]:
    """One app on this session's PostgreSQL database, with a catalog and one order."""
    app = create_app({"DATABASE_URL": postgres_database, "ADMIN_API_KEY": ADMIN_KEY,
                      "TESTING": True})
    client = app.test_client()
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    load_catalog(client, admin, app.extensions["oms"])
    created = client.post("/orders", json=order_body(), headers=admin)
    assert created.status_code == 201, created.json
    yield app
    app.extensions["oms"].close()


def _key_headers(app: Flask, role: str, channel: str | None,
                 scope: tuple[str, ...]) -> dict[str, str]:
    with app.extensions["oms"].uow() as uow:
        _, plaintext = access.create_api_key(uow, f"contract-{role}-{uuid.uuid4().hex[:6]}",
                                             role, channel, scope)
        uow.commit()
    return {"Authorization": f"Bearer {plaintext}"}


def _broken_promises(app: Flask, headers: dict[str, str], examples: int) -> list[str]:
    """Run every operation of the app's spec with these headers; return what broke."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    found: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _operation_test(app, operation, mode, headers, examples)()
            except hypothesis.errors.Unsatisfiable:
                continue  # nothing of this operation can be broken (no parameters, no body)
            except (Exception, BaseExceptionGroup) as error:  # collect every broken promise
                found.append(f"{operation.method.upper()} {operation.path} ({mode}): {error}")
    return found


def _operation_test(app: Flask, operation: Any, mode: GenerationMode,
                    headers: dict[str, str], examples: int) -> Callable[[], None]:
    @hypothesis.settings(max_examples=examples, derandomize=True, deadline=None,
                         database=None, suppress_health_check=list(HealthCheck),
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(app=app, headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)

    return run


@pytest.mark.parametrize("caller", list(CALLERS))
def test_every_operation_keeps_its_contract_for_every_caller(contract_app, caller):
    # given a key of this kind
    role, channel, scope, examples = CALLERS[caller]
    headers = _key_headers(contract_app, role, channel, scope)
    # when schemathesis sends valid and broken requests to every operation of the spec
    failures = _broken_promises(contract_app, headers, examples)
    # then no answer is a 5xx or breaks the spec
    assert failures == [], "\n\n".join(failures)


def test_options_advertises_only_the_methods_the_spec_documents_for_that_path(client, admin):
    # given the app's own description
    spec = client.get("/openapi.json").json
    for path, item in spec["paths"].items():
        # when OPTIONS is asked of each path (`/customers/bulk`, `/carriers/events`...)
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        allowed = client.open(concrete, method="OPTIONS", headers=admin).headers["Allow"]
        # then it names exactly that path's methods, not a sibling `/{code}`'s
        assert set(allowed.split(", ")) - {"HEAD", "OPTIONS"} == {
            method.upper() for method in item if method != "parameters"}, path


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/rules/sourcing/diff?from=1&to=2147483648", None),
    ("POST", "/rules/sourcing/dry-run", {"version": 2147483648, "order_id": 1}),
    ("POST", "/rules/sourcing/simulate", {"version": 2147483648}),
    ("POST", "/rules/sourcing/simulations", {"version": 9223372036854775808}),
])
def test_a_rule_version_beyond_what_is_stored_is_a_422_not_a_500(client, admin, method, path,
                                                                  body):
    response = client.open(path, method=method, json=body, headers=admin)
    assert response.status_code == 422, response.json
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json["errors"][0]["field"] in ("to", "version")


def test_cross_field_rules_are_in_the_spec_and_every_offending_field_is_named(client, admin):
    spec = client.get("/openapi.json").json["components"]["schemas"]
    assert spec["Simulation"]["oneOf"] == [{"required": ["version"]}, {"required": ["document"]}]
    assert "exactly one of `version` and `document`" in spec["Simulation"]["description"]
    assert {"not": {"required": ["version", "document"]}} in spec["DryRun"]["allOf"]
    response = client.post("/rules/sourcing/dry-run", headers=admin,
                           json={"version": 1, "document": {}})
    assert response.status_code == 422
    assert {e["field"] for e in response.json["errors"]} == {"document", "order_id"}


def test_fields_that_can_be_empty_are_declared_nullable(client):
    spec = client.get("/openapi.json").json["components"]["schemas"]
    for schema, names in {"Movement": ("reference", "order_id", "reason"),
                          "Version": ("approved_at", "approved_by"),
                          "Applied": ("shipment_id", "order_id")}.items():
        for name in names:
            assert spec[schema]["properties"][name].get("nullable") is True, (schema, name)
