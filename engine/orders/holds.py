"""Holds: why orders wait for a person, in which queue, since when, and how they ended.

A held order is not released to a warehouse, labelled, billed or announced as shipped;
what its warehouses had is withdrawn. Every hold is put here (`put_on_hold`, whichever
stage or person raises it) and ended here (`release_hold`, `resolve_holds`): the order
leaves for status on_hold remembering its step and comes back to it. The commands that
find an order by id, and re-run its stages and its stopped work when its last hold is
released, are `pipeline.hold` and `pipeline.resume_after_hold`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, not_, or_, select

from engine import visibility
from engine.actors import PERSON, Actor
from engine.errors import (
    FieldProblem,
    HoldResolvedError,
    InputValidationError,
    NotFoundError,
    NotOnHoldError,
)
from engine.job_names import WITHDRAW_JOB
from engine.orders.reading import get_order
from engine.orders.timeline import record_event
from engine.orders.transitions import (
    HOLD_RELEASED,
    announce,
    enter_hold,
    held_from,
    move,
    steps_while_held,
)
from engine.ports import UnitOfWork
from engine.record import (
    Customer,
    Hold,
    HoldComment,
    Order,
    RuleSetVersion,
    User,
    utcnow,
)
from engine.status import OrderStatus

MANUAL_QUEUE = "manual"  # holds a person puts on an order
# Where an order waits when a rule fails while deciding it: the analysts' queue.
RULE_ERROR_QUEUE = "rule-error"
NO_CARRIER_QUEUE = "carrier-review"  # no carrier service can take one of its groups
# Goods left the warehouse while the order was on hold: recorded, flagged for ops, and
# neither billed nor announced until the hold is released.
SHIPPED_WHILE_HELD = "shipped_while_held"


@dataclass(frozen=True)
class HoldReason:
    """One reason to hold an order: the queue it waits in (its code), why, and the rule."""

    queue: str
    reason: str
    rule: str | None = None

    def explained(self) -> dict[str, Any]:
        return {"code": self.queue, "message": self.reason, "rule": self.rule}


def put_on_hold(uow: UnitOfWork, actor: Actor, order: Order, stage: str,
                reasons: Sequence[HoldReason],
                rule_set_version: RuleSetVersion | int | None = None, **data: Any) -> list[Hold]:
    """Hold the order for these reasons (an order on hold already takes them too): one
    hold per reason in its queue, and one `order.held` event that lists them all.

    Raises:
        InvalidTransitionError: the order may not be held (it is closed, or has shipped).
    """
    previous = enter_hold(order)
    version_id = (rule_set_version.id if isinstance(rule_set_version, RuleSetVersion)
                  else rule_set_version)
    now = utcnow()
    holds = [Hold(order_id=order.id, stage=stage, queue=why.queue, reason=why.reason[:500],
                  rule=why.rule, rule_set_version_id=version_id, created_by=actor.label,
                  created_at=now)
             for why in reasons]
    uow.session.add_all(holds)
    record_event(uow, order, "order.held", actor, previous_status=previous.value,
                 status=order.status.value, stage=stage,
                 reasons=[why.explained() for why in reasons], **data)
    stop_released_groups(uow, order)
    return holds


def stop_released_groups(uow: UnitOfWork, order: Order) -> None:
    """A held order ships nothing: each group its warehouses have is held, off their pick
    lists, and they are asked (by a job, after this commits) to stop it."""
    for group in order.fulfilment_groups:
        if group.status == "released":
            group.status = "on_hold"
            uow.enqueue_after_commit(WITHDRAW_JOB, group.id)


def hold_order(uow: UnitOfWork, actor: Actor, order: Order, reason: str) -> Order:
    """Put the (locked) order on hold for review; releasing it returns it to where it was."""
    put_on_hold(uow, actor, order, "manual", [HoldReason(MANUAL_QUEUE, reason)], reason=reason)
    return order


def release_hold(uow: UnitOfWork, actor: Actor, order: Order, note: str | None) -> Order:
    """Take the (locked) order off hold, back to the status it was held at; every open hold
    of it is released.

    Raises:
        NotOnHoldError: the order is not on hold.
    """
    step = held_from(order)
    if order.status is not OrderStatus.ON_HOLD or step is None:
        raise NotOnHoldError(order.id, order.status.value)
    taken = steps_while_held(uow, order)
    move(uow, actor, order, step, HOLD_RELEASED, note=note)
    resolve_holds(uow, actor, order, "released")
    announce(uow, actor, order, taken)  # what happened while it was held, announced now
    return order


def open_holds(uow: UnitOfWork, order: Order) -> list[Hold]:
    """Return the order's holds that nobody has resolved yet."""
    return list(uow.session.scalars(select(Hold).where(Hold.order_id == order.id,
                                                       Hold.resolved_at.is_(None))))


def resolve_hold(actor: Actor, hold: Hold, resolution: str) -> Hold:
    """Close one hold with this resolution (released, cancelled)."""
    hold.resolved_at, hold.resolved_by, hold.resolution = utcnow(), actor.label, resolution
    return hold


def resolve_holds(uow: UnitOfWork, actor: Actor, order: Order, resolution: str) -> list[Hold]:
    """Close every open hold of the order with this resolution; return them."""
    return [resolve_hold(actor, hold, resolution) for hold in open_holds(uow, order)]


def waived_rules(uow: UnitOfWork, order: Order) -> frozenset[str]:
    """Return the rules whose holds on this order a person released."""
    return frozenset(hold.rule for hold in uow.session.scalars(
        select(Hold).where(Hold.order_id == order.id, Hold.resolution == "released"))
        if hold.rule)


# What an order on hold waits to do, by the step it was held at (`Order.held_from`).
BLOCKS: Mapping[str, str] = {
    OrderStatus.RECEIVED.value: "validation",
    OrderStatus.VALIDATED.value: "sourcing",
    OrderStatus.ALLOCATED.value: "release to the warehouse",
    OrderStatus.BACKORDERED.value: "allocation of arriving stock",
    OrderStatus.RELEASED.value: "shipping",
    OrderStatus.PARTIALLY_SHIPPED.value: "shipping the rest",
}
ASSIGNABLE_ROLES = ("ops", "admin")  # the roles of the people a hold may be given to
NO_RULE = "none"  # the rule filter's value for holds no rule raised (a person's, a failure)
ME, NOBODY = "me", "none"  # the assignee filter's values for the caller and for nobody


@dataclass(frozen=True)
class HoldSla:
    """How long a hold may wait in its queue before it is overdue, in hours."""

    default_hours: float = 24.0
    per_queue: Mapping[str, float] = field(default_factory=dict)

    def hours(self, queue: str) -> float:
        return self.per_queue.get(queue, self.default_hours)

    def due_at(self, hold: Hold) -> datetime:
        return hold.created_at + timedelta(hours=self.hours(hold.queue))

    def overdue(self, now: datetime) -> ColumnElement[bool]:
        """A clause over `Hold`: open, and waiting longer than its queue allows."""
        named = [and_(Hold.queue == queue, Hold.created_at < now - timedelta(hours=hours))
                 for queue, hours in self.per_queue.items()]
        others = Hold.created_at < now - timedelta(hours=self.default_hours)
        if self.per_queue:
            others = and_(Hold.queue.not_in(list(self.per_queue)), others)
        return and_(Hold.resolved_at.is_(None), or_(*named, others))


@dataclass(frozen=True)
class HoldQuery:
    """Which holds: each filter given takes any of its values; filters combine with and."""

    queue: Sequence[str] = ()
    rule: Sequence[str] = ()  # NO_RULE: holds no rule raised
    assignee: Sequence[str] = ()  # user names, ME (the caller) or NOBODY (unassigned)
    channel: Sequence[str] = ()  # the order's channel
    overdue: bool | None = None
    state: str = "open"  # open, resolved or all
    older_than_hours: float | None = None
    sort: str = "due"  # due: overdue first, then oldest; newest: newest first
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class QueuedHold:
    """A hold as the inbox shows it: with its order, its customer and its SLA clock."""

    hold: Hold
    order: Order
    customer_name: str
    sla_hours: float
    due_at: datetime
    overdue: bool
    comments: int
    now: datetime

    @property
    def age_hours(self) -> float:
        end = self.hold.resolved_at or self.now
        return round((end - self.hold.created_at).total_seconds() / 3600, 2)

    @property
    def blocks(self) -> str | None:
        """What the order waits to do (None once it left its hold)."""
        if self.order.status is not OrderStatus.ON_HOLD or self.order.held_from is None:
            return None
        return BLOCKS.get(self.order.held_from, self.order.held_from)


def _matching(actor: Actor, query: HoldQuery, sla: HoldSla,
              now: datetime) -> list[ColumnElement[bool]]:
    """The where-clauses, over Hold alone, of the holds a query asks for (an order's
    channel is asked of the orders by id, so that no query scans the orders to count or
    sort holds)."""
    clauses = [visibility.holds(actor)]
    if query.state == "open":
        clauses.append(Hold.resolved_at.is_(None))
    elif query.state == "resolved":
        clauses.append(Hold.resolved_at.is_not(None))
    if query.queue:
        clauses.append(Hold.queue.in_(query.queue))
    if query.rule:
        named = [rule for rule in query.rule if rule != NO_RULE]
        clauses.append(or_(Hold.rule.in_(named),
                           Hold.rule.is_(None) if NO_RULE in query.rule else false()))
    if query.assignee:
        names = [name for name in query.assignee if name not in (ME, NOBODY)]
        if ME in query.assignee and actor.type == PERSON:
            names.append(actor.id)
        clauses.append(or_(Hold.assignee.in_(names),
                           Hold.assignee.is_(None) if NOBODY in query.assignee else false()))
    if query.channel:
        clauses.append(Hold.order_id.in_(select(Order.id)
                                         .where(Order.channel.in_(query.channel))))
    if query.overdue is not None:
        overdue = sla.overdue(now)
        clauses.append(overdue if query.overdue else not_(overdue))
    if query.older_than_hours is not None:
        clauses.append(Hold.created_at < now - timedelta(hours=query.older_than_hours))
    return clauses


def list_holds(uow: UnitOfWork, actor: Actor, query: HoldQuery,
               sla: HoldSla = HoldSla()) -> tuple[list[QueuedHold], int | None]:
    """Return one page of holds with their orders (overdue first, then oldest; or newest
    first), and the offset of the next page (None: the last)."""
    now = utcnow()
    # the page is chosen among the holds alone; only its rows then read their orders
    page = list(uow.session.scalars(
        select(Hold.id).where(*_matching(actor, query, sla, now))
        .order_by(*_inbox_order(query, sla, now))
        .offset(query.offset).limit(query.limit + 1)))
    more = len(page) > query.limit
    page = page[:query.limit]
    found = {hold.id: (hold, order, name) for hold, order, name in uow.session.execute(
        select(Hold, Order, Customer.name)
        .join(Order, Order.id == Hold.order_id)
        .join(Customer, Customer.id == Order.customer_id)
        .where(Hold.id.in_(page)))} if page else {}
    rows = [found[hold_id] for hold_id in page if hold_id in found]
    comments = _comment_counts(uow, [hold.id for hold, _, _ in rows])
    return ([_queued(hold, order, name, sla, now, comments.get(hold.id, 0))
             for hold, order, name in rows],
            query.offset + query.limit if more else None)


def _inbox_order(query: HoldQuery, sla: HoldSla, now: datetime) -> tuple[Any, ...]:
    """Overdue first, then oldest; or newest first."""
    if query.sort == "newest":
        return (Hold.id.desc(),)
    return (case((sla.overdue(now), 0), else_=1), Hold.created_at, Hold.id)


def _queued(hold: Hold, order: Order, customer_name: str, sla: HoldSla, now: datetime,
            comments: int) -> QueuedHold:
    due = sla.due_at(hold)
    return QueuedHold(hold, order, customer_name, sla.hours(hold.queue), due,
                      hold.resolved_at is None and due < now, comments, now)


def _comment_counts(uow: UnitOfWork, hold_ids: Sequence[int]) -> dict[int, int]:
    if not hold_ids:
        return {}
    return {hold_id: count for hold_id, count in uow.session.execute(
        select(HoldComment.hold_id, func.count()).where(HoldComment.hold_id.in_(hold_ids))
        .group_by(HoldComment.hold_id))}


def matching_hold_ids(uow: UnitOfWork, actor: Actor, query: HoldQuery, sla: HoldSla,
                      limit: int) -> list[int]:
    """Return the ids of up to `limit` holds a query matches, in the inbox's order."""
    now = utcnow()
    return list(uow.session.scalars(
        select(Hold.id).where(*_matching(actor, query, sla, now))
        .order_by(case((sla.overdue(now), 0), else_=1), Hold.created_at, Hold.id)
        .limit(limit)))


def count_holds(uow: UnitOfWork, actor: Actor, query: HoldQuery, sla: HoldSla) -> int:
    """Return how many holds a query matches."""
    return uow.session.scalar(
        select(func.count()).select_from(Hold)
        .where(*_matching(actor, query, sla, utcnow()))) or 0


@dataclass(frozen=True)
class HoldCount:
    """How many holds of one group (a queue, or a queue's rule) match, and how many are
    overdue or nobody's, and since when the oldest waits."""

    queue: str
    rule: str | None
    reason: str | None
    sla_hours: float
    holds: int
    overdue: int
    unassigned: int
    oldest_at: datetime | None


@dataclass(frozen=True)
class HoldSummary:
    holds: int
    overdue: int
    unassigned: int
    by_queue: list[HoldCount]
    by_reason: list[HoldCount]


def summarize_holds(uow: UnitOfWork, actor: Actor, query: HoldQuery,
                    sla: HoldSla) -> HoldSummary:
    """Count the holds a query matches by queue and by reason (the rule that raised them):
    how many, how many overdue and unassigned, and the oldest; biggest groups first."""
    now = utcnow()
    overdue = func.sum(case((sla.overdue(now), 1), else_=0))
    unassigned = func.sum(case((Hold.assignee.is_(None), 1), else_=0))
    counted = (func.count(), overdue, unassigned, func.min(Hold.created_at))
    where = _matching(actor, query, sla, now)

    def grouped(*columns: Any, sample: tuple[Any, ...] = ()) -> list[Any]:
        return list(uow.session.execute(
            select(*columns, *sample, *counted).select_from(Hold)
            .where(*where).group_by(*columns).order_by(func.count().desc(), *columns)))

    by_queue = [HoldCount(queue, None, None, sla.hours(queue), total, late or 0, free or 0,
                          oldest)
                for queue, total, late, free, oldest in grouped(Hold.queue)]
    # a rule's holds read alike; a person's hold says why in its own words (one sample)
    by_reason = [HoldCount(queue, rule, reason, sla.hours(queue), total, late or 0,
                           free or 0, oldest)
                 for queue, rule, reason, total, late, free, oldest in grouped(
                     Hold.queue, Hold.rule, sample=(func.min(Hold.reason),))]
    return HoldSummary(sum(count.holds for count in by_queue),
                       sum(count.overdue for count in by_queue),
                       sum(count.unassigned for count in by_queue), by_queue, by_reason)


def visible_hold(uow: UnitOfWork, actor: Actor, hold_id: int,
                  lock: bool = False) -> tuple[Hold, Order]:
    """Return the hold and its order (locked first, with `lock`), if this actor may see them.

    Raises:
        NotFoundError: no such hold, or one of an order this actor may not see.
    """
    hold = uow.session.get(Hold, hold_id)
    try:
        order = get_order(uow, actor, hold.order_id, lock=lock) if hold is not None else None
    except NotFoundError:
        order = None
    if hold is None or order is None:
        raise NotFoundError("hold", hold_id)
    if lock:
        uow.session.refresh(hold)
    return hold, order


def get_hold(uow: UnitOfWork, actor: Actor, hold_id: int,
             sla: HoldSla = HoldSla()) -> tuple[QueuedHold, list[HoldComment]]:
    """Return one hold as the inbox shows it, with its comments, oldest first (staff
    notes: none for an integration).

    Raises:
        NotFoundError: no such hold, or one of an order this actor may not see.
    """
    hold, order = visible_hold(uow, actor, hold_id)
    name = uow.session.scalar(select(Customer.name).where(Customer.id == order.customer_id))
    comments = list(uow.session.scalars(select(HoldComment).where(
        HoldComment.hold_id == hold.id).order_by(HoldComment.id))) \
        if visibility.reads_staff_notes(actor) else []
    return _queued(hold, order, name or "", sla, utcnow(), len(comments)), comments


def assign_hold(uow: UnitOfWork, actor: Actor, hold_id: int, assignee: str | None) -> Hold:
    """Give an open hold to a person (ME: the caller; None: to nobody), on its order's
    timeline too.

    Raises:
        NotFoundError: no such hold, or one of an order this actor may not see.
        HoldResolvedError: the hold is resolved already.
        InputValidationError: ME, from a caller that is not a person.
    """
    hold, order = visible_hold(uow, actor, hold_id, lock=True)
    if hold.resolved_at is not None:
        raise HoldResolvedError(hold.id, hold.resolution)
    if assignee == ME:
        if actor.type != PERSON:
            raise InputValidationError([FieldProblem(
                "assignee", "an API key is not a person: name the user to assign")])
        assignee = actor.id
    elif assignee is not None:
        assignee = assignee.strip().lower()
        if assignee not in assignable_people(uow, assignee):
            raise InputValidationError([FieldProblem(
                "assignee", f"{assignee!r} is not an active user of ops who could work it")])
    previous = hold.assignee
    if assignee == previous:
        return hold  # already theirs: nothing happened, nothing to record
    hold.assignee, hold.assigned_by = assignee, actor.label
    hold.assigned_at = utcnow() if assignee is not None else None
    record_event(uow, order, "hold.assigned", actor, hold=hold.id, queue=hold.queue,
                 assignee=assignee, previous=previous)
    return hold


def assignable_people(uow: UnitOfWork, username: str | None = None) -> list[str]:
    """Return the user names holds may be given to (all, or just this one if it may):
    people whose account is active and who work as ops (or admin)."""
    statement = select(User).where(User.disabled_at.is_(None)).order_by(User.username)
    if username is not None:
        statement = statement.where(User.username == username)
    return [user.username for user in uow.session.scalars(statement)
            if set(user.roles) & set(ASSIGNABLE_ROLES)]


def comment_on_hold(uow: UnitOfWork, actor: Actor, hold_id: int, body: str) -> HoldComment:
    """Leave a comment on a hold (open or resolved), on its order's timeline too.

    Raises:
        NotFoundError: no such hold, or one of an order this actor may not see.
    """
    hold, order = visible_hold(uow, actor, hold_id)
    comment = HoldComment(hold_id=hold.id, body=body, created_by=actor.label,
                          created_at=utcnow())
    uow.session.add(comment)
    uow.session.flush()
    record_event(uow, order, "hold.commented", actor, hold=hold.id, queue=hold.queue,
                 comment=comment.id, body=body)
    return comment
