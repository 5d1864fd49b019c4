"""Holds: why orders wait for a person, in which queue, since when, and how they ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Select, select

from engine import visibility
from engine.actors import Actor
from engine.models import Hold, utcnow
from engine.paging import fetch_page
from engine.ports import UnitOfWork

# Where an order waits when a rule fails while deciding it: the analysts' queue.
RULE_ERROR_QUEUE = "rule-error"


@dataclass(frozen=True)
class HoldQuery:
    queue: str | None = None
    rule: str | None = None
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
    if query.queue is not None:
        statement = statement.where(Hold.queue == query.queue)
    if query.rule is not None:
        statement = statement.where(Hold.rule == query.rule)
    if query.older_than_hours is not None:
        statement = statement.where(
            Hold.created_at < utcnow() - timedelta(hours=query.older_than_hours))
    if query.before_id is not None:
        statement = statement.where(Hold.id < query.before_id)
    holds, next_before = fetch_page(uow.session, statement, query.limit, lambda h: h.id)
    return holds, next_before
