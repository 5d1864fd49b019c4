"""The API describes itself, and tells whether it can serve."""

from __future__ import annotations

import re


def test_the_spec_describes_every_route_and_its_problems(client, app):
    spec = client.get("/openapi.json").json
    documented = {(path, method.upper()) for path, item in spec["paths"].items()
                  for method in item if method != "parameters"}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(("api-docs.", "swagger_static.", "console")):
            continue  # the spec and docs themselves; the console's pages are for people
        path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, (path, method)
    create = spec["paths"]["/orders"]["post"]
    assert "Idempotency-Key" in create["description"]
    assert {"in": "header", "name": "Idempotency-Key"}.items() <= create["parameters"][0].items()
    assert spec["paths"]["/healthz"]["get"]["security"] == []
    for status in ("400", "401", "403", "409", "413", "415", "422"):
        response = create["responses"][status]
        if "$ref" in response:
            response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        assert list(response["content"]) == ["application/problem+json"], status
    assert set(spec["components"]["schemas"]["Problem"]["properties"]) >= {
        "type", "title", "status", "code", "detail", "errors"}
    assert spec["components"]["schemas"]["LineIn"]["properties"]["unit_price"] == {
        "type": "string", "format": "decimal"}


def test_the_interactive_docs_load_their_assets_from_the_service_itself(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/docs/static/swagger-ui-bundle.js" in html
    assert "/openapi.json" in html
    with client.get("/docs/static/swagger-ui-bundle.js") as asset:
        assert asset.status_code == 200
        assert asset.mimetype == "text/javascript"


def test_healthz_answers_while_the_process_runs(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_readyz_checks_the_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready", "checks": {"database": "ok"},
                             "outbox": {"waiting": 0, "oldest_seconds": None}}


def test_readyz_checks_redis_when_it_is_configured(make_app, redis_url):
    ready = make_app(REDIS_URL=redis_url).test_client().get("/readyz")
    assert ready.json["checks"] == {"database": "ok", "redis": "ok"}
    down = make_app(REDIS_URL="redis://127.0.0.1:1/0").test_client().get("/readyz")
    assert down.status_code == 503
    assert down.headers["Content-Type"] == "application/problem+json"
    assert down.json["code"] == "not_ready"
    assert down.json["checks"]["redis"].startswith("unreachable")
