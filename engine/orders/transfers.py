"""Orders in and out as files: the CSV layout, an import's rows grouped into orders and
captured in batches with what became of each row, and the export's rows (CSV or NDJSON).

One layout both ways: an import file has one row per order line, the order's columns
repeated on each of its rows (or left blank after its first row), and the rows of one
order share its `channel_order_ref`. The export writes the same columns, plus what only
the record knows (id, status, totals, quantities, times), so an export can be imported
elsewhere as it is.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select, update

from engine import visibility
from engine.actors import CHANNEL, Actor
from engine.errors import (
    DuplicateOrderError,
    FieldProblem,
    ForbiddenError,
    InputValidationError,
    NotFoundError,
    OmsError,
)
from engine.iso import smallest_unit
from engine.job_names import IMPORT_JOB
from engine.orders.capture import Address, LineDraft, OrderDraft
from engine.orders.reading import OrderQuery, filter_orders
from engine.ports import UnitOfWork
from engine.record import Order, OrderImport, OrderImportEntry, OrderLine, utcnow
from engine.status import ImportOutcome, ImportStatus

# ----- the layout -----

# Each order's columns; the address is POST /orders' `shipping_address`, prefixed.
ADDRESS_PARTS = ("name", "line1", "line2", "city", "region", "postal_code", "country", "phone")
ORDER_COLUMNS = ("channel_order_ref", "channel", "customer_id", "currency", "service_level",
                 "payment_terms", "shipping_amount", "tax_amount",
                 *(f"ship_to_{part}" for part in ADDRESS_PARTS))
LINE_COLUMNS = ("sku", "quantity", "unit_price")
IMPORT_COLUMNS = ORDER_COLUMNS + LINE_COLUMNS
# The columns a file must have (the others may be left out: their defaults apply).
REQUIRED_COLUMNS = ("channel_order_ref", "customer_id", "currency", "ship_to_name",
                    "ship_to_line1", "ship_to_city", "ship_to_country", "sku", "quantity",
                    "unit_price")
QUANTITY_COLUMNS = ("allocated", "shipped", "delivered", "cancelled", "returned",
                    "backordered")
EXPORT_COLUMNS = ("id", "status", *ORDER_COLUMNS, "subtotal", "total", "created_by",
                  "created_at", "updated_at", "line_no", *LINE_COLUMNS, "line_total",
                  *(f"quantity_{name}" for name in QUANTITY_COLUMNS))
# An export read back: what only the record knows is not imported, and not refused.
EXPORT_ONLY_COLUMNS = frozenset(EXPORT_COLUMNS) - frozenset(IMPORT_COLUMNS)
HEADER_ROW = 1  # rows are numbered as a spreadsheet shows them: the first order line is 2

# Orders captured per transaction of an import's job.
IMPORT_BATCH = 500
# Orders read per query of an export (and per chunk of its response).
EXPORT_PAGE = 2_000

_INTEGER = re.compile(r"^[+-]?\d{1,9}$")


@dataclass(frozen=True)
class RowProblem:
    """One line of an import's result file: a row, its column, what is wrong."""

    row: int
    field: str
    code: str
    reason: str


@dataclass
class ParsedOrder:
    """One order of an import file, as POST /orders would take it (cells as text)."""

    rows: list[int]
    body: dict[str, Any]
    problems: list[RowProblem] = field(default_factory=list)


@dataclass(frozen=True)
class ParsedFile:
    orders: list[ParsedOrder]
    rows: int


def read_import(data: bytes) -> ParsedFile:
    """Read an import file (UTF-8 CSV with a header row) into its orders.

    A row's own faults (cells that do not fit the header, an order column that differs
    from the order's first row) are its order's problems; the fields' values are checked
    by the caller against what POST /orders takes.

    Raises:
        InputValidationError: the file is not UTF-8 CSV, has no header or no rows, or its
            header names an unknown column, a column twice, or lacks a required one.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _file_problem(f"is not UTF-8 text (byte {error.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise _file_problem("is empty: send a header row, then one row per order line")
        columns = _check_header([cell.strip() for cell in header])
        grouped: dict[tuple[str, str], ParsedOrder] = {}
        orders: list[ParsedOrder] = []
        rows = 0
        for row, cells in enumerate(reader, start=HEADER_ROW + 1):
            if any(cell.strip() for cell in cells):  # a blank line (often the last) is skipped
                rows += 1
                _add_row(grouped, orders, columns, cells, row)
    except csv.Error as error:
        raise _file_problem(f"is not valid CSV at line {reader.line_num}: {error}") from None
    if not orders:
        raise _file_problem("has a header but no rows")
    return ParsedFile(orders, rows)


def _file_problem(message: str) -> InputValidationError:
    return InputValidationError([FieldProblem("file", message)], f"the file {message}")


def _check_header(header: list[str]) -> list[str]:
    problems = []
    known = frozenset(IMPORT_COLUMNS) | EXPORT_ONLY_COLUMNS
    for index, name in enumerate(header):
        if name not in known:
            problems.append(FieldProblem(name or f"column {index + 1}",
                                         "unknown column; the columns are "
                                         + ", ".join(IMPORT_COLUMNS)))
        elif header.index(name) != index:
            problems.append(FieldProblem(name, "is named twice in the header"))
    problems += [FieldProblem(name, "a required column is missing from the header")
                 for name in REQUIRED_COLUMNS if name not in header]
    if problems:
        raise InputValidationError(problems, "the header row does not fit the layout")
    return header


def _add_row(grouped: dict[tuple[str, str], ParsedOrder], orders: list[ParsedOrder],
             columns: list[str], cells: list[str], row: int) -> None:
    """Add one row to its order (a new one for a reference not seen yet)."""
    values = {name: cell.strip() for name, cell in zip(columns, cells, strict=False)
              if name not in EXPORT_ONLY_COLUMNS}
    reference = values.get("channel_order_ref", "")
    key = (values.get("channel", ""), reference)
    order = grouped.get(key) if reference else None
    if order is None:
        order = ParsedOrder([], _order_body(values))
        orders.append(order)
        if reference:
            grouped[key] = order
    else:  # a later row of the order: its order columns are blank or the same
        first = order.rows[0]
        for name in ORDER_COLUMNS:
            cell = values.get(name, "")
            if cell and cell != _order_cell(order.body, name):
                order.problems.append(RowProblem(
                    row, name, "validation_failed",
                    f"differs from row {first} of the same order ({reference})"))
    if len(cells) != len(columns):
        order.problems.append(RowProblem(row, "", "validation_failed",
                                         f"has {len(cells)} cells; the header has "
                                         f"{len(columns)}"))
    order.rows.append(row)
    line: dict[str, Any] = {name: values[name] for name in LINE_COLUMNS if values.get(name)}
    if _INTEGER.match(line.get("quantity", "")):
        line["quantity"] = int(line["quantity"])  # anything else is refused as not a number
    order.body["lines"].append(line)


def _order_body(values: dict[str, str]) -> dict[str, Any]:
    """The order columns of its first row, shaped as POST /orders takes them (a blank
    cell is left out)."""
    body: dict[str, Any] = {name: values[name] for name in ORDER_COLUMNS
                            if not name.startswith("ship_to_") and values.get(name)}
    body["shipping_address"] = {part: values[f"ship_to_{part}"] for part in ADDRESS_PARTS
                                if values.get(f"ship_to_{part}")}
    body["lines"] = []
    return body


def _order_cell(body: dict[str, Any], column: str) -> str:
    if column.startswith("ship_to_"):
        return str(body["shipping_address"].get(column.removeprefix("ship_to_"), ""))
    return str(body.get(column, ""))


def row_problems(rows: Sequence[int], problems: Sequence[FieldProblem],
                 code: str) -> list[RowProblem]:
    """Place problems reported against an order body (`lines/1/quantity`,
    `shipping_address/city`, `customer_id`) on the rows and columns of the file."""
    placed = []
    for problem in problems:
        parts = problem.field.split("/")
        row, column = rows[0], problem.field
        if parts[0] == "lines" and len(parts) > 1 and parts[1].isdigit() \
                and int(parts[1]) < len(rows):
            row, column = rows[int(parts[1])], "/".join(parts[2:])
        elif parts[0] == "shipping_address" and len(parts) > 1:
            column = "ship_to_" + parts[1]
        placed.append(RowProblem(row, column, code, problem.message))
    return placed


def failed_rows(rows: Sequence[int], problems: Sequence[RowProblem]) -> list[dict[str, Any]]:
    """The result file's lines for an order that is not imported: each problem, and each of
    its other rows, which is not imported with it; rows ascending."""
    named = {problem.row for problem in problems}
    first = min(named) if named else rows[0]
    others = [RowProblem(row, "", "order_not_imported",
                         f"not imported with its order (see row {first})")
              for row in rows if row not in named]
    return [asdict(problem) for problem in sorted([*problems, *others],
                                                  key=lambda problem: problem.row)]


def problems_of(error: OmsError, rows: Sequence[int]) -> list[RowProblem]:
    """Place an engine's refusal of an order on the rows of the file."""
    if isinstance(error, InputValidationError):
        return row_problems(rows, error.problems, error.code)
    column = ("channel_order_ref" if isinstance(error, DuplicateOrderError)
              else "channel" if isinstance(error, ForbiddenError) else "")
    return [RowProblem(rows[0], column, error.code, error.detail)]


# ----- drafts kept between the upload and the job -----

def draft_to_json(draft: OrderDraft) -> dict[str, Any]:
    """The draft as JSON (amounts as exact decimal strings)."""
    return json.loads(json.dumps(asdict(draft), default=str))  # type: ignore[no-any-return]


def draft_from_json(kept: dict[str, Any]) -> OrderDraft:
    """The draft `draft_to_json` kept."""
    return OrderDraft(
        customer_id=kept["customer_id"], currency=kept["currency"],
        service_level=kept["service_level"],
        shipping_address=Address(**kept["shipping_address"]),
        lines=[LineDraft(line["sku"], line["quantity"], Decimal(line["unit_price"]))
               for line in kept["lines"]],
        channel=kept["channel"], channel_order_ref=kept["channel_order_ref"],
        payment_terms=kept["payment_terms"], shipping_amount=Decimal(kept["shipping_amount"]),
        tax_amount=Decimal(kept["tax_amount"]))


# ----- the import -----

@dataclass(frozen=True)
class ImportedOrder:
    """One order of a checked file: its draft, or the problems of its rows."""

    rows: list[int]
    draft: OrderDraft | None
    problems: list[RowProblem]


# Capture a batch of drafts: the order or the refusal of each, in the drafts' order
# (`pipeline.receive_orders`; passed in because the pipeline builds on this folder).
CaptureBatch = Callable[[UnitOfWork, Actor, list[OrderDraft]], Sequence[Order | OmsError]]


def request_import(uow: UnitOfWork, actor: Actor, orders: Sequence[ImportedOrder],
                   rows: int) -> OrderImport:
    """Keep a checked file's orders and queue the job that captures them; what failed its
    checks is in the result file from now on."""
    record = OrderImport(channel=actor.channel if actor.role == CHANNEL else None,
                         actor_type=actor.type, actor_id=actor.id, actor_role=actor.role,
                         status=ImportStatus.QUEUED, total_rows=rows, done_rows=0, created=0,
                         failed_rows=0, next_seq=0, entries=len(orders), created_at=utcnow())
    uow.session.add(record)
    uow.session.flush()
    values = [{"import_id": record.id, "seq": seq, "rows": order.rows,
               "draft": None if order.draft is None else draft_to_json(order.draft),
               "outcome": ImportOutcome.PENDING if order.draft else ImportOutcome.FAILED,
               "problems": failed_rows(order.rows, order.problems) if order.problems else None}
              for seq, order in enumerate(orders)]
    for start in range(0, len(values), 5_000):
        uow.session.execute(insert(OrderImportEntry), values[start:start + 5_000])
    uow.enqueue_after_commit(IMPORT_JOB, record.id)
    return record


def capture_next_batch(uow: UnitOfWork, import_id: int, capture: CaptureBatch) -> bool:
    """Capture the import's next batch of orders and record what became of each, in the
    caller's transaction; return whether anything is left to do.

    A rerun resumes after the last batch committed (its progress is written in the same
    transaction as its orders), and when two runs race for a batch, the one that commits
    second finds the progress moved and undoes its batch: no order is captured twice.
    """
    record = uow.session.get(OrderImport, import_id)
    if record is None or record.status in (ImportStatus.DONE, ImportStatus.FAILED):
        return False
    start = record.next_seq
    actor = requester(record)
    entries = uow.session.execute(
        select(OrderImportEntry.id, OrderImportEntry.seq, OrderImportEntry.rows,
               OrderImportEntry.draft, OrderImportEntry.outcome)
        .where(OrderImportEntry.import_id == import_id, OrderImportEntry.seq >= start)
        .order_by(OrderImportEntry.seq).limit(IMPORT_BATCH)).all()
    if not entries:
        uow.session.execute(update(OrderImport).where(
            OrderImport.id == import_id, OrderImport.next_seq == start).values(
            status=ImportStatus.DONE, finished_at=utcnow()))
        return False
    pending = [entry for entry in entries if entry.outcome == ImportOutcome.PENDING]
    results = capture(uow, actor, [draft_from_json(entry.draft) for entry in pending])
    settled, created = [], 0
    failed = sum(len(entry.rows) for entry in entries if entry.outcome == ImportOutcome.FAILED)
    for entry, result in zip(pending, results, strict=True):
        if isinstance(result, OmsError):
            failed += len(entry.rows)
            settled.append({"id": entry.id, "outcome": ImportOutcome.FAILED, "order_id": None,
                            "problems": failed_rows(entry.rows,
                                                    problems_of(result, entry.rows))})
        else:
            created += 1
            settled.append({"id": entry.id, "outcome": ImportOutcome.CREATED,
                            "order_id": result.id, "problems": None})
    if settled:
        uow.session.execute(update(OrderImportEntry), settled)  # by primary key, one batch
    moved = uow.session.execute(update(OrderImport).where(
        OrderImport.id == import_id, OrderImport.next_seq == start).values(
        next_seq=entries[-1].seq + 1, status=ImportStatus.RUNNING,
        started_at=func.coalesce(OrderImport.started_at, utcnow()),
        done_rows=OrderImport.done_rows + sum(len(entry.rows) for entry in entries),
        created=OrderImport.created + created, failed_rows=OrderImport.failed_rows + failed))
    if moved.rowcount != 1:  # type: ignore[attr-defined]  # another run settled it first
        uow.rollback()
        return False
    return True


def fail_import(uow: UnitOfWork, import_id: int, reason: str) -> None:
    """Give an import up (its job failed for good); what it captured stays captured."""
    uow.session.execute(update(OrderImport).where(
        OrderImport.id == import_id,
        OrderImport.status.in_((ImportStatus.QUEUED, ImportStatus.RUNNING))).values(
        status=ImportStatus.FAILED, error=reason[:1000], finished_at=utcnow()))


def requester(record: OrderImport) -> Actor:
    """The actor the import's job captures as: whoever uploaded the file."""
    return Actor(type=record.actor_type, id=record.actor_id, role=record.actor_role,
                 channel=record.channel)


def get_import(uow: UnitOfWork, actor: Actor, import_id: int) -> OrderImport:
    """Return an import the actor may see.

    Raises:
        NotFoundError: no such import, or another channel's.
    """
    record = uow.session.scalar(select(OrderImport).where(
        OrderImport.id == import_id, visibility.imports(actor)))
    if record is None:
        raise NotFoundError("import", import_id)
    return record


RESULT_COLUMNS = ("row", "field", "code", "reason")


def result_file(open_uow: Callable[[], AbstractContextManager[UnitOfWork]], import_id: int,
                page: int = EXPORT_PAGE) -> Iterator[str]:
    """The import's result file as CSV text, in chunks: one line per problem of a row not
    imported, rows ascending (a row with two faults has two lines)."""
    yield _csv_text([RESULT_COLUMNS])
    after = -1
    while True:
        with open_uow() as uow:
            found = uow.session.execute(
                select(OrderImportEntry.seq, OrderImportEntry.problems)
                .where(OrderImportEntry.import_id == import_id,
                       OrderImportEntry.outcome == ImportOutcome.FAILED,
                       OrderImportEntry.seq > after)
                .order_by(OrderImportEntry.seq).limit(page)).all()
        if not found:
            return
        after = found[-1].seq
        yield _csv_text([[problem[name] for name in RESULT_COLUMNS]
                         for entry in found for problem in entry.problems or ()])


# ----- the export -----

EXPORT_FORMATS = ("csv", "ndjson")

# Read in the order of the CSV's columns, so that a row is written almost as it is read.
_ORDER_FIELDS = (Order.id, Order.status, Order.channel_order_ref, Order.channel,
                 Order.customer_id, Order.currency, Order.service_level, Order.payment_terms,
                 Order.shipping_amount, Order.tax_amount,
                 *(getattr(Order, f"ship_to_{part}") for part in ADDRESS_PARTS),
                 Order.subtotal, Order.total, Order.created_by, Order.created_at,
                 Order.updated_at)
_CURRENCY = 5
_ORDER_AMOUNTS, _ORDER_TIMES = (8, 9, 18, 19), (21, 22)
_LINE_FIELDS = (OrderLine.order_id, OrderLine.line_no, OrderLine.sku,
                OrderLine.quantity_ordered, OrderLine.unit_price, OrderLine.line_total,
                *(getattr(OrderLine, f"quantity_{name}") for name in QUANTITY_COLUMNS))
_LINE_AMOUNTS, _LINE_QUANTITIES = (4, 5), slice(6, 12)


def export_orders(open_uow: Callable[[], AbstractContextManager[UnitOfWork]], actor: Actor,
                  query: OrderQuery, form: str, page: int | None = None) -> Iterator[str]:
    """Every order the actor may see that matches the query's filters, oldest first, as
    text chunks of CSV (a header, then one row per order line) or NDJSON (one order per
    line, as `GET /orders/{id}` shows it).

    Each page of `page` orders is read in a short transaction of its own (two queries of
    plain columns, the same whatever the page), so memory stays flat whatever the count
    and no transaction stays open while the client reads; an order is in the export once,
    as it was when its page was read.
    """
    page = page or EXPORT_PAGE
    if form == "csv":
        yield _csv_text([EXPORT_COLUMNS])
    after = 0
    while True:
        with open_uow() as uow:
            orders, lines = _export_page(uow, actor, query, after, page)
        if not orders:
            return
        after = orders[-1][0]
        yield (_csv_text(_csv_rows(orders, lines)) if form == "csv"
               else "".join(json.dumps(order, separators=(",", ":")) + "\n"
                            for order in _json_orders(orders, lines)))


def _export_page(uow: UnitOfWork, actor: Actor, query: OrderQuery, after: int,
                 page: int) -> tuple[list[list[Any]], dict[int, list[list[Any]]]]:
    """A page of orders after the order `after`, and their lines, as lists of plain values
    in the CSV's order, amounts written with their currency's decimals."""
    connection = uow.session.connection()
    orders = [list(order) for order in connection.execute(
        filter_orders(select(*_ORDER_FIELDS), actor, query)
        .where(Order.id > after).order_by(Order.id).limit(page))]
    lines: dict[int, list[list[Any]]] = {order[0]: [] for order in orders}
    if not orders:
        return orders, lines
    money = _Amounts()
    for order in orders:
        for index in _ORDER_AMOUNTS:
            order[index] = money(order[index], order[_CURRENCY])
        for index in _ORDER_TIMES:
            order[index] = order[index].isoformat()
    currencies = {order[0]: order[_CURRENCY] for order in orders}
    # The lines of the same orders: the page's id range, under the same filters.
    for found in connection.execute(
            filter_orders(select(*_LINE_FIELDS).join(Order, Order.id == OrderLine.order_id),
                          actor, query)
            .where(Order.id > after, Order.id <= orders[-1][0])
            .order_by(OrderLine.order_id, OrderLine.line_no)):
        line = list(found)
        for index in _LINE_AMOUNTS:
            line[index] = money(line[index], currencies[line[0]])
        lines[line[0]].append(line)
    return orders, lines


class _Amounts:
    """Amounts written with their currency's decimals, as the API writes them."""

    def __init__(self) -> None:
        self._units: dict[str, Decimal] = {}

    def __call__(self, amount: Decimal, currency: str) -> str:
        unit = self._units.get(currency)
        if unit is None:
            unit = self._units[currency] = smallest_unit(currency)
        return str(amount.quantize(unit))


def _csv_rows(orders: list[list[Any]],
              lines: dict[int, list[list[Any]]]) -> Iterator[list[Any]]:
    for order in orders:
        for line in lines[order[0]]:
            yield order + line[1:]


def _json_orders(orders: list[list[Any]],
                 lines: dict[int, list[list[Any]]]) -> Iterator[dict[str, Any]]:
    for (order_id, status, reference, channel, customer_id, currency, service_level, terms,
         shipping, tax, *rest) in orders:
        address = dict(zip(ADDRESS_PARTS, rest[:8], strict=True))
        subtotal, total, created_by, created_at, updated_at = rest[8:]
        yield {
            "id": order_id, "status": status, "channel": channel,
            "channel_order_ref": reference, "customer_id": customer_id, "currency": currency,
            "service_level": service_level, "payment_terms": terms,
            "shipping_address": address,
            "lines": [{"line_no": line[1], "sku": line[2], "unit_price": line[4],
                       "line_total": line[5],
                       "quantities": {"ordered": line[3], **dict(zip(
                           QUANTITY_COLUMNS, line[_LINE_QUANTITIES], strict=True))}}
                      for line in lines[order_id]],
            "subtotal": subtotal, "shipping_amount": shipping, "tax_amount": tax,
            "total": total, "created_by": created_by, "created_at": created_at,
            "updated_at": updated_at,
        }


def _csv_text(rows: Iterator[list[Any]] | list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()

