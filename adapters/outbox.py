"""The transactional outbox: jobs are rows written with the change that causes them, and a
dispatcher hands them to the job queue after the commit.

The unit of work dispatches its own messages right after committing; `oms worker` also
dispatches every few seconds whatever is still waiting (for instance while Redis was
down). Rows are claimed with `FOR UPDATE SKIP LOCKED`, so dispatchers never hand one
message twice at the same time. Jobs must be idempotent all the same: a queue that took a
job just before its dispatcher's commit failed will be given it again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.ports import JobArg, JobQueue
from engine.record import OutboxMessage, utcnow

log = logging.getLogger(__name__)


class Outbox:
    """Hands outbox messages to a job queue: RQ, or this process (inline)."""

    def __init__(self, session_factory: sessionmaker[Session], jobs: JobQueue,
                 inline: bool) -> None:
        self._session_factory = session_factory
        self._jobs = jobs
        self._inline = inline

    def dispatch(self, ids: Sequence[int] | None = None, limit: int = 500) -> int:
        """Hand waiting messages (these ids, or the oldest) to the queue; return how many.

        A queue that refuses stops the round: the message keeps waiting, with its error.
        Inline jobs run after the claim is committed, each in its own transaction.
        """
        handed: list[tuple[str, tuple[JobArg, ...]]] = []
        with self._session_factory() as session, session.begin():
            statement = (select(OutboxMessage).where(OutboxMessage.dispatched_at.is_(None))
                         .order_by(OutboxMessage.id).limit(limit)
                         .with_for_update(skip_locked=True))
            if ids is not None:
                statement = statement.where(OutboxMessage.id.in_(ids))
            for message in session.scalars(statement):
                message.attempts += 1
                if not self._inline:
                    try:
                        self._jobs.enqueue(message.job, tuple(message.args),
                                           key=f"outbox-{message.id}")
                    except Exception as error:  # the queue is down: try again later
                        message.last_error = f"{type(error).__name__}: {error}"[:500]
                        log.warning("outbox message %s waits: %s", message.id, error)
                        break
                message.dispatched_at = utcnow()
                handed.append((message.job, tuple(message.args)))
        if self._inline:
            for job, args in handed:
                self._jobs.enqueue(job, args)
        return len(handed)

    def backlog(self) -> tuple[int, float | None]:
        """Return how many messages wait, and the age in seconds of the oldest."""
        with self._session_factory() as session:
            waiting, oldest = session.execute(
                select(func.count(OutboxMessage.id), func.min(OutboxMessage.created_at))
                .where(OutboxMessage.dispatched_at.is_(None))).one()
        age = (utcnow() - oldest).total_seconds() if oldest is not None else None
        return int(waiting), age


def start_dispatcher(outbox: Outbox, every: float) -> threading.Thread:
    """Dispatch waiting messages every `every` seconds in a daemon thread (in `oms worker`)."""
    def loop() -> None:
        while True:
            time.sleep(every)
            try:
                outbox.dispatch()
            except Exception:  # the database or Redis is away: the next round retries
                log.exception("outbox dispatch failed")

    thread = threading.Thread(target=loop, name="outbox-dispatcher", daemon=True)
    thread.start()
    return thread
