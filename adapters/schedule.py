"""The periodic jobs, and the loop that starts them on time.

Several schedulers may run (one per host, say): on Redis each slot of each job is claimed
once with SET NX, so a job is started once per period however many schedulers run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from adapters.bootstrap import Services
from engine import job_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    job: str
    every_seconds: int
    why: str


SCHEDULE = (
    Periodic(job_names.RESUME_STALLED_JOB, 60,
             "hand out again release, label and billing work a dead worker left undone"),
    Periodic(job_names.RETRY_WEBHOOKS_JOB, 60, "send webhook deliveries whose retry is due"),
    Periodic(job_names.SWEEP_BACKORDERS_JOB, 300,
             "offer available stock to every waiting backorder"),
    Periodic(job_names.POLL_TRACKING_JOB, 900,
             "ask carriers with an API where undelivered shipments are"),
    Periodic(job_names.LATE_SHIPMENTS_JOB, 900,
             "find shipments past their promise; notify and let the exceptions rules decide"),
    Periodic(job_names.PURGE_KEYS_JOB, 3600,
             "forget Idempotency-Keys past their retention"),
)


def due(services: Services, now: float) -> list[Periodic]:
    """Claim the jobs whose period has a new slot at `now` (each slot once, on Redis)."""
    claimed = []
    for periodic in SCHEDULE:
        slot = int(now // periodic.every_seconds)
        if services.redis is None:
            claimed.append(periodic)
            continue
        key = f"oms:{services.settings.queue_name}:schedule:{periodic.job}:{slot}"
        if services.redis.set(key, "1", nx=True, ex=periodic.every_seconds * 2):
            claimed.append(periodic)
    return claimed


def run_scheduler(services: Services, tick_seconds: float = 5.0, once: bool = False,
                  clock: Callable[[], float] = time.time) -> None:
    """Start each periodic job once per period, and dispatch the outbox on every tick."""
    started: dict[str, int] = {}
    while True:
        now = clock()
        for periodic in due(services, now):
            slot = int(now // periodic.every_seconds)
            if started.get(periodic.job) == slot:
                continue  # without Redis, remember the slots this process started
            started[periodic.job] = slot
            try:
                services.jobs.enqueue(periodic.job, ())
            except Exception:  # Redis down: the next tick tries again
                started.pop(periodic.job)
                log.exception("could not start %s", periodic.job)
        try:
            services.outbox.dispatch()
        except Exception:
            log.exception("dispatching the outbox failed")
        if once:
            return
        time.sleep(tick_seconds)
