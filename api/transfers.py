"""Orders in and out as files: a CSV import captured by a job, and a streamed export.

The layout (engine/orders/transfers.py, the README's "Import and export"): one row per
order line, the order's columns repeated, rows grouped into orders by `channel_order_ref`.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

from flask import Response, request, url_for
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from api.access import allow, current_actor
from api.orders import draft_from, order_query
from api.problems import ApiProblem, document_errors, flatten_messages
from api.schemas import OrderInSchema, OrderQuerySchema
from api.transactions import command, request_uow, takes_file
from api.wiring import services
from engine.errors import FieldProblem
from engine.orders import transfers
from engine.record import OrderImport, utcnow
from engine.status import ImportStatus

blp = Blueprint("transfers", __name__, url_prefix="/orders",
                description="Orders in and out as files: CSV import, CSV and NDJSON export")

_document_errors = partial(document_errors, blp)

IMPORT_PATH = "/imports/<int(min=1, max=2147483647):import_id>"
CSV = "text/csv"
NDJSON = "application/x-ndjson"
MEDIA_TYPES = {"csv": CSV, "ndjson": NDJSON}
_TEXT = {"schema": {"type": "string"}}
_ORDER_IN = OrderInSchema()


class OrderExportQuerySchema(OrderQuerySchema):
    """The filters of `GET /orders`, without its page, and the file's format."""

    class Meta(OrderQuerySchema.Meta):
        exclude = ("limit", "cursor")

    format = fields.String(load_default="csv", validate=validate.OneOf(transfers.EXPORT_FORMATS),
                           metadata={"description": "csv: one row per order line; ndjson: one "
                                                    "order per line, as GET /orders/{id}"})


class OrderImportSchema(Schema):
    id = fields.Integer()
    status = fields.String(metadata={"enum": [status.value for status in ImportStatus]})
    total = fields.Integer(attribute="total_rows", metadata={
        "description": "Rows in the file (its order lines, the header not counted)"})
    done = fields.Integer(attribute="done_rows", metadata={
        "description": "Rows settled so far: imported or failed"})
    created = fields.Integer(metadata={"description": "Orders captured"})
    failed = fields.Integer(attribute="failed_rows", metadata={
        "description": "Rows not imported: each is in the result file"})
    orders = fields.Integer(attribute="entries", metadata={
        "description": "Orders in the file, good or bad"})
    requested_by = fields.Function(lambda record: f"{record.actor_type}:{record.actor_id}",
                                   metadata={"type": "string"})
    errors = fields.Function(
        lambda record: url_for("transfers.get_import_errors", import_id=record.id),
        metadata={"type": "string", "description": "The result file: one line per problem "
                                                   "of a row not imported"})
    error = fields.String(allow_none=True, metadata={
        "description": "Why the job gave up (status failed)"})
    created_at = fields.AwareDateTime()
    started_at = fields.AwareDateTime(allow_none=True)
    finished_at = fields.AwareDateTime(allow_none=True)


_FILE_BODY = {
    "required": True,
    "description": "The CSV file (UTF-8, a header row, one row per order line), as the body "
                   "or as the part `file` of a form",
    "content": {CSV: _TEXT, "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}}}}},
}


@blp.route("/imports", methods=["POST"])
@allow("channel", "ops", scope="global")
@takes_file(CSV, "multipart/form-data", limit_setting="import_max_content_length")
@command
@_document_errors(400, 401, 403, 409, 413, 415, 422)
@blp.doc(requestBody=_FILE_BODY)
@blp.response(202, OrderImportSchema, description="Checked and queued; poll its Location")
def start_import() -> tuple[OrderImport, int, dict[str, str]]:
    """Import orders from a CSV file: each row checked now, the orders captured by a job.

    One row per order line; an order's rows share its `channel_order_ref` and repeat its
    columns (or leave them blank after its first row). Columns: `channel_order_ref`,
    `channel`, `customer_id`, `currency`, `service_level`, `payment_terms`,
    `shipping_amount`, `tax_amount`, `ship_to_name`, `ship_to_line1`, `ship_to_line2`,
    `ship_to_city`, `ship_to_region`, `ship_to_postal_code`, `ship_to_country`,
    `ship_to_phone`, `sku`, `quantity`, `unit_price`, each meaning what it does in
    `POST /orders`; the columns only an export has are ignored. A header naming an
    unknown column or lacking a required one is a 422; so is a file that is not UTF-8 CSV.

    An order with a bad row is not imported, and its rows are in the result file
    (`errors`) with the column and reason; the others are captured, 500 per transaction,
    as `POST /orders` would (a channel key's in its channel). Bodies up to
    `OMS_IMPORT_MAX_CONTENT_LENGTH` bytes (32 MiB).
    """
    parsed = transfers.read_import(_uploaded())
    record = transfers.request_import(request_uow(), current_actor(),
                                      [_checked(order) for order in parsed.orders],
                                      parsed.rows)
    return record, 202, {"Location": url_for("transfers.get_import", import_id=record.id)}


def _uploaded() -> bytes:
    """The file sent: the body itself, or the form's part `file`."""
    if request.mimetype != "multipart/form-data":
        return request.get_data(cache=True)
    file = request.files.get("file")
    if file is None:
        raise ApiProblem(422, "validation_failed", "send the CSV file as the form's part "
                         "`file`", errors=[{"field": "file", "in": "body",
                                            "message": "Missing data for required field."}])
    return file.read()


def _checked(order: transfers.ParsedOrder) -> transfers.ImportedOrder:
    """Check an order of the file as `POST /orders` checks its body."""
    try:
        loaded = _ORDER_IN.load(order.body)
    except ValidationError as error:
        found = [FieldProblem(problem["field"], problem["message"])
                 for problem in flatten_messages(error.messages, "body")]
        return transfers.ImportedOrder(order.rows, None, order.problems + transfers.row_problems(
            order.rows, found, "validation_failed"))
    if order.problems:
        return transfers.ImportedOrder(order.rows, None, order.problems)
    return transfers.ImportedOrder(order.rows, draft_from(loaded), [])


@blp.route(IMPORT_PATH, methods=["GET"])
@allow("channel", "ops", "analyst", scope="import")
@_document_errors(401, 403, 404)
@blp.response(200, OrderImportSchema)
def get_import(import_id: int) -> OrderImport:
    """Read an import's progress: its status (queued, running, done, failed), rows done of
    the total, orders created and rows failed."""
    return transfers.get_import(request_uow(), current_actor(), import_id)


@blp.route(IMPORT_PATH + "/errors", methods=["GET"])
@allow("channel", "ops", "analyst", scope="import")
@_document_errors(401, 403, 404)
@blp.doc(responses={"200": {"description": "CSV: `row,field,code,reason`, one line per "
                                           "problem of a row not imported, rows ascending",
                            "content": {CSV: _TEXT}}})
def get_import_errors(import_id: int) -> Response:
    """Read an import's result file: every row not imported, with its column and reason
    (rows of an order that failed elsewhere say which row to look at)."""
    record = transfers.get_import(request_uow(), current_actor(), import_id)
    return _file(transfers.result_file(services().uow, record.id), CSV,
                 f"order-import-{record.id}-errors.csv")


@blp.route("/export", methods=["GET"])
@allow("channel", "ops", "analyst", scope="list")
@_document_errors(401, 403, 422)
@blp.arguments(OrderExportQuerySchema(), location="query", unknown=RAISE)
@blp.doc(responses={"200": {"description": "The orders, oldest first, streamed",
                            "content": {CSV: _TEXT, NDJSON: _TEXT}}})
def export_orders(query: dict[str, Any]) -> Response:
    """Export every order that matches the filters of `GET /orders`, streamed.

    `format=csv` (the default): a header, then one row per order line with its order's
    columns repeated (the import's layout, plus id, status, totals, line quantities and
    times). `format=ndjson`: one order per line, as `GET /orders/{id}` shows it. Integration
    keys export only their channel's orders. Orders are read 2,000 at a time, each page
    in its own short transaction, so any number of orders is exported in flat memory.
    """
    form = query.pop("format")
    chunks = transfers.export_orders(services().uow, current_actor(), order_query(query), form)
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return _file(chunks, MEDIA_TYPES[form], f"orders-{stamp}.{form}")


def _file(chunks: Iterator[str], media_type: str, name: str) -> Response:
    """A streamed file download: chunks sent as they are made.

    Not `stream_with_context`: the chunks need no request context (the caller has read the
    actor and the query, and each page opens its own short transaction), so the request's
    own transaction and context end now instead of lasting as long as the client reads.
    """
    body = (chunk.encode() for chunk in chunks)
    response = Response(body, mimetype=media_type)
    if media_type == CSV:
        response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
