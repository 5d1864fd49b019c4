"""Health: is the process up (healthz), can it serve (readyz)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import text

from adapters.errors import DatabaseBehindError
from adapters.migrations import check_schema_current
from api.access import public
from api.problems import PROBLEM_JSON, problem
from api.wiring import services

blp = Blueprint("health", __name__, description="Liveness and readiness probes")


class LiveSchema(Schema):
    status = fields.String(metadata={"enum": ["ok"]})


class ReadySchema(Schema):
    status = fields.String(metadata={"enum": ["ready"]})
    checks = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "each dependency: `ok`, or why it cannot be used"})
    outbox = fields.Dict(metadata={
        "description": "jobs written but not dispatched yet: `waiting`, `oldest_seconds`, "
                       "and `queue_depth` when Redis is configured"})


@blp.route("/healthz", methods=["GET"])
@blp.doc(security=[])
@blp.response(200, LiveSchema)
@public
def healthz() -> Response:
    """Answer as long as the process runs."""
    return jsonify(status="ok")


@blp.route("/readyz", methods=["GET"])
@blp.doc(security=[])
@blp.response(200, ReadySchema)
@blp.alt_response(503, schema="Problem", content_type=PROBLEM_JSON, description=(
    "A dependency cannot be used: `checks` says which"))
@public
def readyz() -> Response:
    """Answer 200 when the database (and Redis, when configured) can be used."""
    checks: dict[str, Any] = {}
    built = services()
    try:
        with built.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        check_schema_current(built.engine)
        checks["database"] = "ok"
    except DatabaseBehindError as error:
        checks["database"] = error.detail
    except Exception as error:  # any failure to reach it means "not ready"
        checks["database"] = f"unreachable: {type(error).__name__}"
    if built.redis is not None:
        try:
            built.redis.ping()
            checks["redis"] = "ok"
        except Exception as error:
            checks["redis"] = f"unreachable: {type(error).__name__}"
    outbox: dict[str, Any] = {}
    if checks["database"] == "ok":
        waiting, oldest = built.outbox.backlog()
        outbox = {"waiting": waiting, "oldest_seconds": round(oldest, 1) if oldest else None}
    if built.redis is not None and checks.get("redis") == "ok":
        outbox["queue_depth"] = built.redis.llen(f"rq:queue:{built.settings.queue_name}")
    if all(value == "ok" for value in checks.values()):
        return jsonify(status="ready", checks=checks, outbox=outbox)
    return problem(503, "not_ready", "a dependency is not available", checks=checks,
                   outbox=outbox)
