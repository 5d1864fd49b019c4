"""The OpenAPI description and its interactive docs, served without any CDN."""

from __future__ import annotations

import http
from typing import Any

import swagger_ui_bundle
from apispec.ext.marshmallow import MarshmallowPlugin, OpenAPIConverter
from flask import Blueprint, Flask, Response, send_from_directory
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from marshmallow import Schema
from werkzeug.routing import BaseConverter

from api.access import declare_public_endpoints, public
from api.problems import PROBLEM_JSON
from api.schemas import Measure, Money, ProblemSchema

SWAGGER_STATIC = "/docs/static/"

blp = Blueprint("swagger_static", __name__)


@blp.get(SWAGGER_STATIC + "<path:filename>")
@public
def swagger_static(filename: str) -> Response:
    """Serve Swagger UI's own files, shipped in the swagger-ui-bundle package."""
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename)


# Path segments that name a collection's own routes (`/customers/bulk`, `/carriers/events`), so
# never a record's key: a key converter leaves them out, and `OPTIONS /customers/bulk` then
# advertises only what `/customers/bulk` itself answers.
RESERVED_SEGMENTS = ("bulk", "events")
KEY_PATTERN = r"(?!(?:" + "|".join(RESERVED_SEGMENTS) + r")(?:/|$))[^/]+"


class KeyConverter(BaseConverter):
    """A record's key in a path (`<key:code>`): any segment but a reserved one."""

    regex = KEY_PATTERN


HOME_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Order management service</title></head>
<body><h1>Order management service</h1>
<p><strong><a href="/console/">Sign in to the console</a></strong>: the exception inbox,
orders, the rule studio and the dashboard, for operations staff, analysts and admins.</p>
<p>Integrations use the API: every call needs an API key
(<code>Authorization: Bearer oms_...</code>).</p>
<ul><li><a href="/docs">Interactive API docs</a></li>
<li><a href="/openapi.json">OpenAPI description</a></li>
<li><a href="/healthz">Health</a> and <a href="/readyz">readiness</a></li></ul>
</body></html>
"""


@blp.get("/")
@public
def home() -> Response:
    """A small page for the person who opens the service's address in a browser."""
    return Response(HOME_PAGE, mimetype="text/html")


OPENAPI_CONFIG: dict[str, Any] = {
    "API_TITLE": "Order management service",
    "API_VERSION": "1.0.0",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "/docs",
    "OPENAPI_SWAGGER_UI_URL": SWAGGER_STATIC,
    "API_SPEC_OPTIONS": {
        "security": [{"apiKey": []}],
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer",
                           "description": "An API key: `Authorization: Bearer oms_...`"},
            },
        },
        "info": {
            "description": (
                "The system of record for orders. Every error is "
                "`application/problem+json` (RFC 9457) with a stable `code`; a 422 lists "
                "every offending field. Commands accept an `Idempotency-Key` header."
            ),
        },
    },
}


class OmsApi(Api):  # type: ignore[misc]
    """flask-smorest's Api, with errors documented as problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)
        default = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(default, self.spec, PROBLEM_JSON)
        self.spec.components.response("DEFAULT_ERROR", default, lazy=True)


class CrossFieldConverter(OpenAPIConverter):  # type: ignore[misc]
    """Also write the rules a schema checks across its fields (`OPENAPI_RULES`: a JSON Schema
    fragment such as `oneOf` of `required`, plus a `description` in words) into the spec."""

    def schema2jsonschema(self, schema: Any) -> dict[str, Any]:
        jsonschema: dict[str, Any] = super().schema2jsonschema(schema)
        cls = schema if isinstance(schema, type) else type(schema)
        jsonschema.update(getattr(cls, "OPENAPI_RULES", {}))
        return jsonschema


class OmsMarshmallowPlugin(MarshmallowPlugin):  # type: ignore[misc]
    Converter = CrossFieldConverter


def schema_name(schema: type[Schema] | Schema) -> str:
    """Name a schema in the spec: a partial one (for PATCH) gets its own name."""
    cls = schema if isinstance(schema, type) else type(schema)
    name = cls.__name__.removesuffix("Schema")
    if not isinstance(schema, type) and schema.partial:
        name += "Changes"
    return name


def init_api(app: Flask) -> OmsApi:
    """Attach the OpenAPI layer; its own routes (spec, docs) are public."""
    for name, value in OPENAPI_CONFIG.items():
        app.config.setdefault(name, value)
    app.url_map.converters["key"] = KeyConverter
    api = OmsApi(app, spec_kwargs={
        "marshmallow_plugin": OmsMarshmallowPlugin(schema_name_resolver=schema_name)
    })
    api.register_field(Money, "string", "decimal")
    api.register_field(Measure, "number", None)
    api.register_converter(KeyConverter, lambda converter: {
        "type": "string", "pattern": f"^{KEY_PATTERN}$",
        "description": f"not {' or '.join(RESERVED_SEGMENTS)}"})
    app.register_blueprint(blp)
    declare_public_endpoints(app, [name for name in app.view_functions
                                   if name.startswith("api-docs.")])
    return api
