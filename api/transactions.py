"""One transaction per request, and idempotent replays of commands.

Views work in the request's unit of work and never commit: `@command` commits once the
response is built, together with the Idempotency-Key record of that response, so that a
command either happened and can be replayed, or did not happen at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from flask_smorest import Blueprint
from marshmallow import fields

from adapters import idempotency
from adapters.sql import SqlUnitOfWork
from api.access import current_actor, is_page
from api.problems import ApiProblem
from api.schemas import is_clean_text
from api.wiring import services

View = TypeVar("View", bound=Callable[..., Any])

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEPT_HEADERS = ("Content-Type", "Location")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
FRAMEWORK_ROUTES = ("api-docs.", "swagger_static.")  # the spec and the docs: not ours to check
IDEMPOTENCY_PARAMETER = {
    "in": "header", "name": IDEMPOTENCY_HEADER, "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Makes the command safe to retry: the same key with the same request "
                   "replays the first response; with another request, 422; while the first "
                   "is still running, 409. Keys are scoped to the API key and kept 24 hours.",
}


def request_uow() -> SqlUnitOfWork:
    """Return this request's unit of work, opening it on first use."""
    uow: SqlUnitOfWork | None = g.get("uow")
    if uow is None:
        uow = services().uow().__enter__()
        g.uow = uow
    return uow


def command(view: View) -> View:
    """Run the view as one transaction, honouring an Idempotency-Key header."""

    @wraps(view)
    def run(*args: Any, **kwargs: Any) -> Response:
        claim = _claim()
        if isinstance(claim, idempotency.Replay):
            return _replay(claim)
        try:
            response = current_app.make_response(view(*args, **kwargs))
            uow = request_uow()
            if claim is not None and response.status_code < 300:
                idempotency.complete(uow.session.connection(), claim, response.status_code,
                                     _kept_headers(response), response.get_data())
            uow.commit()
        except Exception:
            if "uow" in g:
                g.uow.rollback()
            if claim is not None:
                # Nothing was changed: the key is free for the corrected (or retried) request.
                idempotency.release(services().engine, claim)
            raise
        if claim is not None and response.status_code >= 300:
            idempotency.release(services().engine, claim)
        return response

    documented: View = Blueprint.doc(parameters=[IDEMPOTENCY_PARAMETER])(run)
    return documented


LARGE_BODY_ATTRIBUTE = "_takes_large_body"


def large_body(view: View) -> View:
    """Let a bulk route take bodies up to the bulk limit (`max_bulk_content_length`)."""
    setattr(view, LARGE_BODY_ATTRIBUTE, True)
    return view


FILE_ATTRIBUTE = "oms_takes_file"


@dataclass(frozen=True)
class FileBody:
    media_types: tuple[str, ...]
    limit_setting: str  # the Settings field holding its largest size in bytes


def takes_file(*media_types: str, limit_setting: str) -> Callable[[View], View]:
    """Declare a command whose body is a file of one of these media types instead of JSON,
    up to the size the named setting allows (415 and 413 otherwise, as for JSON)."""

    def declare(view: View) -> View:
        setattr(view, FILE_ATTRIBUTE, FileBody(media_types, limit_setting))
        return view

    return declare


def register(app: Flask) -> None:
    """Check bodies before any view runs, and close each request's unit of work."""

    @app.before_request
    def check_request() -> None:
        if is_page(request.endpoint):
            return  # a page reads forms and its own query (api/console/)
        for value in (request.view_args or {}).values():
            if isinstance(value, str) and not is_clean_text(value):
                raise ApiProblem(404, "not_found", "no resource has such a name")
        if request.endpoint is not None and not request.endpoint.startswith(FRAMEWORK_ROUTES):
            _check_query()
        if request.method not in BODY_METHODS or request.endpoint is None:
            return
        view = current_app.view_functions[request.endpoint]
        file = getattr(view, FILE_ATTRIBUTE, None)
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        if getattr(view, LARGE_BODY_ATTRIBUTE, False):
            limit = request.max_content_length = services().settings.max_bulk_content_length
        if file is not None:
            limit = request.max_content_length = getattr(services().settings,
                                                         file.limit_setting)
        if request.content_length is not None and request.content_length > limit:
            raise ApiProblem(413, "payload_too_large",
                             f"the body is {request.content_length} bytes; the limit is {limit}")
        if file is not None:
            if request.mimetype not in file.media_types:
                raise ApiProblem(415, "unsupported_media_type",
                                 f"send the file as {' or '.join(file.media_types)}, not "
                                 f"{request.mimetype or 'no Content-Type'}",
                                 headers={"Accept-Post": ", ".join(file.media_types)})
            return
        if not request.is_json and (_takes_body() or request.get_data(cache=True)):
            raise ApiProblem(415, "unsupported_media_type",
                             f"send the body as application/json, not "
                             f"{request.mimetype or 'no Content-Type'}",
                             headers={"Accept-Post": "application/json"})

    @app.teardown_request
    def close_uow(_error: BaseException | None) -> None:
        uow: SqlUnitOfWork | None = g.pop("uow", None)
        if uow is not None:
            uow.__exit__(None, None, None)


def _declared(location: str) -> list[Any]:
    """The marshmallow schemas this request's route reads from `location` (json, query)."""
    view = current_app.view_functions[request.endpoint or ""]
    parameters = getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", [])
    return [parameter["schema"] for parameter in parameters if parameter["in"] == location]


def _check_query() -> None:
    """Refuse query parameters the route does not take, and a filter given twice where it
    takes one value (a filter that takes several is declared as a list: any of them)."""
    schemas = _declared("query")  # a route with a query schema names unknown ones itself
    known: set[str] = set()
    repeatable: set[str] = set()
    for schema in schemas:
        for name, field in schema.fields.items():
            known.add(field.data_key or name)
            if isinstance(field, fields.List):
                repeatable.add(field.data_key or name)
    errors = []
    for name in request.args:
        if not schemas:
            errors.append({"field": name, "in": "query", "message": "Unknown field."})
        elif name in known and name not in repeatable and len(request.args.getlist(name)) > 1:
            errors.append({"field": name, "in": "query", "message": "give it once"})
    if errors:
        raise ApiProblem(422, "validation_failed", f"{len(errors)} field(s) are invalid",
                         errors=errors)


def _takes_body() -> bool:
    """Whether this request's route reads a JSON body (a command such as a release takes none,
    and accepts an empty request with no Content-Type)."""
    return any(field.required for schema in _declared("json")
               for field in schema.fields.values())


def _claim() -> idempotency.Claimed | idempotency.Replay | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not all("!" <= char <= "~" for char in key):
        raise ApiProblem(400, "invalid_idempotency_key",
                         f"{IDEMPOTENCY_HEADER} must be 1 to 255 visible ASCII characters")
    actor = current_actor()
    if actor.api_key_id is None:
        raise ApiProblem(400, "invalid_idempotency_key",
                         f"{IDEMPOTENCY_HEADER} needs an API key to be scoped to")
    settings = services().settings
    body = request.get_data(cache=True)
    return idempotency.claim(
        services().engine, actor.api_key_id, key,
        idempotency.fingerprint(request.method, request.full_path, body),
        timedelta(seconds=settings.idempotency_lease_seconds),
    )


def _replay(replay: idempotency.Replay) -> Response:
    response = Response(replay.body, status=replay.status_code)
    for name, value in replay.headers.items():
        response.headers[name] = value
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _kept_headers(response: Response) -> dict[str, str]:
    return {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
