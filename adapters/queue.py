"""Job queues: inline (run right after the commit, in-process) or RQ on Redis."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Any, TypeVar

from redis import Redis
from rq import Queue, Retry, SimpleWorker, Worker, get_current_job

from engine.ports import JobArg, QueuedJob

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


# Calls to systems we do not control fail now and then: retry with backoff (seconds).
DEFAULT_RETRY_SECONDS = (10, 30, 120)


def final_attempt() -> bool:
    """Tell whether the running job has no retry left (inline jobs run once: always; a
    call of a batch never: one that fails is queued again on its own, see `run_each`)."""
    if _IN_BATCH.get():
        return False
    job = get_current_job()
    return job is None or not job.retries_left


_IN_BATCH: ContextVar[bool] = ContextVar("oms_job_in_batch", default=False)
_BATCH_FORMS: dict[Callable[..., Any], Callable[[list[list[JobArg]]], Any]] = {}


def batch_form_of(job: Callable[..., Any]) -> Callable[[F], F]:
    """Declare the decorated function the batch form of a job: given every call's
    arguments, it does what the calls would, in one transaction (`run_each` uses it)."""
    def register(batch: F) -> F:
        _BATCH_FORMS[job] = batch
        return batch
    return register


def run_each(job: str, calls: list[list[JobArg]], retry_seconds: list[int]) -> int:
    """Run a job for every argument list: jobs of one name that the outbox handed over
    together (`RqJobQueue.enqueue_many`) cost one queue job instead of one each. A job with
    a batch form (`batch_form_of`) does them all in one transaction; otherwise, or if that
    fails, each call runs as the job runs alone, in its own transaction, and one that fails
    is queued again on its own, with the job's retries. Returns how many calls succeeded."""
    function = resolve(job)
    failed: list[list[JobArg]] = []
    token = _IN_BATCH.set(True)
    try:
        batch = _BATCH_FORMS.get(function)
        if batch is not None:
            try:
                batch(calls)
                return len(calls)
            except Exception:
                log.warning("%s failed for a batch of %d: each call runs alone", job,
                            len(calls), exc_info=True)
        for args in calls:
            try:
                function(*args)
            except Exception:
                log.warning("%s%r failed in a batch: queued again on its own", job, args,
                            exc_info=True)
                failed.append(args)
    finally:
        _IN_BATCH.reset(token)
    if failed:
        current = get_current_job()
        if current is None:  # called outside a worker: nothing to queue the rest on
            raise RuntimeError(f"{len(failed)} call(s) of {job} failed")
        retry = Retry(max=len(retry_seconds), interval=retry_seconds)
        Queue(current.origin, connection=current.connection).enqueue_many(
            [Queue.prepare_data(job, tuple(args), retry=retry) for args in failed])
    return len(calls) - len(failed)


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
        self.retry_seconds = list(retry_seconds)
        self.retry = Retry(max=len(retry_seconds), interval=self.retry_seconds)

    def enqueue(self, job: str, args: tuple[JobArg, ...], key: str | None = None) -> None:
        resolve(job)  # fail here, in the caller, on a name no worker could run
        self.queue.enqueue(job, *args, retry=self.retry, job_id=key)

    def enqueue_many(self, jobs: Sequence[QueuedJob]) -> None:
        """Enqueue the jobs in one Redis round trip (a pipeline); several of one name go
        as one queue job that runs each (`run_each`)."""
        by_name: dict[str, list[QueuedJob]] = {}
        for queued in jobs:
            resolve(queued.job)
            by_name.setdefault(queued.job, []).append(queued)
        prepared = []
        for job, group in by_name.items():
            if len(group) == 1:
                prepared.append(Queue.prepare_data(job, group[0].args, retry=self.retry,
                                                   job_id=group[0].key))
                continue
            keys = [queued.key for queued in group if queued.key]
            prepared.append(Queue.prepare_data(
                run_each, (job, [list(queued.args) for queued in group], self.retry_seconds),
                timeout=BATCH_TIMEOUT_SECONDS,
                job_id=f"{keys[0]}-and-{len(group) - 1}" if keys else None))
        self.queue.enqueue_many(prepared)


# How long a queue job running a batch of calls may take (RQ's default is 180 s a job).
BATCH_TIMEOUT_SECONDS = 1800


def run_worker(redis: Redis, queue_name: str, burst: bool = False,
               fork: bool = True) -> bool:
    """Work the queue until stopped (or, in burst mode, until it is empty)."""
    worker_class = Worker if fork else SimpleWorker
    worker = worker_class([queue_name], connection=redis)
    return worker.work(burst=burst, with_scheduler=True)
