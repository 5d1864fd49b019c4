"""Job queues: inline (run right after the commit, in-process) or RQ on Redis."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from redis import Redis
from rq import Queue, Retry, SimpleWorker, Worker, get_current_job

from engine.ports import JobArg, QueuedJob

log = logging.getLogger(__name__)


# Calls to systems we do not control fail now and then: retry with backoff (seconds).
DEFAULT_RETRY_SECONDS = (10, 30, 120)


def final_attempt() -> bool:
    """Tell whether the running job has no retry left (inline jobs run once: always)."""
    job = get_current_job()
    return job is None or not job.retries_left


def resolve(job: str) -> Callable[..., Any]:
    """Return the function a dotted job name refers to (jobs.module.function)."""
    module_name, _, function_name = job.rpartition(".")
    if not module_name.startswith("jobs."):
        raise ValueError(f"job {job!r} is not a function of the jobs package")
    function: Callable[..., Any] = getattr(importlib.import_module(module_name), function_name)
    return function


class InlineJobQueue:
    """Run each job in this process as soon as it is handed over (the embedded default)."""

    def __init__(self, context: Callable[[], AbstractContextManager[object]]) -> None:
        self._context = context

    def enqueue(self, job: str, args: tuple[JobArg, ...], key: str | None = None) -> None:
        function = resolve(job)
        with self._context():
            try:
                function(*args)
            except Exception:  # the caller's transaction has committed: log, do not undo
                log.exception("inline job %s%r failed", job, args)

    def enqueue_many(self, jobs: Sequence[QueuedJob]) -> None:
        for queued in jobs:
            self.enqueue(queued.job, queued.args, queued.key)


class RqJobQueue:
    """Enqueue jobs on Redis for RQ workers."""

    def __init__(self, redis: Redis, queue_name: str,
                 retry_seconds: tuple[int, ...] = DEFAULT_RETRY_SECONDS) -> None:
        self.queue = Queue(queue_name, connection=redis)
        self.retry = Retry(max=len(retry_seconds), interval=list(retry_seconds))

    def enqueue(self, job: str, args: tuple[JobArg, ...], key: str | None = None) -> None:
        resolve(job)  # fail here, in the caller, on a name no worker could run
        self.queue.enqueue(job, *args, retry=self.retry, job_id=key)

    def enqueue_many(self, jobs: Sequence[QueuedJob]) -> None:
        """Enqueue the jobs in one Redis round trip (a pipeline)."""
        for queued in jobs:
            resolve(queued.job)
        self.queue.enqueue_many([Queue.prepare_data(queued.job, queued.args, retry=self.retry,
                                                    job_id=queued.key) for queued in jobs])


def run_worker(redis: Redis, queue_name: str, burst: bool = False,
               fork: bool = True) -> bool:
    """Work the queue until stopped (or, in burst mode, until it is empty)."""
    worker_class = Worker if fork else SimpleWorker
    worker = worker_class([queue_name], connection=redis)
    return worker.work(burst=burst, with_scheduler=True)
