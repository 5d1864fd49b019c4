"""Waves: partner work cut into batches, on a period or on a size, whichever comes first.

A wave is what one job sends in one go: the groups released to one warehouse in one call,
the packages labelled or the shipments billed in one run. It carries every item that is
ready, at most `size` of them. The job claims its items first (a timestamp on their rows,
taken under `FOR UPDATE SKIP LOCKED` on PostgreSQL and under SQLite's write lock), so two
wave jobs never send the same item; a claim older than the lease was a dead job's, and its
items go in a later wave, with the same keys, so the partner applies them once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_

from engine.ports import JobArg, UnitOfWork


@dataclass(frozen=True)
class WavePolicy:
    """When a wave is cut: once an item has waited `seconds`, or once `size` items wait."""

    seconds: int
    size: int
    lease_seconds: int = 600  # longer than any partner call and its retries

    def to_cut(self, waiting: int, overdue: int) -> int:
        """How many of the `waiting` items to send now: all of them once one has waited
        the period (`overdue`), else the full waves (the rest wait for their period)."""
        if overdue:
            return waiting
        return waiting - waiting % self.size

    def overdue_before(self, now: datetime) -> datetime:
        return now - timedelta(seconds=self.seconds)

    def unclaimed(self, claimed_at: Any, now: datetime) -> ColumnElement[bool]:
        """Rows no live job has claimed (never, or longer ago than the lease)."""
        return or_(claimed_at.is_(None),
                   claimed_at < now - timedelta(seconds=self.lease_seconds))


def nudge(uow: UnitOfWork, job: str, *args: JobArg) -> None:
    """Ask for a look at a wave (a location's, say: `args`) once this transaction commits:
    it is sent then if it is due (a size reached, or no window). Once per transaction and
    wave, however many of its orders became ready."""
    transaction = uow.session.get_transaction()
    marks: tuple[Any, set[tuple[str, tuple[JobArg, ...]]]] | None = uow.session.info.get(
        "waves_nudged")
    if marks is None or marks[0] is not transaction:
        marks = (transaction, set())
        uow.session.info["waves_nudged"] = marks
    if (job, args) not in marks[1]:
        marks[1].add((job, args))
        uow.enqueue_after_commit(job, *args)


