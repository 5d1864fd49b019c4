"""KPIs: the dashboard's numbers, each with its definition, per day, hour, channel or rule
version."""

from __future__ import annotations

import threading
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from api.access import allow, current_actor
from api.problems import document_errors
from api.schemas import StrictSchema, any_of, text
from api.transactions import request_uow
from api.wiring import services
from engine.actors import Actor
from engine.insights import kpis
from engine.ports import UnitOfWork
from engine.visibility import sees_everything

blp = Blueprint("kpis", __name__, url_prefix="/kpis",
                description="KPIs computed from the record, with their definitions")
_document_errors = partial(document_errors, blp)

DEFAULT_DAYS = 30
CACHE_ENTRIES = 64


class DashboardCache:
    """The KPIs last computed for a query, kept OMS_KPI_CACHE_SECONDS in this process.

    One invalidation rule: an entry is dropped that many seconds after it was computed (the
    answer's `computed_at` says how fresh it is). KPIs over days of orders do not need
    to be fresher, and the page and the API then share the work.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Any, tuple[float, kpis.Dashboard]] = {}

    def get(self, uow: UnitOfWork, actor: Actor, query: kpis.KpiQuery) -> kpis.Dashboard:
        seconds = float(services().settings.kpi_cache_seconds)
        key = (query, "people" if sees_everything(actor) else actor.label)
        now = clock.monotonic()
        with self._lock:
            found = self._entries.get(key)
        if found is not None and now - found[0] < seconds:
            return found[1]
        board = kpis.dashboard(uow, actor, query)
        if seconds > 0:
            with self._lock:
                self._entries = {k: v for k, v in self._entries.items()
                                 if now - v[0] < seconds}
                if len(self._entries) >= CACHE_ENTRIES:
                    self._entries.pop(min(self._entries, key=lambda k: self._entries[k][0]))
                self._entries[key] = (now, board)
        return board


def dashboards() -> DashboardCache:
    """This app's cache of dashboards."""
    cache: DashboardCache = current_app.extensions.setdefault("oms_kpi_cache", DashboardCache())
    return cache


class KpiQuerySchema(StrictSchema):
    from_ = fields.Date(data_key="from", metadata={
        "description": "first day of capture (UTC, included); default: 29 days before `to`"})
    to = fields.Date(metadata={"description": "last day of capture (UTC, included); "
                                              "default: today"})
    group_by = fields.String(load_default="day", validate=validate.OneOf(kpis.GROUPINGS),
                             metadata={"description": "rule_version: the version of `stage`'s "
                                                      "rule set that decided the order last"})
    stage = fields.String(load_default="sourcing", validate=validate.OneOf(kpis.STAGES))
    channel = any_of(text(64))

    @validates_schema
    def _period(self, data: dict[str, Any], **kwargs: Any) -> None:
        start, end = data.get("from_"), data.get("to")
        if start is not None and end is not None and end < start:
            raise ValidationError("must be on or after from", "to")


def kpi_query(loaded: dict[str, Any], today: date | None = None) -> kpis.KpiQuery:
    """Turn a loaded KpiQuerySchema into the engine's query: whole UTC days, `to` included."""
    last = loaded.get("to") or today or datetime.now(UTC).date()
    first = loaded.get("from_") or last - timedelta(days=DEFAULT_DAYS - 1)
    return kpis.KpiQuery(
        start=datetime.combine(first, time(), UTC),
        end=datetime.combine(last + timedelta(days=1), time(), UTC),
        group_by=loaded["group_by"], stage=loaded["stage"],
        channels=tuple(loaded.get("channel") or ()))


class FigureSchema(Schema):
    value = fields.Float(allow_none=True)
    numerator = fields.Float(allow_none=True)
    denominator = fields.Float(allow_none=True)
    p50 = fields.Float(allow_none=True)
    p90 = fields.Float(allow_none=True)
    count = fields.Integer(allow_none=True)
    parts = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True))


class GroupFigureSchema(FigureSchema):
    group = fields.String()


class KpiSchema(Schema):
    key = fields.String()
    name = fields.String()
    unit = fields.String()
    definition = fields.String()
    total = fields.Nested(FigureSchema)
    by_group = fields.List(fields.Nested(GroupFigureSchema))
    rows = fields.List(fields.Dict(keys=fields.String()))


class GroupSchema(Schema):
    key = fields.String()
    label = fields.String()


class DashboardSchema(Schema):
    start = fields.AwareDateTime()
    end = fields.AwareDateTime()
    group_by = fields.String()
    stage = fields.String()
    channels = fields.List(fields.String())
    computed_at = fields.AwareDateTime()
    groups = fields.List(fields.Nested(GroupSchema))
    kpis = fields.List(fields.Nested(KpiSchema))


def as_document(board: kpis.Dashboard) -> dict[str, Any]:
    """The dashboard as the API shows it: each KPI's figure for every group, in order."""
    return {
        "start": board.query.start, "end": board.query.end,
        "group_by": board.query.group_by, "stage": board.query.stage,
        "channels": list(board.query.channels), "computed_at": board.computed_at,
        "groups": board.groups,
        "kpis": [{"key": kpi.key, "name": kpi.name, "unit": kpi.unit,
                  "definition": kpi.definition, "total": kpi.total, "rows": kpi.rows,
                  "by_group": [{"group": group.key, **vars(kpi.by_group[group.key])}
                               for group in board.groups if group.key in kpi.by_group]}
                 for kpi in board.kpis],
    }


@blp.route("", methods=["GET"])
@allow("analyst", "ops", scope="global")
@_document_errors(401, 403, 422)
@blp.arguments(KpiQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, DashboardSchema)
def get_kpis(query: dict[str, Any]) -> dict[str, Any]:
    """Compute the KPIs of the orders captured from `from` to `to` (UTC days, both
    included), in total and per day, hour, channel or rule version of a stage; each KPI
    carries its definition. Groups without orders are left out of `by_group`. The same
    query within a minute is answered from the last computation (`computed_at`)."""
    board = dashboards().get(request_uow(), current_actor(), kpi_query(query))
    return as_document(board)
