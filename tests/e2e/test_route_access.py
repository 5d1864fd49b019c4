"""The declared table route x role x scope, walked: every route of the app, every method,
called anonymously, by each person's role, and by each kind of integration key in scope and
out of scope. Any answer that disagrees with the route's declaration fails, and so does a
route that declares nothing.

What the declaration means (api/access.py):
- anonymous: 401; a role the route does not admit: 403;
- in scope: neither 401, 403 nor 404 (a refused body, a conflict, are fine);
- out of scope: 404 for a route scoped by an object (an order, hold, simulation, group,
  parcel or location); in a bulk call, the row fails with not_found; a list holds nothing
  of what is out of scope; a global route answers as in scope.

The world every call is made against belongs to channel `web`, location WH-SP and the
parcel's carrier; the keys out of scope are `marketplace`, WH-RJ and a carrier NOT-OURS.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest

from api.access import PAGE, PUBLIC, ROLES_ATTRIBUTE, SCOPE_ATTRIBUTE, SCOPES, allow
from api.console.auth import roles_of
from engine.actors import INTEGRATION_KINDS, PEOPLE_ROLES
from tests.conftest import order_body

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# A body no command accepts: an in-scope call is refused (422) without taking effect.
REFUSED_BODY = {"not_a_field_of_any_command": 1}
BODY_SCOPES = ("group", "parcel", "location", "order_in_body")
_event_ids = itertools.count(1)


@pytest.fixture
def world(client, admin, make_key, catalog, services):
    """One web order shipped from WH-SP (a group, a parcel), one held, a simulation, a
    webhook subscription with a delivery, a postal area, and an order import."""
    subscription = client.post("/webhooks/subscriptions", headers=admin, json={
        "url": "https://example.com/hooks", "event_types": ["order.created"]}).json
    assert client.post("/postal-areas/bulk", headers=admin, json={"rows": [
        {"country": "BR", "prefix": "01310", "latitude": -23.56, "longitude": -46.65}]}
    ).status_code == 200
    order = client.post("/orders", json=order_body(channel="web"), headers=admin).json
    [group] = client.get(f"/orders/{order['id']}/fulfilment", headers=admin).json["items"]
    for event in ({"type": "packed", "package_ref": "BOX-1", "weight_kg": 2.1,
                   "lines": [{"sku": "LAMP-1", "quantity": 2}]},
                  {"type": "shipped", "package_ref": "BOX-1"}):
        sent = client.post("/wms/events", headers=admin, json={
            "event_id": f"world-{event['type']}", "group_id": group["id"], **event})
        assert sent.status_code == 200, sent.json
    [parcel] = client.get(f"/orders/{order['id']}/shipments", headers=admin).json["items"]
    held = client.post("/orders", headers=admin, json=order_body(
        channel="web", customer_id="C-BEN",
        lines=[{"sku": "LAMP-1", "quantity": 30, "unit_price": "89.90"}])).json
    assert held["status"] == "on_hold"
    [hold] = client.get("/holds", headers=admin).json["items"]
    web = make_key("channel", channel="web")
    simulation = client.post("/rules/validation/simulations", headers=web,
                             json={"version": 1, "last": 10}).json
    [delivery] = client.get(f"/webhooks/subscriptions/{subscription['id']}/deliveries",
                            headers=admin).json["items"][:1]
    imported = client.post("/orders/imports", headers={**web, "Content-Type": "text/csv"},
                           data="channel_order_ref,customer_id,currency,ship_to_name,"
                                "ship_to_line1,ship_to_city,ship_to_country,sku,quantity,"
                                "unit_price\nWALK-1,C-ANA,BRL,Ana,Rua 1,Sao Paulo,BR,MUG-2,1,"
                                "24.50\n").json
    carrier = parcel["carrier"]
    return {
        "order": order["id"], "group": group["id"], "tracking": parcel["tracking_number"],
        "carrier": carrier, "hold": hold["id"], "simulation": simulation["id"],
        "subscription": subscription["id"], "delivery": delivery["id"],
        "import": imported["id"],
        "callers": {
            "analyst": make_key("analyst"), "ops": make_key("ops"), "admin": admin,
            ("channel", True): web,
            ("channel", False): make_key("channel", channel="marketplace"),
            ("warehouse", True): make_key("warehouse", scope=("WH-SP",)),
            ("warehouse", False): make_key("warehouse", scope=("WH-RJ",)),
            ("carrier", True): make_key("carrier", scope=(carrier,)),
            ("carrier", False): make_key("carrier", scope=("NOT-OURS",)),
        },
    }


def _path(rule: Any, world: dict[str, Any]) -> str:
    values = {"order_id": world["order"], "hold_id": world["hold"],
              "simulation_id": world["simulation"], "stage": "validation", "version": 1,
              "subscription_id": world["subscription"], "delivery_id": world["delivery"],
              "id": "C-ANA", "sku": "LAMP-1", "filename": "no-such-file.css",
              "code": world["carrier"] if rule.rule.startswith("/carriers") else "WH-SP",
              "username": "nobody-such", "name": "no-such-key", "import_id": world["import"]}
    return re.sub(r"<(?:[^<>:]+:)?(\w+)>", lambda found: str(values[found.group(1)]),
                  rule.rule)


QUERIES = {
    "/wms/work": "location=WH-SP", "/inventory/supply": "sku=LAMP-1",
    "/availability": "sku=LAMP-1", "/postal-areas/lookup": "postal_code=01310",
    "/rules/<string:stage>/diff": "from=1&to=1",
}


def _body(rule: str, method: str, scope: str, world: dict[str, Any]) -> Any:
    """A body that reaches the scope check: valid where the scope is named in the body."""
    event_id = f"walk-{next(_event_ids)}"
    stock = {"sku": "MUG-2", "location": "WH-SP"}
    bodies = {
        "/wms/events": {"event_id": event_id, "type": "picked", "group_id": world["group"]},
        "/carriers/events": {"event_id": event_id, "tracking_number": world["tracking"],
                             "status": "in_transit"},
        "/inventory/counts": {**stock, "on_hand": 100},
        "/inventory/adjustments": {**stock, "quantity": 1, "reason": "found"},
        "/inventory/receipts": {**stock, "quantity": 1},
        "/inventory/supply": {**stock, "reference": "PO-1", "quantity": 5,
                              "expected_on": "2030-01-01"},
        "/rules/<string:stage>/dry-run": {"version": 1, "order_id": world["order"]},
        "/rules/<string:stage>/simulate": {"version": 1, "last": 10},
        "/rules/<string:stage>/simulations": {"version": 1, "last": 10},
    }
    if rule.endswith("/bulk") and rule.removesuffix("/bulk") in bodies:
        items = "events" if rule.endswith("/events/bulk") else "rows"
        return {items: [bodies[rule.removesuffix("/bulk")]]}
    if rule in bodies and method == "POST":
        return bodies[rule]
    assert method == "GET" or scope not in BODY_SCOPES, (
        f"{rule}: give the walk a body naming its {scope}")
    return REFUSED_BODY


def _call(client: Any, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    if method in ("GET", "DELETE"):
        return client.open(path, method=method, headers=headers)
    return client.open(path, method=method, json=body, headers=headers)


def _mismatch(response: Any, expected: str, role: str, world: dict[str, Any]) -> str | None:
    status = response.status_code
    if expected in ("401", "403", "404"):
        return None if str(status) == expected else f"expected {expected}, got {status}"
    if status in (401, 403, 404):
        return f"expected an answer in scope, got {status}: {response.get_data(as_text=True)}"
    if expected != "filtered":
        return None
    answer = response.json
    if isinstance(answer, dict) and isinstance(answer.get("results"), list):  # bulk
        codes = [row.get("code") or (row.get("problem") or {}).get("code")
                 for row in answer["results"]]
        return None if codes == ["not_found"] else f"bulk rows out of scope: {codes}"
    items = answer.get("items", []) if isinstance(answer, dict) else []
    # stock levels belong to locations, not channels: only a warehouse is held to its own
    leaked = [item for item in items
              if item.get("order_id") == world["order"]
              or (role == "warehouse" and item.get("location") == "WH-SP")
              or (item.get("id") == world["order"] and "channel" in item)]
    if leaked or (isinstance(answer, dict) and answer.get("orders") not in (None, 0)):
        return f"a list shows what is out of scope: {json.dumps(answer)[:300]}"
    return None


def _expected(roles: frozenset[str], scope: str, role: str, in_scope: bool,
              bulk: bool) -> str:
    if role not in roles:
        return "403"
    if in_scope or scope == "global":
        return "ok"
    if scope == "list" or (bulk and scope in ("location", "group", "parcel")):
        return "filtered"
    return "404"


def _walk_page(method: str, rule: Any, path: str, admitted: frozenset[str],
               client: Any, people: dict[str, Any], key: dict[str, str]) -> list[str]:
    """A console page: a session opens it, never an API key; each person's role is admitted
    or refused as the page declares; a change without the CSRF token is refused."""
    found = []
    for who, answer in (("anonymous", client.open(path, method=method)),
                        ("an API key", client.open(path, method=method, headers=key))):
        if answer.status_code not in (302, 401) or "/console/sign-in" not in (
                answer.headers.get("Location") or answer.headers.get("HX-Redirect") or ""):
            found.append(f"{method} {rule.rule} {who}: {answer.status_code}, not sent to "
                         "sign in")
    for role, person in people.items():
        answer = (person.get(path) if method == "GET" else
                  person.client.open(path, method=method, data={"csrf_token": person.csrf}))
        status = answer.status_code
        if role not in admitted and status != 403:
            found.append(f"{method} {rule.rule} as {role}: expected 403, got {status}")
        elif role in admitted and (status in (401, 403) or status >= 500 or (
                status == 400 and "security token" in answer.get_data(as_text=True))):
            found.append(f"{method} {rule.rule} as {role}: expected the page, got {status}")
        if role in admitted and method != "GET":
            unsigned = person.client.open(path, method=method, data={})
            if unsigned.status_code != 400:
                found.append(f"{method} {rule.rule} as {role} without a CSRF token: "
                             f"{unsigned.status_code}")
    return found


@pytest.mark.parametrize("method", METHODS)
def test_every_route_answers_each_role_and_scope_as_declared(app, client, world, console,
                                                              method):
    people = {role: console(role) for role in PEOPLE_ROLES}
    public = app.extensions.get("oms_public_endpoints", set())
    mismatches: list[str] = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if method not in (rule.methods or ()):
            continue
        view = app.view_functions[rule.endpoint]
        roles = getattr(view, ROLES_ATTRIBUTE, None)
        path = _path(rule, world)
        if roles == PAGE:
            mismatches += _walk_page(method, rule, path, roles_of(view) or frozenset(),
                                     client, people, world["callers"]["ops"])
            continue
        if rule.endpoint in public or roles == PUBLIC:
            answer = client.open(path, method=method)
            if answer.status_code in (401, 403):
                mismatches.append(f"{method} {rule.rule} public: {answer.status_code}")
            continue
        scope = getattr(view, SCOPE_ATTRIBUTE, None)
        if roles is None or scope not in SCOPES:
            mismatches.append(f"{method} {rule.rule}: declares no roles and scope")
            continue
        query = QUERIES.get(rule.rule) if method == "GET" else None  # commands take no query
        if query:
            path += "?" + query
        if rule.rule == "/inventory/ledger":
            path += f"?order_id={world['order']}"
        anonymous = _call(client, method, path, _body(rule.rule, method, scope, world), {})
        if anonymous.status_code != 401:
            mismatches.append(f"{method} {rule.rule} anonymous: {anonymous.status_code}")
        callers = [(role, True) for role in PEOPLE_ROLES] + [
            (kind, in_scope) for kind in INTEGRATION_KINDS for in_scope in (True, False)]
        for role, in_scope in callers:
            headers = world["callers"][role if role in PEOPLE_ROLES else (role, in_scope)]
            body = _body(rule.rule, method, scope, world)
            response = _call(client, method, path, body, headers)
            expected = _expected(roles, scope, role, in_scope, rule.rule.endswith("/bulk"))
            problem = _mismatch(response, expected, role, world)
            if problem is not None:
                where = "in scope" if in_scope else "out of scope"
                mismatches.append(f"{method} {rule.rule} as {role} {where}: {problem}")
    assert mismatches == []


def test_a_route_declares_its_scope_or_cannot_be_declared_at_all():
    with pytest.raises(TypeError):
        allow("ops")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="unknown scope"):
        allow("ops", scope="everything")
    with pytest.raises(ValueError, match="unknown roles"):
        allow("system", scope="global")
