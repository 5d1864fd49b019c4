"""The dashboard's KPIs, computed from the record by SQL aggregates.

Every KPI looks at the orders captured in a period (UTC, start included, end not), grouped
by the day or hour of capture, the channel, or the version of a stage's rule set that
decided the order last. Each query returns one row per group (or per percentile rank), so
the work stays in the database whatever the number of orders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    FunctionElement,
    Select,
    String,
    Subquery,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler

from engine import visibility
from engine.actors import Actor
from engine.errors import FieldProblem, InputValidationError
from engine.insights.formulas import (
    AGE_BUCKETS,
    DAMAGE_WORD,
    DEFINITION,
    PERCENTILES,
    day_keys,
    hour_keys,
    nearest_rank,
    perfect_order_product,
    share,
)
from engine.ports import UnitOfWork
from engine.record import (
    FulfilmentGroup,
    Hold,
    Order,
    OrderDecision,
    OrderLine,
    OrderReturn,
    RuleSetVersion,
    Shipment,
    ShipmentLine,
    utcnow,
)
from engine.status import OrderStatus

GROUPINGS = ("day", "hour", "channel", "rule_version")
STAGES = ("validation", "sourcing", "carrier", "escalation")
MAX_DAYS = 366
MAX_HOURS = 24 * 31
FINISHED = (OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.COMPLETED)
DELIVERED = (OrderStatus.DELIVERED, OrderStatus.COMPLETED)
NO_VERSION = "none"
TOP_REASONS = 10


# ----- the few expressions the two backends spell differently -----

class day_of(FunctionElement[str]):
    """The UTC day of a timestamp, as YYYY-MM-DD."""

    type = String()
    inherit_cache = True


class hour_of(FunctionElement[str]):
    """The UTC hour of a timestamp, as YYYY-MM-DDTHH."""

    type = String()
    inherit_cache = True


class seconds_between(FunctionElement[float]):
    """Seconds from the second timestamp to the first."""

    type = Float()
    inherit_cache = True


@compiles(day_of)
def _day_of(element: day_of, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


@compiles(day_of, "sqlite")
def _day_of_sqlite(element: day_of, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strftime('%Y-%m-%d', {compiler.process(element.clauses, **kw)})"


@compiles(hour_of)
def _hour_of(element: hour_of, compiler: SQLCompiler, **kw: Any) -> str:
    return (f"to_char({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24')")


@compiles(hour_of, "sqlite")
def _hour_of_sqlite(element: hour_of, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strftime('%Y-%m-%dT%H', {compiler.process(element.clauses, **kw)})"


@compiles(seconds_between)
def _seconds_between(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"


@compiles(seconds_between, "sqlite")
def _seconds_between_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


# ----- what is asked and what comes back -----

@dataclass(frozen=True)
class KpiQuery:
    start: datetime
    end: datetime
    group_by: str = "day"
    stage: str = "sourcing"  # whose rule-set versions group_by=rule_version means
    channels: tuple[str, ...] = ()


@dataclass
class Figure:
    """One KPI's numbers, for the whole period or one group."""

    value: float | None = None
    numerator: float | None = None
    denominator: float | None = None
    p50: float | None = None
    p90: float | None = None
    count: int | None = None
    parts: dict[str, float | int | None] = field(default_factory=dict)


@dataclass
class Kpi:
    key: str
    name: str
    unit: str
    definition: str
    total: Figure
    by_group: dict[str, Figure]
    rows: list[dict[str, Any]] = field(default_factory=list)  # a table: carriers, queues...


@dataclass(frozen=True)
class Group:
    key: str
    label: str


@dataclass
class Dashboard:
    query: KpiQuery
    groups: list[Group]
    kpis: list[Kpi]
    computed_at: datetime

    def kpi(self, key: str) -> Kpi:
        return next(kpi for kpi in self.kpis if kpi.key == key)


def _kpi(key: str, total: Figure, by_group: dict[str, Figure],
         rows: list[dict[str, Any]] | None = None) -> Kpi:
    definition = DEFINITION[key]
    return Kpi(key, definition.name, definition.unit, definition.text, total, by_group,
               rows or [])


# ----- the use case -----

def check_query(query: KpiQuery) -> None:
    """Refuse a period or grouping the dashboard does not compute.

    Raises:
        InputValidationError: naming the field.
    """
    problems: list[FieldProblem] = []
    if query.end <= query.start:
        problems.append(FieldProblem("to", "must be after from"))
    elif query.end - query.start > timedelta(days=MAX_DAYS):
        problems.append(FieldProblem("to", f"the period may span at most {MAX_DAYS} days"))
    elif (query.group_by == "hour"
          and query.end - query.start > timedelta(hours=MAX_HOURS)):
        problems.append(FieldProblem("group_by", f"by hour, the period may span at most "
                                     f"{MAX_HOURS // 24} days"))
    if query.group_by not in GROUPINGS:
        problems.append(FieldProblem("group_by", f"must be one of {', '.join(GROUPINGS)}"))
    if query.stage not in STAGES:
        problems.append(FieldProblem("stage", f"must be one of {', '.join(STAGES)}"))
    if problems:
        raise InputValidationError(problems)


def dashboard(uow: UnitOfWork, actor: Actor, query: KpiQuery,
              now: datetime | None = None) -> Dashboard:
    """Compute every KPI for the orders captured in the period, in total and per group."""
    check_query(query)
    now = now or utcnow()
    session = uow.session
    scope = _scope(actor, query)
    kpis = [
        _orders(session, scope),
        *_cycle_times(session, scope),
        _fill_rate(session, scope),
        *_delivered(session, scope),
        _backorders(session, scope, now),
        _returns(session, scope),
        _exceptions(session, scope, now),
        _carriers(session, scope),
    ]
    return Dashboard(query, _groups(session, query, kpis), kpis, now)


def _scope(actor: Actor, query: KpiQuery) -> Subquery:
    """The orders of the period this actor may see: (order_id, grp, created_at, status)."""
    group: Any
    if query.group_by == "day":
        group = day_of(Order.created_at)
    elif query.group_by == "hour":
        group = hour_of(Order.created_at)
    elif query.group_by == "channel":
        group = Order.channel
    else:
        version = (select(RuleSetVersion.version)
                   .join(OrderDecision, OrderDecision.rule_set_version_id == RuleSetVersion.id)
                   .where(OrderDecision.order_id == Order.id, OrderDecision.stage == query.stage)
                   .order_by(OrderDecision.id.desc()).limit(1).scalar_subquery())
        group = func.coalesce(cast(version, String), NO_VERSION)
    statement = select(Order.id.label("order_id"), group.label("grp"),
                       Order.created_at.label("created_at"), Order.status.label("status")).where(
        Order.created_at >= query.start, Order.created_at < query.end,
        visibility.orders(actor))
    if query.channels:
        statement = statement.where(Order.channel.in_(query.channels))
    return statement.subquery("scope")


def _groups(session: Session, query: KpiQuery, kpis: list[Kpi]) -> list[Group]:
    """The groups to show, in their natural order; every day or hour of the period."""
    if query.group_by == "day":
        return [Group(key, key) for key in day_keys(query.start, query.end)]
    if query.group_by == "hour":
        return [Group(key, key[5:].replace("T", " ") + ":00")
                for key in hour_keys(query.start, query.end)]
    seen = set(kpis[0].by_group)  # every order is counted by the first KPI
    if query.group_by == "channel":
        return [Group(key, key) for key in sorted(seen)]
    versions = {row.version: row for row in session.execute(
        select(RuleSetVersion.version, RuleSetVersion.state, RuleSetVersion.published_at,
               RuleSetVersion.published_by, RuleSetVersion.comment).where(
            RuleSetVersion.stage == query.stage,
            cast(RuleSetVersion.version, String).in_(seen)))}
    groups = []
    for key in sorted(seen, key=lambda k: (k == NO_VERSION, int(k) if k.isdigit() else 0)):
        row = versions.get(int(key)) if key.isdigit() else None
        if row is None:
            groups.append(Group(key, f"{query.stage}: no decision" if key == NO_VERSION
                                else f"{query.stage} v{key}"))
            continue
        published = (f", published {row.published_at:%Y-%m-%d %H:%M} by {row.published_by}"
                     if row.published_at else "")
        groups.append(Group(key, f"{query.stage} v{key} ({row.state}{published})"))
    return groups


def _rate_figures(rows: Any) -> tuple[Figure, dict[str, Figure]]:
    """Turn rows of (grp, numerator, denominator) into figures per group and in total."""
    by_group: dict[str, Figure] = {}
    numerator = denominator = 0.0
    for grp, num, den in rows:
        num, den = float(num or 0), float(den or 0)
        by_group[grp] = Figure(share(num, den), num, den)
        numerator, denominator = numerator + num, denominator + den
    return Figure(share(numerator, denominator), numerator, denominator), by_group


# ----- the KPIs -----

def _orders(session: Session, scope: Subquery) -> Kpi:
    rows = session.execute(select(scope.c.grp, scope.c.status, func.count())
                           .group_by(scope.c.grp, scope.c.status))
    by_group: dict[str, Figure] = {}
    total = Figure(count=0)
    for grp, status, count in rows:
        status = OrderStatus(status).value
        figure = by_group.setdefault(grp, Figure(count=0))
        figure.parts[status] = count
        figure.count = (figure.count or 0) + count
        total.parts[status] = int(total.parts.get(status) or 0) + count
        total.count = (total.count or 0) + count
    for figure in (total, *by_group.values()):
        figure.value = figure.count
    return _kpi("orders", total, by_group)


def _percentiles(session: Session, times: Subquery, grouped: bool) -> dict[str, Figure]:
    """Nearest-rank p50 and p90 of `times.c.hours` per group (or over all: key '*')."""
    group = times.c.grp if grouped else literal_column("'*'")
    ranked = select(group.label("grp"), times.c.hours,
                    func.row_number().over(partition_by=group if grouped else None,
                                           order_by=times.c.hours).label("rn"),
                    func.count().over(partition_by=group if grouped else None).label("n")
                    ).subquery("ranked")
    wanted = or_(*(ranked.c.rn == nearest_rank(percent, ranked.c.n) for percent in PERCENTILES))
    figures: dict[str, Figure] = {}
    for grp, hours, rank, count in session.execute(
            select(ranked.c.grp, ranked.c.hours, ranked.c.rn, ranked.c.n).where(wanted)):
        figure = figures.setdefault(grp, Figure(count=count))
        for percent in PERCENTILES:
            if rank == nearest_rank(percent, count):
                setattr(figure, f"p{percent}", float(hours))
        figure.value = figure.p50
    return figures


def _cycle_times(session: Session, scope: Subquery) -> list[Kpi]:
    shipped = (select(Shipment.order_id, func.min(Shipment.shipped_at).label("at"))
               .where(Shipment.shipped_at.is_not(None),
                      Shipment.order_id.in_(select(scope.c.order_id)))
               .group_by(Shipment.order_id).subquery("first_shipped"))
    delivered = (select(Shipment.order_id, func.max(Shipment.delivered_at).label("at"))
                 .where(Shipment.order_id.in_(select(scope.c.order_id).where(
                     scope.c.status.in_(DELIVERED))))
                 .group_by(Shipment.order_id)
                 .having(func.count() == func.count(Shipment.delivered_at))
                 .subquery("last_delivered"))
    kpis = []
    for key, reached in (("cycle_to_shipment", shipped), ("cycle_to_delivery", delivered)):
        times = (select(scope.c.grp,
                        (seconds_between(reached.c.at, scope.c.created_at) / 3600.0)
                        .label("hours"))
                 .join(reached, reached.c.order_id == scope.c.order_id).subquery("times"))
        by_group = _percentiles(session, times, grouped=True)
        total = _percentiles(session, times, grouped=False).get("*", Figure(count=0))
        kpis.append(_kpi(key, total, by_group))
    return kpis


def _fill_rate(session: Session, scope: Subquery) -> Kpi:
    first = (select(FulfilmentGroup.order_id,
                    func.min(FulfilmentGroup.decision_id).label("decision_id"))
             .where(FulfilmentGroup.order_id.in_(select(scope.c.order_id)))
             .group_by(FulfilmentGroup.order_id).subquery("first_allocation"))
    filled = (select(Shipment.order_id, func.sum(ShipmentLine.quantity).label("units"))
              .join(ShipmentLine, ShipmentLine.shipment_id == Shipment.id)
              .join(FulfilmentGroup, FulfilmentGroup.id == Shipment.group_id)
              .join(first, and_(first.c.order_id == FulfilmentGroup.order_id,
                                first.c.decision_id == FulfilmentGroup.decision_id))
              .where(Shipment.shipped_at.is_not(None))
              .group_by(Shipment.order_id).subquery("filled"))
    ordered = (select(OrderLine.order_id, func.sum(OrderLine.quantity_ordered).label("units"))
               .where(OrderLine.order_id.in_(select(scope.c.order_id).where(
                   scope.c.status.in_(FINISHED))))
               .group_by(OrderLine.order_id).subquery("ordered"))
    rows = session.execute(
        select(scope.c.grp,
               func.sum(func.coalesce(filled.c.units, 0)),
               func.sum(ordered.c.units))
        .join(ordered, ordered.c.order_id == scope.c.order_id)
        .outerjoin(filled, filled.c.order_id == scope.c.order_id)
        .group_by(scope.c.grp))
    total, by_group = _rate_figures(rows)
    return _kpi("fill_rate", total, by_group)


def _delivered(session: Session, scope: Subquery) -> list[Kpi]:
    """On-time delivery and the perfect order, from one row per delivered order."""
    packages = (select(Shipment.order_id,
                       func.count().label("packages"),
                       func.count(FulfilmentGroup.promised_at).label("promised"),
                       func.sum(case((Shipment.delivered_at > FulfilmentGroup.promised_at, 1),
                                     else_=0)).label("late"))
                .join(FulfilmentGroup, FulfilmentGroup.id == Shipment.group_id)
                .where(Shipment.order_id.in_(select(scope.c.order_id).where(
                    scope.c.status.in_(DELIVERED))))
                .group_by(Shipment.order_id).subquery("packages"))
    units = (select(OrderLine.order_id,
                    func.sum(OrderLine.quantity_ordered).label("ordered"),
                    func.sum(OrderLine.quantity_delivered).label("delivered"))
             .where(OrderLine.order_id.in_(select(scope.c.order_id).where(
                 scope.c.status.in_(DELIVERED))))
             .group_by(OrderLine.order_id).subquery("units"))
    promised = packages.c.promised == packages.c.packages
    on_time = and_(promised, packages.c.late == 0)
    complete = units.c.delivered >= units.c.ordered
    undamaged = ~exists().where(OrderReturn.order_id == scope.c.order_id,
                                func.lower(OrderReturn.reason).contains(DAMAGE_WORD))
    unheld = ~exists().where(Hold.order_id == scope.c.order_id)

    def counted(condition: ColumnElement[bool]) -> Any:
        return func.sum(case((condition, 1), else_=0))

    rows = session.execute(
        select(scope.c.grp, func.count(), counted(promised), counted(on_time),
               counted(complete), counted(undamaged), counted(unheld),
               counted(and_(on_time, complete, undamaged, unheld)))
        .join(packages, packages.c.order_id == scope.c.order_id)
        .join(units, units.c.order_id == scope.c.order_id)
        .group_by(scope.c.grp)).all()
    on_time_total, on_time_groups = _rate_figures(
        (grp, timely, with_promise) for grp, _, with_promise, timely, *_ in rows)
    perfect_total, perfect_groups = _rate_figures(
        (grp, perfect, delivered) for grp, delivered, *_, perfect in rows)
    sums = [0.0] * 4
    for grp, delivered, _, timely, whole, intact, clean, _ in rows:
        components = (timely, whole, intact, clean)
        perfect_groups[grp].parts = _components(components, delivered)
        sums = [total + float(part or 0) for total, part in zip(sums, components, strict=True)]
    perfect_total.parts = _components(sums, perfect_total.denominator)
    return [_kpi("on_time_delivery", on_time_total, on_time_groups),
            _kpi("perfect_order", perfect_total, perfect_groups)]


def _components(counts: Any, delivered: float | None) -> dict[str, float | int | None]:
    names = ("on_time", "complete", "undamaged", "without_exception")
    parts = {name: share(count, delivered) for name, count in zip(names, counts, strict=True)}
    return {**parts, "product_form": perfect_order_product(*parts.values())}


def _age_columns(age_days: Any, weight: Any) -> list[Any]:
    """Sums of `weight` for each age bucket."""
    return [func.sum(case((and_(age_days >= low, age_days < high) if high is not None
                           else age_days >= low, weight), else_=0)).label(name)
            for name, low, high in AGE_BUCKETS]


def _backorders(session: Session, scope: Subquery, now: datetime) -> Kpi:
    first_sourced = (select(OrderDecision.evaluated_at).where(
        OrderDecision.order_id == scope.c.order_id, OrderDecision.stage == "sourcing")
        .order_by(OrderDecision.id).limit(1).scalar_subquery())
    waiting = (select(scope.c.grp, scope.c.order_id,
                      func.sum(OrderLine.quantity_backordered).label("units"),
                      (seconds_between(literal(now, Order.created_at.type), func.coalesce(
                          first_sourced, scope.c.created_at)) / 86400.0).label("age_days"))
               .join(OrderLine, OrderLine.order_id == scope.c.order_id)
               .where(OrderLine.quantity_backordered > 0)
               .group_by(scope.c.grp, scope.c.order_id, scope.c.created_at)
               .subquery("waiting"))
    ages = _age_columns(waiting.c.age_days, waiting.c.units)
    statement: Select[Any] = select(waiting.c.grp, func.sum(waiting.c.units), func.count(),
                                    func.max(waiting.c.age_days), *ages).group_by(waiting.c.grp)
    by_group: dict[str, Figure] = {}
    total = Figure(value=0, count=0, parts={name: 0 for name, *_ in AGE_BUCKETS})
    oldest: float | None = None
    for grp, units, orders, age, *buckets in session.execute(statement):
        parts: dict[str, float | int | None] = {
            name: int(n or 0) for (name, *_), n in zip(AGE_BUCKETS, buckets, strict=True)}
        by_group[grp] = Figure(value=int(units or 0), count=orders, parts=parts)
        total.value = (total.value or 0) + int(units or 0)
        total.count = (total.count or 0) + orders
        for name, n in parts.items():
            total.parts[name] = int(total.parts[name] or 0) + int(n or 0)
        oldest = max(oldest or 0.0, float(age or 0))
    total.parts["oldest_days"] = oldest
    return _kpi("backorders", total, by_group)


def _returns(session: Session, scope: Subquery) -> Kpi:
    rows = session.execute(
        select(scope.c.grp, func.sum(OrderLine.quantity_returned),
               func.sum(OrderLine.quantity_shipped))
        .join(OrderLine, OrderLine.order_id == scope.c.order_id)
        .group_by(scope.c.grp).having(func.sum(OrderLine.quantity_shipped) > 0))
    total, by_group = _rate_figures(rows)
    reasons = session.execute(
        select(OrderReturn.reason, func.count().label("returns"))
        .where(OrderReturn.order_id.in_(select(scope.c.order_id)))
        .group_by(OrderReturn.reason).order_by(func.count().desc(), OrderReturn.reason)
        .limit(TOP_REASONS))
    return _kpi("return_rate", total, by_group,
                [{"reason": reason, "returns": count} for reason, count in reasons])


def _exceptions(session: Session, scope: Subquery, now: datetime) -> Kpi:
    raised = session.execute(
        select(scope.c.grp, func.count()).join(Hold, Hold.order_id == scope.c.order_id)
        .group_by(scope.c.grp))
    by_group = {grp: Figure(value=count, count=count) for grp, count in raised}
    count = sum(figure.count or 0 for figure in by_group.values())
    age_days = seconds_between(literal(now, Order.created_at.type), Hold.created_at) / 86400.0
    open_ = Hold.resolved_at.is_(None)
    ages = [func.sum(case((and_(open_, age_days >= low, age_days < high)
                           if high is not None else and_(open_, age_days >= low), 1),
                          else_=0)).label(name) for name, low, high in AGE_BUCKETS]
    queues = session.execute(
        select(Hold.queue, func.count(), func.sum(case((open_, 1), else_=0)), *ages)
        .where(Hold.order_id.in_(select(scope.c.order_id)))
        .group_by(Hold.queue).order_by(func.count().desc(), Hold.queue))
    rows = [{"queue": queue, "raised": raised_, "open": int(still_open or 0),
             **{name: int(n or 0) for (name, *_), n in zip(AGE_BUCKETS, buckets, strict=True)}}
            for queue, raised_, still_open, *buckets in queues]
    parts: dict[str, float | int | None] = {"open": sum(row["open"] for row in rows)}
    total = Figure(value=count, count=count, parts=parts)
    return _kpi("exceptions", total, by_group, rows)


def _carriers(session: Session, scope: Subquery) -> Kpi:
    delivered = Shipment.delivered_at.is_not(None)
    judged = and_(delivered, FulfilmentGroup.promised_at.is_not(None))
    timely = and_(judged, Shipment.delivered_at <= FulfilmentGroup.promised_at)
    transit = case((and_(delivered, Shipment.shipped_at.is_not(None)),
                    seconds_between(Shipment.delivered_at, Shipment.shipped_at) / 86400.0))
    carriers = session.execute(
        select(Shipment.carrier_code, func.count(),
               func.sum(case((delivered, 1), else_=0)),
               func.sum(case((judged, 1), else_=0)),
               func.sum(case((timely, 1), else_=0)),
               func.avg(cast(Shipment.label_cost, Float)),
               func.avg(transit))
        .join(FulfilmentGroup, FulfilmentGroup.id == Shipment.group_id)
        .where(Shipment.order_id.in_(select(scope.c.order_id)),
               Shipment.carrier_code.is_not(None))
        .group_by(Shipment.carrier_code).order_by(func.count().desc(), Shipment.carrier_code))
    rows = []
    judged_all = timely_all = 0
    for carrier, packages, arrived, with_promise, on_time, cost, days in carriers:
        rows.append({"carrier": carrier, "packages": packages, "delivered": int(arrived or 0),
                     "on_time_share": share(on_time, with_promise),
                     "average_cost": None if cost is None else round(float(cost), 2),
                     "average_transit_days": None if days is None else round(float(days), 2)})
        judged_all += int(with_promise or 0)
        timely_all += int(on_time or 0)
    total = Figure(share(timely_all, judged_all), timely_all, judged_all,
                   count=sum(row["packages"] for row in rows))
    return _kpi("carrier_scorecard", total, {}, rows)
