"""Order pages for operations: search, and one order with everything about it.

The search page's query string is the REST query of `GET /orders` (the same schema loads
both), so a filtered page is a URL to share and the same query works on the API. The
order page reads `engine.overview`; its actions (hold, release, cancel what has not
shipped, record a return) load the REST routes' schemas and call their engine use cases.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from flask import flash, redirect, render_template, request, url_for
from marshmallow import Schema, ValidationError, fields

from api.console.auth import console_blueprint, current_user, page
from api.fulfilment import ReturnSchema
from api.orders import order_query
from api.problems import flatten_messages, response_for
from api.schemas import CancelSchema, NoteSchema, OrderQuerySchema, ReasonSchema, encode_cursor
from api.wiring import services
from engine import overview, pipeline
from engine.errors import InputValidationError, NotFoundError, OmsError
from engine.finance import returns
from engine.fulfilment import cancelling
from engine.iso import smallest_unit
from engine.ports import UnitOfWork
from engine.status import OrderStatus

blp = console_blueprint("console_orders", __name__)

MAX_ORDER_ID = 9223372036854775807
ORDER_PATH = f"/orders/<int(min=1, max={MAX_ORDER_ID}):order_id>"
# The search form's fields, in the order shown (all are REST query parameters).
TEXT_FILTERS = (("channel_order_ref", "Channel reference"), ("tracking_number", "Tracking number"),
                ("customer_name", "Customer name"), ("customer_id", "Customer id"),
                ("sku", "SKU"), ("channel", "Channel"))
TIME_FILTERS = (("created_from", "Created from"), ("created_to", "Created before"),
                ("updated_from", "Changed since"))
STATUS_BADGES = {
    "on_hold": "warn", "backordered": "warn", "rejected": "bad", "cancelled": "bad",
    "completed": "ok", "delivered": "ok", "shipped": "ok", "partially_shipped": "info",
    "released": "info", "allocated": "info",
}


@blp.app_template_filter("money")
def money(amount: Any, currency: str) -> str:
    """An amount with its currency's decimals ("219.30", "1500"), as the API writes it."""
    if amount is None:
        return ""
    return str(Decimal(amount).quantize(smallest_unit(currency)))


@blp.app_template_filter("status_badge")
def status_badge(status: Any) -> str:
    """The badge class of an order status."""
    return STATUS_BADGES.get(str(getattr(status, "value", status)), "")


@blp.route("/orders")
@page("ops", "analyst")
def search() -> Any:
    """Search orders with the filters of `GET /orders`; newest first, a page at a time."""
    given = list(request.args.items(multi=True))
    kept = [(name, value) for name, value in given if value.strip()]
    if len(kept) != len(given):  # empty form fields: the page's URL is the REST query
        return redirect(_search_url(kept), code=303)
    problems, loaded = _load_query(request.args)
    rows: list[overview.OrderRow] = []
    next_url = None
    if not problems:
        with services().uow() as uow:
            found = overview.search_orders(uow, current_user(), order_query(loaded))
            rows = found.rows
            if found.next_before_id is not None:
                following = [(n, v) for n, v in kept if n != "cursor"]
                following.append(("cursor", encode_cursor({"before": found.next_before_id})))
                next_url = _search_url(following)
            return _render_search(rows, problems, kept, next_url)
    return _render_search(rows, problems, kept, next_url, status=422)


@blp.route("/orders/go")
@page("ops", "analyst")
def go_to_order() -> Any:
    """Open an order by its number (the search page's "Order number" box)."""
    number = request.args.get("id", "").strip().lstrip("#")
    if number.isdigit() and 1 <= int(number) <= MAX_ORDER_ID:
        return redirect(url_for(".order_page", order_id=int(number)), code=303)
    flash(f"“{number}” is not an order number", "error")
    return redirect(url_for(".search"), code=303)


@blp.route(ORDER_PATH)
@page("ops", "analyst")
def order_page(order_id: int) -> Any:
    """One order: lines, fulfilment, shipments, returns, ledger, holds and its timeline."""
    return _render_order(order_id)


@blp.route(ORDER_PATH + "/hold", methods=["POST"])
@page("ops")
def hold(order_id: int) -> Any:
    """Put the order on hold for review, as `POST /orders/{id}/hold` does."""
    data = _form(ReasonSchema(), {"reason": request.form.get("reason", "")})
    return _act(order_id, "hold", data,
                lambda uow, loaded: pipeline.hold(uow, current_user(), order_id,
                                                  loaded["reason"]),
                "The order is on hold.")


@blp.route(ORDER_PATH + "/release-hold", methods=["POST"])
@page("ops")
def release_hold(order_id: int) -> Any:
    """Release the order's holds, as `POST /orders/{id}/release-hold` does."""
    note = request.form.get("note", "").strip()
    data = _form(NoteSchema(), {"note": note} if note else {})
    return _act(order_id, "release", data,
                lambda uow, loaded: pipeline.resume_after_hold(uow, current_user(), order_id,
                                                               loaded.get("note")),
                "The hold is released; the order goes on from where it was held.")


@blp.route(ORDER_PATH + "/cancel", methods=["POST"])
@page("ops")
def cancel(order_id: int) -> Any:
    """Cancel what has not shipped (everything, or units of lines), as `POST /orders/{id}/
    cancel` does."""
    body: dict[str, Any] = {"reason": request.form.get("reason", "")}
    if request.form.get("scope") != "everything":
        body["lines"] = _line_quantities("cancel-", "line_no", int)
    data = _form(CancelSchema(), body)

    def run(uow: UnitOfWork, loaded: dict[str, Any]) -> Any:
        lines = loaded.get("lines")
        return cancelling.cancel_order(
            uow, current_user(), order_id, loaded["reason"],
            None if lines is None else [cancelling.LineToCancel(**line) for line in lines])

    return _act(order_id, "cancel", data, run, "Cancelled what was asked.")


@blp.route(ORDER_PATH + "/returns", methods=["POST"])
@page("ops")
def record_return(order_id: int) -> Any:
    """Record goods back from the customer, as `POST /orders/{id}/returns` does."""
    data = _form(ReturnSchema(), {"reason": request.form.get("reason", ""),
                                  "restock": request.form.get("restock") == "yes",
                                  "lines": _line_quantities("return-", "sku", str)})

    def run(uow: UnitOfWork, loaded: dict[str, Any]) -> Any:
        units = [returns.ReturnedUnits(line["sku"], line["quantity"])
                 for line in loaded["lines"]]
        return returns.record_return(uow, current_user(), order_id, units, loaded["reason"],
                                     loaded["restock"])

    return _act(order_id, "return", data, run, "The return is recorded; its credit follows.")


def _load_query(args: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """Load the page's query as the REST route does: its schema, repeats only for lists."""
    schema = OrderQuerySchema()
    raw: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name in args:
        field = schema.fields.get(name)
        values = args.getlist(name)
        if field is None or isinstance(field, fields.List):
            raw[name] = values
        elif len(values) > 1:
            problems[name] = "give it once"
        else:
            raw[name] = values[0]
    try:
        loaded: dict[str, Any] = schema.load(raw)
    except ValidationError as error:
        problems.update(_flatten(error.messages))
        return problems, {}
    return problems, loaded


def _flatten(messages: Any) -> dict[str, str]:
    """marshmallow's nested messages by field, as the API names them ("lines/0/quantity");
    a problem of the whole form under "form"."""
    flat: dict[str, str] = {}
    for problem in flatten_messages(messages, "body"):
        field = problem["field"] or "form"
        flat[field] = f"{flat[field]} {problem['message']}" if field in flat else problem["message"]
    return flat


def _search_url(pairs: list[tuple[str, str]]) -> str:
    return url_for(".search") + (f"?{urlencode(pairs)}" if pairs else "")


def _render_search(rows: list[overview.OrderRow], problems: dict[str, str],
                   kept: list[tuple[str, str]], next_url: str | None, status: int = 200) -> Any:
    chosen: dict[str, list[str]] = {}
    for name, value in kept:
        chosen.setdefault(name, []).append(value)
    api_query = urlencode([(n, v) for n, v in kept])
    return render_template(
        "console/orders/search.html", rows=rows, problems=problems, chosen=chosen,
        statuses=[status.value for status in OrderStatus], text_filters=TEXT_FILTERS,
        shown={name for name, _ in TEXT_FILTERS + TIME_FILTERS} | {"status"},
        time_filters=TIME_FILTERS, next_url=next_url, api_query=api_query,
        first_page_url=_search_url([(n, v) for n, v in kept if n != "cursor"])
        if "cursor" in chosen else None), status


def _form(schema: Schema, body: dict[str, Any]) -> dict[str, Any] | dict[str, str]:
    """Load a form as its REST route loads the JSON body: {"ok": data} or the problems."""
    try:
        return {"ok": schema.load(body)}
    except ValidationError as error:
        return {"problems": _flatten(error.messages)}


def _line_quantities(prefix: str, key: str, kind: Callable[[str], Any]) -> list[dict[str, Any]]:
    """The per-line quantity boxes of a form ("cancel-2" = 1): the lines with a quantity."""
    lines = []
    for name, value in request.form.items():
        if name.startswith(prefix) and value.strip() not in ("", "0"):
            try:
                quantity: Any = int(value)
            except ValueError:
                quantity = value  # the schema says what is wrong with it
            lines.append({key: kind(name[len(prefix):]), "quantity": quantity})
    return lines


def _act(order_id: int, form: str, data: dict[str, Any],
         run: Callable[[UnitOfWork, dict[str, Any]], Any], done: str) -> Any:
    """Run one action as one transaction; back to the order page, with what happened."""
    if "problems" in data:
        return _render_order(order_id, form=form, problems=data["problems"], status=422)
    with services().uow() as uow:
        try:
            run(uow, data["ok"])
            uow.commit()
        except NotFoundError:
            raise
        except InputValidationError as error:
            uow.rollback()
            problems = {problem.field: problem.message for problem in error.problems}
            return _render_order(order_id, form=form, problems=problems or
                                 {"form": error.detail}, status=422)
        except OmsError as error:
            uow.rollback()
            answered = response_for(error)
            return _render_order(order_id, form=form, problems={"form": error.detail},
                                 status=answered.status_code if answered else 409)
    flash(done, "success")
    return redirect(url_for(".order_page", order_id=order_id), code=303)


def _render_order(order_id: int, form: str | None = None,
                  problems: dict[str, str] | None = None, status: int = 200) -> Any:
    with services().uow() as uow:
        seen = overview.order_overview(uow, current_user(), order_id)
        return render_template(
            "console/orders/order.html", o=seen, order=seen.order,
            may_act=current_user().holds("ops"), form=form, problems=problems or {},
            posted=request.form if request.method == "POST" else {}), status
