"""The KPI dashboard: the numbers of GET /kpis, with their definitions, as tiles, charts
drawn on the server and tables. The page's query string is the API's (`/kpis?...`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from flask import current_app, render_template, request, url_for
from marshmallow import ValidationError

from api.console import charts
from api.console.auth import console_blueprint, current_user, page
from api.kpis import KpiQuerySchema, dashboards, kpi_query
from api.wiring import services
from engine.insights import kpis
from engine.status import OrderStatus

blp = console_blueprint("console_dashboard", __name__)

# Statuses as the orders chart stacks them: from received to completed, then the side ones.
STATUS_ORDER = [status.value for status in (
    OrderStatus.RECEIVED, OrderStatus.VALIDATED, OrderStatus.ALLOCATED, OrderStatus.RELEASED,
    OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.DELIVERED,
    OrderStatus.COMPLETED, OrderStatus.BACKORDERED, OrderStatus.ON_HOLD,
    OrderStatus.CANCELLED, OrderStatus.REJECTED)]
QUERY_FIELDS = ("from", "to", "group_by", "stage", "channel")


@blp.route("/dashboard")
@page("analyst", "ops")
def dashboard() -> Any:
    """KPIs of the orders captured in a period, per day, hour, channel or rule version."""
    loaded, problems = _query()
    board = None
    if not problems:
        with services().uow() as uow:
            board = dashboards().get(uow, current_user(), kpi_query(loaded))
    shown = {name: request.args.getlist(name) if name == "channel" else request.args.get(name)
             for name in QUERY_FIELDS}
    api_query = urlencode([(name, value) for name in QUERY_FIELDS
                           for value in request.args.getlist(name) if value])
    return render_template(
        "console/dashboard/dashboard.html", board=board, problems=problems, shown=shown,
        api_url="/kpis" + (f"?{api_query}" if api_query else ""),
        view=_view(board) if board else None, groupings=kpis.GROUPINGS, stages=kpis.STAGES,
        percent=percent, hours=hours, inbox_url=_inbox_url,
        last_day=(board.query.end - timedelta(days=1)).strftime("%Y-%m-%d") if board else None,
    ), 422 if problems else 200


def _query() -> tuple[dict[str, Any], dict[str, str]]:
    """Load the query string as GET /kpis does; empty form fields mean "not given"."""
    raw: dict[str, Any] = {name: value for name, value in request.args.items()
                           if value != "" and name != "channel"}
    channels = [value for value in request.args.getlist("channel") if value]
    if channels:
        raw["channel"] = channels
    try:
        return KpiQuerySchema().load(raw), {}
    except ValidationError as error:
        messages = error.normalized_messages()
        return {}, {name: " ".join(map(str, text)) if isinstance(text, list) else str(text)
                    for name, text in messages.items()}


def _inbox_url(queue: str) -> str | None:
    """The inbox filtered on a queue (its open holds), when this app has the inbox."""
    if "console_inbox.inbox" not in current_app.view_functions:
        return None
    return url_for("console_inbox.inbox", queue=queue)


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def hours(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} h" if value < 48 else f"{value / 24:.1f} d"


def _view(board: kpis.Dashboard) -> dict[str, Any]:
    """What the template shows: each KPI by key, the group labels, and the charts."""
    by_key = {kpi.key: kpi for kpi in board.kpis}
    groups = board.groups
    labels = [_short(board.query.group_by, group) for group in groups]

    def values(key: str, pick: Any) -> list[float | None]:
        found = by_key[key].by_group
        return [pick(found[group.key]) if group.key in found else None for group in groups]

    orders = by_key["orders"]
    statuses = [status for status in STATUS_ORDER if orders.total.parts.get(status)]
    over_time = board.query.group_by in ("day", "hour")
    rate_series = [
        charts.Series("fill rate", values("fill_rate", lambda f: f.value)),
        charts.Series("on-time delivery", values("on_time_delivery", lambda f: f.value)),
        charts.Series("perfect order", values("perfect_order", lambda f: f.value)),
        charts.Series("return rate", values("return_rate", lambda f: f.value)),
    ]
    cycle_series = [
        charts.Series("to shipment p50", values("cycle_to_shipment", lambda f: f.p50)),
        charts.Series("to shipment p90", values("cycle_to_shipment", lambda f: f.p90)),
        charts.Series("to delivery p50", values("cycle_to_delivery", lambda f: f.p50)),
        charts.Series("to delivery p90", values("cycle_to_delivery", lambda f: f.p90)),
    ]
    percent_axis = {"formatter": lambda v: f"{v * 100:.0f}%"}
    hours_axis = {"formatter": lambda v: f"{v:,.0f} h"}
    return {
        "kpi": by_key,
        "labels": labels,
        "orders_chart": charts.bars(
            "Orders captured, by their status now", labels,
            [charts.Series(status.replace("_", " "),
                           values("orders", lambda f, s=status: f.parts.get(s)))
             for status in statuses]),
        "rates_chart": (charts.lines("Rates", labels, rate_series, maximum=1.0, **percent_axis)
                        if over_time else charts.bars("Rates", labels, rate_series,
                                                      stacked=False, whole=False,
                                                      **percent_axis)),
        "cycle_chart": (charts.lines("Cycle time", labels, cycle_series, **hours_axis)
                        if over_time else charts.bars("Cycle time", labels, cycle_series,
                                                      stacked=False, whole=False,
                                                      **hours_axis)),
        "backlog_chart": charts.bars(
            "Backorders and holds", labels,
            [charts.Series("units waiting for stock", values("backorders", lambda f: f.value)),
             charts.Series("holds raised", values("exceptions", lambda f: f.count))],
            stacked=False),
        "rows": [(group, label, {key: kpi.by_group.get(group.key) for key, kpi in by_key.items()})
                 for group, label in zip(groups, labels, strict=True)
                 if any(group.key in kpi.by_group for kpi in board.kpis)],
    }


def _short(group_by: str, group: kpis.Group) -> str:
    if group_by == "day":
        return group.key[5:]  # MM-DD
    if group_by == "hour":
        return group.key[11:] + "h"
    if group_by == "rule_version":
        return group.key if not group.key.isdigit() else f"v{group.key}"
    return group.label
