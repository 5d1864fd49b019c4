"""Reference data: customers, products and locations, one blueprint each from one recipe."""

from __future__ import annotations

from functools import partial
from typing import Any

from flask import request, url_for
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from api.access import allow, current_actor
from api.problems import document_errors
from api.schemas import (
    BulkResultSchema,
    CustomerSchema,
    LocationSchema,
    PageQuerySchema,
    ProductSchema,
    StrictSchema,
    check_rows,
    page,
    page_schema,
)
from api.transactions import command, request_uow
from engine import visibility
from engine.catalog import reference
from engine.catalog.reference import CUSTOMERS, LOCATIONS, PRODUCTS, ReferenceKind
from engine.errors import ForbiddenError

PEOPLE = ("ops", "analyst")


class BulkSchema(StrictSchema):
    rows = fields.List(fields.Raw(allow_none=True), required=True,
                       validate=validate.Length(min=1, max=1000,
                                                error="send 1 to 1000 rows per call"))


def reference_blueprint(kind: ReferenceKind[Any], schema: type[Schema], plural: str,
                        readers: tuple[str, ...], writers: tuple[str, ...]) -> Blueprint:
    """Build the create / read / update / list / bulk upsert routes for one kind.

    A customer's finance fields (credit limit, payment terms) are set by ops and admin
    only: another writer that sends them is refused, and its bulk upserts keep them.
    """
    blp = Blueprint(plural, __name__, url_prefix=f"/{plural}",
                    description=f"{plural.capitalize()} (reference data)")
    errors = partial(document_errors, blp)
    key = kind.key
    path = f"/<key:{key}>"
    patch_schema = schema(partial=True, exclude=(key,))

    @blp.route("", methods=["POST"])
    @allow(*writers, scope="global")
    @command
    @errors(400, 401, 403, 409, 413, 415)
    @blp.arguments(schema())
    @blp.response(201, schema)
    @_doc(f"Create one {kind.name}; 409 if its {key} exists.")
    def create(data: dict[str, Any]) -> tuple[Any, int, dict[str, str]]:
        visibility.check_finance_fields(current_actor(), _sent(request.get_json()))
        record = reference.create_record(request_uow(), kind, data)
        return record, 201, {"Location": url_for(f"{plural}.read", **{key: data[key]})}

    @blp.route("", methods=["GET"])
    @allow(*readers, scope="global")
    @errors(401, 403, 422)
    @blp.arguments(PageQuerySchema(), location="query", unknown=RAISE)
    @blp.response(200, page_schema(schema, f"{plural.capitalize()}Page"))
    @_doc(f"List {plural} in {key} order, with a cursor.")
    def list_all(query: dict[str, Any]) -> dict[str, Any]:
        rows, next_key = reference.list_records(request_uow(), kind, query.get("cursor"),
                                                query["limit"])
        return page(rows, "after", next_key)

    @blp.route(path, methods=["GET"])
    @allow(*readers, scope="global")
    @errors(401, 403, 404)
    @blp.response(200, schema)
    @_doc(f"Read one {kind.name}.")
    def read(**keys: str) -> Any:
        return reference.get_record(request_uow(), kind, keys[key])

    @blp.route(path, methods=["PATCH"])
    @allow(*writers, scope="global")
    @command
    @errors(400, 401, 403, 404, 413, 415)
    @blp.arguments(patch_schema)
    @blp.response(200, schema)
    @_doc(f"Change some fields of one {kind.name}.")
    def update(data: dict[str, Any], **keys: str) -> Any:
        visibility.check_finance_fields(current_actor(), data)
        return reference.update_record(request_uow(), kind, keys[key], data)

    @blp.route("/bulk", methods=["POST"])
    @allow(*writers, scope="global")
    @command
    @errors(400, 401, 403, 413, 415)
    @blp.arguments(BulkSchema(), description=f"Up to 1,000 {plural}, each a whole record as for "
                   "a single create (omitted optional fields take their defaults); existing "
                   "ones are replaced")
    @blp.response(200, BulkResultSchema, description="One result per row, in order")
    def bulk_upsert(data: dict[str, Any]) -> dict[str, Any]:
        """Create or update many records; each row succeeds or fails on its own."""
        unique, bad = check_rows(schema(), data["rows"], unique=(key,))
        results: dict[int, dict[str, Any]] = {
            row.index: {"index": row.index, "key": row.sent(key), "outcome": "error",
                        "errors": row.errors}
            for row in bad
        }
        unique = _without_finance_fields(unique, data["rows"], key, results)
        if unique:
            outcomes = reference.upsert_records(request_uow(), kind, [row for _, row in unique])
            for (index, _), outcome in zip(unique, outcomes, strict=True):
                results[index] = {"index": index, "key": outcome.key,
                                  "outcome": outcome.outcome, "errors": []}
        ordered = [results[index] for index in sorted(results)]
        return {
            "created": sum(r["outcome"] == "created" for r in ordered),
            "updated": sum(r["outcome"] == "updated" for r in ordered),
            "failed": sum(r["outcome"] == "error" for r in ordered),
            "results": ordered,
        }

    return blp


def _doc(text: str) -> Any:
    def describe(view: Any) -> Any:
        view.__doc__ = text
        return view
    return describe



def _sent(body: Any) -> list[str]:
    return list(body) if isinstance(body, dict) else []


def _without_finance_fields(rows: list[tuple[int, dict[str, Any]]], sent: list[Any], key: str,
                            results: dict[int, dict[str, Any]]
                            ) -> list[tuple[int, dict[str, Any]]]:
    """For a writer who may not set finance fields: refuse rows that send them, and leave
    them out of the others (new records take the defaults, existing ones keep theirs)."""
    actor = current_actor()
    if actor.role in visibility.FINANCE_ROLES:
        return rows
    kept = []
    for index, row in rows:
        try:
            visibility.check_finance_fields(actor, _sent(sent[index]))
        except ForbiddenError as error:
            results[index] = {"index": index, "key": row[key], "outcome": "error", "errors": [
                {"field": f"rows/{index}/{name}", "in": "body", "message": error.detail}
                for name in visibility.FINANCE_FIELDS if name in sent[index]]}
            continue
        kept.append((index, {name: value for name, value in row.items()
                             if name not in visibility.FINANCE_FIELDS}))
    return kept


# Channel integrations (a shop, an ERP, a PIM) keep customers and products current; the
# locations are the business's own, set by people.
customers = reference_blueprint(CUSTOMERS, CustomerSchema, "customers",
                                readers=("channel", *PEOPLE), writers=("channel", "ops"))
products = reference_blueprint(PRODUCTS, ProductSchema, "products",
                               readers=("channel", "warehouse", *PEOPLE),
                               writers=("channel", "ops"))
locations = reference_blueprint(LOCATIONS, LocationSchema, "locations",
                                readers=("channel", "warehouse", *PEOPLE), writers=("ops",))
