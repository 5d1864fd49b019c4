"""The dashboard's KPIs, computed from the record by SQL aggregates.

Every KPI looks at the orders captured in a period (UTC, start included, end not), grouped
by the day or hour of capture, the channel, or the version of a stage's rule set that
decided the order last. Each query returns one row per group (or per percentile rank), so
the work stays in the database whatever the number of orders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    FunctionElement,
    Integer,
    String,
    Subquery,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    union_all,
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

class epoch_bucket(FunctionElement[int]):
    """Whole days (or hours) since 1970-01-01 UTC of a timestamp: a cheap group key."""

    type = Integer()
    inherit_cache = True


class seconds_between(FunctionElement[float]):
    """Seconds from the second timestamp to the first."""

    type = Float()
    inherit_cache = True


@compiles(epoch_bucket)
def _epoch_bucket(element: epoch_bucket, compiler: SQLCompiler, **kw: Any) -> str:
    at, seconds = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"CAST(floor(EXTRACT(EPOCH FROM {at}) / {seconds}) AS INTEGER)"


@compiles(epoch_bucket, "sqlite")
def _epoch_bucket_sqlite(element: epoch_bucket, compiler: SQLCompiler, **kw: Any) -> str:
    at, seconds = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(CAST(strftime('%s', {at}) AS INTEGER) / {seconds})"


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
    if session.get_bind().dialect.name == "postgresql":
        # These aggregates run in tens of milliseconds; PostgreSQL's JIT would spend seconds
        # compiling them first (their estimated cost is high, their real cost is not), and
        # the sort of the period's facts by group would spill to disk in the default 4 MB.
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '32MB'"))
    in_period = _in_period(actor, query)
    ids = _between(session, in_period)
    facts = _facts(in_period, ids, query, now)
    figures = _aggregate(session, facts)
    if session.get_bind().dialect.name != "postgresql":
        _add_percentiles(session, facts, figures)
    by_key = {grp: _group_key(query, grp) for grp in figures if grp != TOTAL}
    board = Dashboard(query, _groups(session, query, set(by_key.values())),
                      _kpis(figures, by_key), now)
    board.kpi("return_rate").rows = _return_reasons(session, in_period, ids)
    exceptions = board.kpi("exceptions")
    exceptions.rows = _exception_queues(session, in_period, ids, now)
    exceptions.total.parts["open"] = sum(row["open"] for row in exceptions.rows)
    carriers = board.kpi("carrier_scorecard")
    carriers.rows, carriers.total = _carriers(session, in_period, ids)
    return board


TOTAL = "*"
STATUSES = tuple(OrderStatus)


def _in_period(actor: Actor, query: KpiQuery) -> ColumnElement[bool]:
    """A clause over `Order`: the orders of the period (and channels) this actor may see."""
    clause = and_(Order.created_at >= query.start, Order.created_at < query.end,
                  visibility.orders(actor))
    if query.channels:
        clause = and_(clause, Order.channel.in_(query.channels))
    return clause


def _group_column(query: KpiQuery) -> Any:
    if query.group_by == "day":
        return epoch_bucket(Order.created_at, literal_column("86400"))
    if query.group_by == "hour":
        return epoch_bucket(Order.created_at, literal_column("3600"))
    if query.group_by == "channel":
        return Order.channel
    version = (select(RuleSetVersion.version)
               .join(OrderDecision, OrderDecision.rule_set_version_id == RuleSetVersion.id)
               .where(OrderDecision.order_id == Order.id, OrderDecision.stage == query.stage)
               .order_by(OrderDecision.id.desc()).limit(1).scalar_subquery())
    return func.coalesce(cast(version, String), NO_VERSION)


def _group_key(query: KpiQuery, grp: str) -> str:
    """The group's key as the API shows it (a day or an hour, not a number)."""
    if query.group_by == "day":
        return (EPOCH + timedelta(days=int(grp))).strftime("%Y-%m-%d")
    if query.group_by == "hour":
        return (EPOCH + timedelta(hours=int(grp))).strftime("%Y-%m-%dT%H")
    return grp


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _between(session: Session, in_period: ColumnElement[bool]) -> Any:
    """A test that an order id column lies between the first and last of the period's.

    Ids grow with time, so the range holds the period's orders and few others: cheaper to
    test than membership, and a join on Order then keeps exactly the period's. The two ids
    are read first, so the planner sees numbers it can estimate from.
    """
    first, last = session.execute(
        select(func.min(Order.id), func.max(Order.id)).where(in_period)).one()
    if first is None:
        first, last = 0, -1  # no order: an empty range

    def within(column: Any) -> ColumnElement[bool]:
        test: ColumnElement[bool] = column.between(first, last)
        return test

    return within


def _facts(in_period: ColumnElement[bool], ids: Any, query: KpiQuery,
           now: datetime) -> Subquery:
    """One row per order of the period with what every KPI needs: its group, status,
    units, when it first shipped and was last delivered, late packages, holds, returns."""
    lines = (select(OrderLine.order_id,
                    func.sum(OrderLine.quantity_ordered).label("ordered"),
                    func.sum(OrderLine.quantity_shipped).label("shipped"),
                    func.sum(OrderLine.quantity_delivered).label("delivered"),
                    func.sum(OrderLine.quantity_returned).label("returned"),
                    func.sum(OrderLine.quantity_backordered).label("backordered"))
             .where(ids(OrderLine.order_id)).group_by(OrderLine.order_id)
             .subquery("lines"))
    # each package with its units, its group's promise, and whether that group came from
    # the order's first sourcing decision (its first allocation)
    units = (select(ShipmentLine.shipment_id, func.sum(ShipmentLine.quantity).label("units"))
             .group_by(ShipmentLine.shipment_id).subquery("package_units"))
    parcels = (select(Shipment.order_id, Shipment.shipped_at, Shipment.delivered_at,
                      FulfilmentGroup.promised_at, units.c.units,
                      (FulfilmentGroup.decision_id == func.min(FulfilmentGroup.decision_id)
                       .over(partition_by=Shipment.order_id)).label("first"))
               .join(FulfilmentGroup, FulfilmentGroup.id == Shipment.group_id)
               .join(units, units.c.shipment_id == Shipment.id)
               .where(ids(Shipment.order_id), Shipment.shipped_at.is_not(None))
               .subquery("parcels"))
    packages = (select(parcels.c.order_id,
                       func.count().label("packages"),
                       func.count(parcels.c.promised_at).label("promised"),
                       func.sum(case((parcels.c.delivered_at > parcels.c.promised_at, 1),
                                     else_=0)).label("late"),
                       func.count(parcels.c.delivered_at).label("arrived"),
                       func.min(parcels.c.shipped_at).label("first_shipped"),
                       func.max(parcels.c.delivered_at).label("last_delivered"),
                       func.sum(case((parcels.c.first, parcels.c.units), else_=0))
                       .label("filled"))
                .group_by(parcels.c.order_id).subquery("packages"))
    holds = (select(Hold.order_id, func.count().label("holds"))
             .where(ids(Hold.order_id)).group_by(Hold.order_id).subquery("held"))
    damaged = (select(OrderReturn.order_id, func.count().label("returns"))
               .where(ids(OrderReturn.order_id),
                      func.lower(OrderReturn.reason).contains(DAMAGE_WORD))
               .group_by(OrderReturn.order_id).subquery("damaged"))
    first_sourced = (select(func.min(OrderDecision.evaluated_at)).where(
        OrderDecision.order_id == Order.id, OrderDecision.stage == "sourcing")
        .scalar_subquery())
    waiting_since = case((lines.c.backordered > 0,
                          func.coalesce(first_sourced, Order.created_at)))
    hours = 3600.0
    return (select(
        Order.id.label("order_id"), cast(_group_column(query), String).label("grp"),
        Order.status.label("status"),
        func.coalesce(lines.c.ordered, 0).label("ordered"),
        func.coalesce(lines.c.shipped, 0).label("shipped"),
        func.coalesce(lines.c.delivered, 0).label("delivered"),
        func.coalesce(lines.c.returned, 0).label("returned"),
        func.coalesce(lines.c.backordered, 0).label("backordered"),
        func.coalesce(packages.c.filled, 0).label("filled"),
        func.coalesce(packages.c.packages, 0).label("packages"),
        func.coalesce(packages.c.promised, 0).label("promised"),
        func.coalesce(packages.c.late, 0).label("late"),
        (seconds_between(packages.c.first_shipped, Order.created_at) / hours)
        .label("ship_hours"),
        case((and_(Order.status.in_(DELIVERED), packages.c.arrived == packages.c.packages),
              seconds_between(packages.c.last_delivered, Order.created_at) / hours))
        .label("delivery_hours"),
        func.coalesce(holds.c.holds, 0).label("holds"),
        func.coalesce(damaged.c.returns, 0).label("damaged"),
        (seconds_between(literal(now, Order.created_at.type), waiting_since) / 86400.0)
        .label("waiting_days"))
        .outerjoin(lines, lines.c.order_id == Order.id)
        .outerjoin(packages, packages.c.order_id == Order.id)
        .outerjoin(holds, holds.c.order_id == Order.id)
        .outerjoin(damaged, damaged.c.order_id == Order.id)
        .where(in_period)
        .subquery("facts"))


def _aggregate(session: Session, facts: Any) -> dict[str, dict[str, Any]]:
    """Every sum and count the KPIs need, per group and in total (group '*'), one pass."""
    f = facts.c

    def counted(condition: ColumnElement[bool]) -> Any:
        return func.sum(case((condition, 1), else_=0))

    def summed(condition: ColumnElement[bool], value: Any) -> Any:
        return func.sum(case((condition, value), else_=0))

    finished = f.status.in_(FINISHED)
    delivered = and_(f.status.in_(DELIVERED), f.packages > 0)
    promised = and_(delivered, f.promised == f.packages)
    on_time = and_(promised, f.late == 0)
    complete = and_(delivered, f.delivered >= f.ordered)
    undamaged = and_(delivered, f.damaged == 0)
    unheld = and_(delivered, f.holds == 0)
    waiting = f.backordered > 0
    columns: list[Any] = [
        func.count().label("orders"),
        *(counted(f.status == status.value).label(f"status_{status.value}")
          for status in STATUSES),
        func.count(f.ship_hours).label("shipped_orders"),
        func.count(f.delivery_hours).label("delivered_orders"),
        summed(finished, f.filled).label("filled"),
        summed(finished, f.ordered).label("ordered"),
        counted(delivered).label("delivered"),
        counted(promised).label("promised"),
        counted(on_time).label("on_time"),
        counted(complete).label("complete"),
        counted(undamaged).label("undamaged"),
        counted(unheld).label("unheld"),
        counted(and_(on_time, complete, undamaged, unheld)).label("perfect"),
        func.sum(f.backordered).label("backordered"),
        counted(waiting).label("waiting_orders"),
        func.max(f.waiting_days).label("oldest_days"),
        *(summed(and_(waiting, f.waiting_days >= low, f.waiting_days < high)
                 if high is not None else and_(waiting, f.waiting_days >= low),
                 f.backordered).label(f"age_{name}")
          for name, low, high in AGE_BUCKETS),
        func.sum(f.returned).label("returned"),
        func.sum(f.shipped).label("units_shipped"),
        func.sum(f.holds).label("holds"),
    ]
    if session.get_bind().dialect.name == "postgresql":
        # percentile_disc is the nearest rank: the first value whose share reaches p
        columns += [func.percentile_disc(percent / 100).within_group(column).label(
                    f"{name}_p{percent}")
                    for name, column in (("ship", f.ship_hours), ("delivery", f.delivery_hours))
                    for percent in PERCENTILES]
        # one sort for the groups and the total (its group is NULL)
        statement: Any = select(func.coalesce(f.grp, TOTAL).label("grp"), *columns).group_by(
            func.rollup(f.grp))
    else:
        statement = union_all(select(f.grp, *columns).group_by(f.grp),
                              select(literal_column(f"'{TOTAL}'").label("grp"), *columns))
    return {row["grp"]: dict(row) for row in session.execute(statement).mappings()}


def _add_percentiles(session: Session, facts: Subquery, figures: dict[str, dict[str, Any]]) -> None:
    """Nearest-rank percentiles by window functions, where percentile_disc is missing."""
    for name in ("ship", "delivery"):
        hours = getattr(facts.c, f"{name}_hours")
        for grouped in (True, False):
            group = facts.c.grp if grouped else literal_column(f"'{TOTAL}'")
            partition = facts.c.grp if grouped else None
            ranked = (select(group.label("grp"), hours.label("hours"),
                             func.row_number().over(partition_by=partition,
                                                    order_by=hours).label("rn"),
                             func.count().over(partition_by=partition).label("n"))
                      .where(hours.is_not(None)).subquery("ranked"))
            wanted = or_(*(ranked.c.rn == nearest_rank(percent, ranked.c.n)
                           for percent in PERCENTILES))
            for grp, value, rank, count in session.execute(
                    select(ranked.c.grp, ranked.c.hours, ranked.c.rn, ranked.c.n)
                    .where(wanted)):
                for percent in PERCENTILES:
                    if rank == nearest_rank(percent, count):
                        figures[grp][f"{name}_p{percent}"] = value


def _kpis(figures: dict[str, dict[str, Any]], keys: dict[str, str]) -> list[Kpi]:
    """Turn the sums into the KPIs, per group (by the group's key) and in total."""
    def each(make: Any) -> tuple[Figure, dict[str, Figure]]:
        return (make(figures[TOTAL]),
                {keys[grp]: make(row) for grp, row in figures.items() if grp != TOTAL})

    def orders(row: dict[str, Any]) -> Figure:
        parts: dict[str, float | int | None] = {
            status.value: int(row[f"status_{status.value}"] or 0) for status in STATUSES
            if row[f"status_{status.value}"]}
        return Figure(value=row["orders"], count=row["orders"], parts=parts)

    def cycle(name: str) -> Any:
        def make(row: dict[str, Any]) -> Figure:
            p50, p90 = (row.get(f"{name}_p{percent}") for percent in PERCENTILES)
            return Figure(value=_number(p50), p50=_number(p50), p90=_number(p90),
                          count=row[f"{'shipped' if name == 'ship' else 'delivered'}_orders"])
        return make

    def rate(numerator: str, denominator: str) -> Any:
        def make(row: dict[str, Any]) -> Figure:
            num, den = float(row[numerator] or 0), float(row[denominator] or 0)
            return Figure(share(num, den), num, den)
        return make

    def perfect(row: dict[str, Any]) -> Figure:
        figure: Figure = rate("perfect", "delivered")(row)
        components = {name: share(row[column], row["delivered"]) for name, column in (
            ("on_time", "on_time"), ("complete", "complete"), ("undamaged", "undamaged"),
            ("without_exception", "unheld"))}
        figure.parts = {**components,
                        "product_form": perfect_order_product(*components.values())}
        return figure

    def backorders(row: dict[str, Any]) -> Figure:
        parts: dict[str, float | int | None] = {
            name: int(row[f"age_{name}"] or 0) for name, *_ in AGE_BUCKETS}
        parts["oldest_days"] = _number(row["oldest_days"])
        return Figure(value=int(row["backordered"] or 0), count=int(row["waiting_orders"] or 0),
                      parts=parts)

    def exceptions(row: dict[str, Any]) -> Figure:
        return Figure(value=int(row["holds"] or 0), count=int(row["holds"] or 0))

    def drop_empty(pair: tuple[Figure, dict[str, Figure]],
                   keep: Any) -> tuple[Figure, dict[str, Figure]]:
        total, groups = pair
        return total, {key: figure for key, figure in groups.items() if keep(figure)}

    has_units = (lambda figure: bool(figure.denominator))  # noqa: E731
    has_count = (lambda figure: bool(figure.count))  # noqa: E731
    return [
        _kpi("orders", *each(orders)),
        _kpi("cycle_to_shipment", *drop_empty(each(cycle("ship")), has_count)),
        _kpi("cycle_to_delivery", *drop_empty(each(cycle("delivery")), has_count)),
        _kpi("fill_rate", *drop_empty(each(rate("filled", "ordered")), has_units)),
        _kpi("on_time_delivery", *drop_empty(each(rate("on_time", "promised")), has_units)),
        _kpi("perfect_order", *drop_empty(each(perfect), has_units)),
        _kpi("backorders", *drop_empty(each(backorders), has_count)),
        _kpi("return_rate", *drop_empty(each(rate("returned", "units_shipped")), has_units)),
        _kpi("exceptions", *drop_empty(each(exceptions), has_count)),
        _kpi("carrier_scorecard", Figure(), {}),
    ]


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _groups(session: Session, query: KpiQuery, seen: set[str]) -> list[Group]:
    """The groups to show, in their natural order; every day or hour of the period."""
    if query.group_by == "day":
        return [Group(key, key) for key in day_keys(query.start, query.end)]
    if query.group_by == "hour":
        return [Group(key, key[5:].replace("T", " ") + ":00")
                for key in hour_keys(query.start, query.end)]
    if query.group_by == "channel":
        return [Group(key, key) for key in sorted(seen)]
    numbers = [int(key) for key in seen if key.isdigit()]
    versions = {row.version: row for row in session.execute(
        select(RuleSetVersion.version, RuleSetVersion.state, RuleSetVersion.published_at,
               RuleSetVersion.published_by).where(
            RuleSetVersion.stage == query.stage, RuleSetVersion.version.in_(numbers)))}
    groups = []
    for number in sorted(numbers):
        row = versions.get(number)
        state = ""
        if row is not None and row.published_at:  # "published ..." or "retired; published ..."
            when = f"published {row.published_at:%Y-%m-%d %H:%M} by {row.published_by}"
            state = f" ({when})" if row.state == "published" else f" ({row.state}; {when})"
        elif row is not None:
            state = f" ({row.state})"
        groups.append(Group(str(number), f"{query.stage} v{number}{state}"))
    if NO_VERSION in seen:
        groups.append(Group(NO_VERSION, f"{query.stage}: no decision yet"))
    return groups


def _return_reasons(session: Session, in_period: ColumnElement[bool],
                    ids: Any) -> list[dict[str, Any]]:
    reasons = session.execute(
        select(OrderReturn.reason, func.count().label("returns"))
        .join(Order, Order.id == OrderReturn.order_id)
        .where(in_period, ids(OrderReturn.order_id))
        .group_by(OrderReturn.reason).order_by(func.count().desc(), OrderReturn.reason)
        .limit(TOP_REASONS))
    return [{"reason": reason, "returns": count} for reason, count in reasons]


def _exception_queues(session: Session, in_period: ColumnElement[bool], ids: Any,
                      now: datetime) -> list[dict[str, Any]]:
    age_days = seconds_between(literal(now, Order.created_at.type), Hold.created_at) / 86400.0
    open_ = Hold.resolved_at.is_(None)
    ages = [func.sum(case((and_(open_, age_days >= low, age_days < high)
                           if high is not None else and_(open_, age_days >= low), 1),
                          else_=0)).label(name) for name, low, high in AGE_BUCKETS]
    queues = session.execute(
        select(Hold.queue, func.count(), func.sum(case((open_, 1), else_=0)), *ages)
        .join(Order, Order.id == Hold.order_id)
        .where(in_period, ids(Hold.order_id))
        .group_by(Hold.queue).order_by(func.count().desc(), Hold.queue))
    return [{"queue": queue, "raised": raised, "open": int(still_open or 0),
             **{name: int(n or 0) for (name, *_), n in zip(AGE_BUCKETS, buckets, strict=True)}}
            for queue, raised, still_open, *buckets in queues]


def _carriers(session: Session, in_period: ColumnElement[bool],
              ids: Any) -> tuple[list[dict[str, Any]], Figure]:
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
        .join(Order, Order.id == Shipment.order_id)
        .where(in_period, ids(Shipment.order_id),
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
    return rows, Figure(share(timely_all, judged_all), timely_all, judged_all,
                        count=sum(row["packages"] for row in rows))
