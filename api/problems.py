"""Every error leaves as application/problem+json (RFC 9457) with a stable `code`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, request
from sqlalchemy.exc import IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

from adapters.errors import (
    DatabaseBehindError,
    IdempotencyInFlightError,
    IdempotencyKeyReusedError,
)
from engine.errors import (
    AlreadyExistsError,
    ApprovalError,
    DuplicateOrderError,
    FieldProblem,
    ForbiddenError,
    HoldResolvedError,
    InputValidationError,
    InsufficientStockError,
    InvalidTransitionError,
    NotFoundError,
    NotOnHoldError,
    NotReadyError,
    OmsError,
    RuleSetStateError,
    StageNotRunnableError,
    UnknownReferencesError,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# Stable codes for the statuses we answer with when the framework refuses a request.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    500: "internal_error",
    503: "unavailable",
}

ENGINE_STATUSES: dict[type[OmsError], int] = {
    NotFoundError: 404,
    InputValidationError: 422,  # and its subclass UnknownReferencesError
    IdempotencyKeyReusedError: 422,
    InvalidTransitionError: 409,
    NotOnHoldError: 409,
    HoldResolvedError: 409,
    NotReadyError: 409,
    InsufficientStockError: 409,
    RuleSetStateError: 409,
    ApprovalError: 409,
    StageNotRunnableError: 409,
    DuplicateOrderError: 409,
    AlreadyExistsError: 409,
    IdempotencyInFlightError: 409,
    ForbiddenError: 403,
    DatabaseBehindError: 503,
}


ERROR_DESCRIPTIONS = {
    400: "Malformed JSON or a malformed header",
    401: "No API key, or an unknown or revoked one",
    403: "The key's role or channel may not do this",
    404: "No such resource (or not visible to this key)",
    409: "A conflict: a duplicate, a refused status change, a request still in flight",
    413: "The body is over the size limit",
    415: "The body is not application/json",
    422: "Invalid fields (every one is listed), unknown references, or a reused key",
    503: "The database (or Redis) cannot be reached right now: retry after Retry-After",
}


def document_errors(blueprint: Any, *statuses: int) -> Callable[[Any], Any]:
    """Describe in the OpenAPI spec the problems a route may answer with."""

    def decorate(view: Any) -> Any:
        for status in (*statuses, 503):
            view = blueprint.alt_response(status, schema="Problem",
                                          description=ERROR_DESCRIPTIONS[status],
                                          content_type=PROBLEM_JSON)(view)
        return view

    return decorate


class ApiProblem(Exception):
    """A refusal decided in the api layer (authentication, media type...)."""

    def __init__(self, status: int, code: str, detail: str,
                 headers: Mapping[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = dict(headers or {})
        self.extra = extra


def problem(status: int, code: str, detail: str, *, title: str | None = None,
            errors: list[dict[str, str]] | None = None,
            headers: Mapping[str, str] | None = None, **extra: Any) -> Response:
    """Build one problem+json response."""
    body = problem_body(status, code, detail, title=title, errors=errors, **extra)
    response = Response(json.dumps(body, separators=(",", ":"), default=str), status=status,
                        mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def problem_body(status: int, code: str, detail: str, *, title: str | None = None,
                 errors: list[dict[str, str]] | None = None, **extra: Any) -> dict[str, Any]:
    """Build one problem's body (also what a bulk request answers for each refused item)."""
    body: dict[str, Any] = {
        "type": f"urn:oms:problem:{code}",
        "title": title or _title(status),
        "status": status,
        "code": code,
        "detail": detail,
        "instance": request.path if request else None,
    }
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    return body


def status_of(error: OmsError) -> int:
    """The HTTP status an engine error answers with."""
    return next((code for kind, code in ENGINE_STATUSES.items() if isinstance(error, kind)),
                400)


def response_for(error: Exception) -> Response | None:
    """Return the problem response for an error we expect, or None for a bug."""
    if isinstance(error, ApiProblem):
        return problem(error.status, error.code, error.detail, headers=error.headers,
                       **error.extra)
    if isinstance(error, OmsError):
        return _engine_problem(error)
    if isinstance(error, HTTPException) and not isinstance(error, InternalServerError):
        return _http_problem(error)
    if isinstance(error, IntegrityError):  # two requests raced for the same record
        log.info("conflict between concurrent requests: %s", error)
        return problem(409, "concurrent_conflict",
                       "another request changed the same record at the same time; retry")
    if isinstance(error, RecursionError):  # JSON nested deeper than any real body
        return problem(400, "malformed_json", "the body is nested too deeply")
    if isinstance(error, OperationalError):  # the database is down, restarting or locked
        log.warning("database unavailable: %s", error)
        return problem(503, "database_unavailable",
                       "the database cannot be reached right now; retry shortly",
                       headers={"Retry-After": "2"})
    return None


def register(app: Flask) -> None:
    """Answer every error, expected or not, with a problem."""

    @app.errorhandler(OmsError)
    @app.errorhandler(ApiProblem)
    @app.errorhandler(HTTPException)
    def expected(error: Exception) -> Response:
        return response_for(error) or _internal(error)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        return response_for(error) or _internal(error)


def field_errors(problems: list[FieldProblem], where: str = "body",
                 prefix: str = "") -> list[dict[str, str]]:
    """Return the offending fields in the shape every problem uses (`prefix`: where the
    item sits in a bulk body, e.g. `events/3`)."""
    return [{"field": f"{prefix}/{p.field}" if prefix else p.field, "in": where,
             "message": p.message} for p in problems]


def flatten_messages(messages: Any, where: str, prefix: str = "") -> list[dict[str, str]]:
    """Turn marshmallow's nested messages into one entry per offending field."""
    found: list[dict[str, str]] = []
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = "" if key == "_schema" else str(key)
            path = f"{prefix}/{name}" if prefix and name else (prefix or name)
            found.extend(flatten_messages(value, where, path))
    elif isinstance(messages, list | tuple):
        for item in messages:
            if isinstance(item, Mapping | list | tuple):
                found.extend(flatten_messages(item, where, prefix))
            else:
                found.append({"field": prefix, "in": where, "message": str(item)})
    else:
        found.append({"field": prefix, "in": where, "message": str(messages)})
    return found


def _engine_problem(error: OmsError) -> Response:
    status, body, headers = engine_problem(error)
    return problem(status, headers=headers, **body)


def engine_problem(error: OmsError, prefix: str = ""
                   ) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, body fields (code, detail, errors and what else the error names) and
    headers of the problem an engine error answers with; a bulk row's problem uses the same
    (`prefix`: where the item sits in a bulk body, e.g. `rows/3`)."""
    status = status_of(error)
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    errors = None
    if isinstance(error, InputValidationError):
        errors = field_errors(error.problems, prefix=prefix)
    if isinstance(error, InvalidTransitionError):
        extra = {"current_status": error.current, "requested_status": error.target}
        if error.held_from:
            extra["held_from"] = error.held_from
    if isinstance(error, NotOnHoldError):
        extra = {"current_status": error.current}
    if isinstance(error, HoldResolvedError):
        extra = {"resolution": error.resolution}
    if isinstance(error, DuplicateOrderError):
        extra = {"order_id": error.order_id, "channel": error.channel,
                 "channel_order_ref": error.channel_order_ref}
        headers["Location"] = f"/orders/{error.order_id}"
    if isinstance(error, IdempotencyInFlightError):
        headers["Retry-After"] = "1"
    if isinstance(error, UnknownReferencesError):
        extra["unknown_skus"] = error.skus
        extra["unknown_customer_id"] = error.customer_id
    return status, {"code": error.code, "detail": error.detail, "errors": errors, **extra}, headers


def _http_problem(error: HTTPException) -> Response:
    status = error.code or 500
    code = HTTP_CODES.get(status, f"http_{status}")
    detail = error.description or _title(status)
    errors = None
    headers = {name: value for name, value in error.get_headers() if name != "Content-Type"}
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if status == 400 and messages:
        code, detail = "malformed_json", "the body is not valid JSON"
    elif status == 422 and isinstance(messages, Mapping):
        errors = []
        for location, found in messages.items():
            flat = flatten_messages(found, "body" if location == "json" else location)
            if location == "query":  # a repeated parameter is named, not its n-th value
                flat = [{**error, "field": error["field"].split("/")[0]} for error in flat]
            errors.extend(flat)
        detail = f"{len(errors)} field(s) are invalid"
    headers.update(data.get("headers") or {})
    return problem(status, code, detail, errors=errors, headers=headers)


def _internal(error: Exception) -> Response:
    log.error("unexpected error on %s %s", request.method, request.path, exc_info=error)
    return problem(500, "internal_error", "the service failed; the error has been logged")


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
