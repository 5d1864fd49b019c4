"""What the engine needs from the outside world, as Protocols."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session

JobArg = str | int | float | bool | None


class UnitOfWork(Protocol):
    """One transaction: the session to work in, and the jobs it will start once committed."""

    session: Session

    def commit(self) -> None:
        """Commit the transaction, then enqueue the jobs it asked for."""

    def rollback(self) -> None:
        """Undo everything since the transaction began and drop its pending jobs."""

    def enqueue_after_commit(self, job: str, *args: JobArg) -> None:
        """Run the named job with these arguments once this transaction has committed."""


class JobQueue(Protocol):
    """Runs jobs by name, now (inline) or later (a worker)."""

    def enqueue(self, job: str, args: tuple[JobArg, ...], key: str | None = None) -> None:
        """Hand one job over for running (`key`: an id the queue may keep it under)."""
