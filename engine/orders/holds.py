"""Holds: why orders wait for a person, in which queue, since when, and how they ended.

A held order is not released to a warehouse, labelled, billed or announced as shipped;
what its warehouses had is withdrawn. Every hold is put here (`put_on_hold`, whichever
stage or person raises it) and ended here (`release_hold`, `resolve_holds`): the order
leaves for status on_hold remembering its step and comes back to it. The commands that
find an order by id, and re-run its stages and its stopped work when its last hold is
released, are `pipeline.hold` and `pipeline.resume_after_hold`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, select

from engine import visibility
from engine.actors import Actor
from engine.errors import NotOnHoldError
from engine.job_names import WITHDRAW_JOB
from engine.orders.timeline import record_event
from engine.orders.transitions import (
    HOLD_RELEASED,
    announce,
    enter_hold,
    held_from,
    move,
    steps_while_held,
)
from engine.paging import fetch_page
from engine.ports import UnitOfWork
from engine.record import Hold, Order, RuleSetVersion, utcnow
from engine.status import OrderStatus

MANUAL_QUEUE = "manual"  # holds a person puts on an order
# Where an order waits when a rule fails while deciding it: the analysts' queue.
RULE_ERROR_QUEUE = "rule-error"
NO_CARRIER_QUEUE = "carrier-review"  # no carrier service can take one of its groups
# Goods left the warehouse while the order was on hold: recorded, flagged for ops, and
# neither billed nor announced until the hold is released.
SHIPPED_WHILE_HELD = "shipped_while_held"
# Asks a warehouse to stop a group it was given, because its order is on hold.


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


@dataclass(frozen=True)
class HoldQuery:
    queue: Sequence[str] = ()  # any of these queues (none: all)
    rule: Sequence[str] = ()  # any of these rules (none: all)
    state: str = "open"  # open, resolved or all
    older_than_hours: float | None = None
    limit: int = 50
    before_id: int | None = None


def list_holds(uow: UnitOfWork, actor: Actor, query: HoldQuery) -> tuple[list[Hold], int | None]:
    """Return one page of holds, newest first, and the cursor of the next page."""
    statement: Select[Hold] = select(Hold).order_by(Hold.id.desc())
    statement = statement.where(visibility.holds(actor))
    if query.state == "open":
        statement = statement.where(Hold.resolved_at.is_(None))
    elif query.state == "resolved":
        statement = statement.where(Hold.resolved_at.is_not(None))
    if query.queue:
        statement = statement.where(Hold.queue.in_(query.queue))
    if query.rule:
        statement = statement.where(Hold.rule.in_(query.rule))
    if query.older_than_hours is not None:
        statement = statement.where(
            Hold.created_at < utcnow() - timedelta(hours=query.older_than_hours))
    if query.before_id is not None:
        statement = statement.where(Hold.id < query.before_id)
    holds, next_before = fetch_page(uow.session, statement, query.limit, lambda h: h.id)
    return holds, next_before
