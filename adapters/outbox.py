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

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.ports import JobQueue, QueuedJob
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
        """Hand waiting messages (these ids, all of them in batches of `limit`, or the
        `limit` oldest) to the queue; return how many.

        One batch: the messages are claimed and marked handed in one statement, then handed
        to the queue at once (one Redis round trip). A queue that refuses leaves them all
        waiting again, with its error. Inline jobs run after the claim is committed,
        each in its own transaction.
        """
        if ids is None:
            return self._dispatch_batch(None, limit)
        wanted = sorted(ids)
        handed = 0
        for start in range(0, len(wanted), limit):
            sent = self._dispatch_batch(wanted[start:start + limit], limit)
            if sent == 0:
                break  # the queue refuses: the rest wait for the next round
            handed += sent
        return handed

    def _dispatch_batch(self, ids: Sequence[int] | None, limit: int) -> int:
        with self._session_factory() as session, session.begin():
            # claimed and marked in one statement; unmarked again if the queue refuses
            claimed = (select(OutboxMessage.id).where(OutboxMessage.dispatched_at.is_(None))
                       .order_by(OutboxMessage.id).limit(limit)
                       .with_for_update(skip_locked=True))
            if ids is not None:
                claimed = claimed.where(OutboxMessage.id.in_(ids))
            messages = sorted(session.execute(
                update(OutboxMessage).where(OutboxMessage.id.in_(claimed.scalar_subquery()))
                .values(dispatched_at=utcnow(), attempts=OutboxMessage.attempts + 1)
                .returning(OutboxMessage.id, OutboxMessage.job, OutboxMessage.args)
                .execution_options(synchronize_session=False)).all())
            handed = [QueuedJob(job, tuple(args), f"outbox-{message_id}")
                      for message_id, job, args in messages]
            error = None
            if handed and not self._inline:
                try:
                    self._jobs.enqueue_many(handed)
                except Exception as refused:  # the queue is down: try again later
                    error = f"{type(refused).__name__}: {refused}"[:500]
                    log.warning("%d outbox message(s) wait: %s", len(handed), refused)
                    session.execute(
                        update(OutboxMessage)
                        .where(OutboxMessage.id.in_([message_id for message_id, *_ in messages]))
                        .values(dispatched_at=None, last_error=error)
                        .execution_options(synchronize_session=False))
        if error is not None:
            return 0
        if self._inline:
            for queued in handed:
                self._jobs.enqueue(queued.job, queued.args)
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
