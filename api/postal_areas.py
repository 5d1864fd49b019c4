"""Postal areas: where a postal code lies, for distances, sourcing and promise dates."""

from __future__ import annotations

from functools import partial
from typing import Any

from flask_smorest import Blueprint
from marshmallow import RAISE, ValidationError, fields, validate, validates_schema

from api.access import allow
from api.problems import document_errors
from api.schemas import (
    BulkResultSchema,
    Measure,
    StrictSchema,
    check_rows,
    country_field,
    text,
)
from api.transactions import command, request_uow
from engine.catalog import geo
from engine.errors import NotFoundError
from engine.record import PostalArea

READERS = ("channel", "warehouse", "ops", "analyst")
WRITERS = ("ops",)  # and admin
MAX_ROWS = 5000
PREFIX = validate.Regexp(r"^[0-9A-Z]{2,16}$", error="2 to 16 upper-case letters or digits, "
                                                     "as in the postal code without separators")

blp = Blueprint("postal_areas", __name__, url_prefix="/postal-areas",
                description="Postal areas: coordinates by postal code prefix")
_errors = partial(document_errors, blp)


class PostalAreaSchema(StrictSchema):
    country = country_field(required=True)
    prefix = fields.String(required=True, validate=PREFIX)
    latitude = Measure(required=True, places=6, validate=validate.Range(min=-90, max=90))
    longitude = Measure(required=True, places=6, validate=validate.Range(min=-180, max=180))
    city = text(100, allow_none=True, load_default=None)
    region = text(100, allow_none=True, load_default=None)


class AreaRowsSchema(StrictSchema):
    rows = fields.List(fields.Raw(allow_none=True), required=True,
                       validate=validate.Length(min=1, max=MAX_ROWS,
                                                error=f"send 1 to {MAX_ROWS} rows per call"))


class LookupSchema(StrictSchema):
    country = country_field(load_default="BR")
    postal_code = text(32, required=True)

    @validates_schema
    def has_letters_or_digits(self, data: dict[str, Any], **kwargs: Any) -> None:
        if len(geo.postal_prefix(data.get("postal_code", ""))) < 2:
            raise ValidationError("needs at least two letters or digits", "postal_code")


@blp.route("/lookup", methods=["GET"])
@allow(*READERS, scope="global")
@_errors(401, 403, 404, 422)
@blp.arguments(LookupSchema(), location="query", unknown=RAISE)
@blp.response(200, PostalAreaSchema)
def lookup(query: dict[str, Any]) -> PostalArea:
    """Return the area a postal code falls in (its longest known prefix)."""
    area = geo.area_of(request_uow(), query["country"], query["postal_code"])
    if area is None:
        raise NotFoundError("postal area for", f"{query['country']} {query['postal_code']}")
    return area


@blp.route("/bulk", methods=["POST"])
@allow(*WRITERS, scope="global")
@command
@_errors(400, 401, 403, 413, 415)
@blp.arguments(AreaRowsSchema(), description=f"Up to {MAX_ROWS:,} areas; an existing "
               "(country, prefix) is replaced")
@blp.response(200, BulkResultSchema, description="One result per row, in order")
def upsert(data: dict[str, Any]) -> dict[str, Any]:
    """Create or replace postal areas; each row succeeds or fails on its own."""
    rows, bad = check_rows(PostalAreaSchema(), data["rows"], unique=("country", "prefix"))
    results: dict[int, dict[str, Any]] = {
        row.index: {"index": row.index, "key": row.sent("prefix"), "outcome": "error",
                    "errors": row.errors}
        for row in bad
    }
    outcomes = geo.upsert_postal_areas(request_uow(), [row for _, row in rows]) if rows else []
    for (index, row), outcome in zip(rows, outcomes, strict=True):
        results[index] = {"index": index, "key": f"{row['country']} {row['prefix']}",
                          "outcome": outcome, "errors": []}
    ordered = [results[index] for index in sorted(results)]
    return {"created": outcomes.count("created"), "updated": outcomes.count("updated"),
            "failed": sum(r["outcome"] == "error" for r in ordered), "results": ordered}
