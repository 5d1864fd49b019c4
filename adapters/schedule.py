"""The periodic jobs, and the loop that starts them on time.

Several schedulers may run (one per host, say): on Redis each slot of each job is claimed
once with SET NX, so a job is started once per period however many schedulers run.
Without Redis the serving process runs the loop itself, in a background thread
(`start_in_process`): there is no queue, so each job runs in that thread, once per period.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from adapters.bootstrap import Services
from engine import job_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    job: str
    every_seconds: int
    why: str


SCHEDULE = (
    Periodic(job_names.RELEASE_WAVE_JOB, 10,
             "release to each warehouse the wave whose oldest group has waited OMS_WAVE_SECONDS"),
    Periodic(job_names.LABEL_WAVE_JOB, 10,
             "buy the labels of each carrier's wave whose oldest package has waited the period"),
    Periodic(job_names.BILLING_WAVE_JOB, 10,
             "bill what shipped once the oldest unbilled shipment has waited the period"),
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


def schedule(services: Services) -> tuple[Periodic, ...]:
    """The periodic jobs with the periods the settings override (OMS_SCHEDULE_SECONDS)."""
    overrides = services.settings.schedule_overrides
    return tuple(replace(periodic, every_seconds=overrides.get(periodic.job,
                                                                periodic.every_seconds))
                 for periodic in SCHEDULE)


def due(services: Services, now: float) -> list[Periodic]:
    """Claim the jobs whose period has a new slot at `now` (each slot once, on Redis)."""
    claimed = []
    for periodic in schedule(services):
        slot = int(now // periodic.every_seconds)
        if services.redis is None:
            claimed.append(periodic)
            continue
        key = f"oms:{services.settings.queue_name}:schedule:{periodic.job}:{slot}"
        if services.redis.set(key, "1", nx=True, ex=periodic.every_seconds * 2):
            claimed.append(periodic)
    return claimed


def run_scheduler(services: Services, tick_seconds: float = 5.0, once: bool = False,
                  clock: Callable[[], float] = time.time,
                  stop: threading.Event | None = None) -> None:
    """Start each periodic job once per period, and dispatch the outbox on every tick,
    until `stop` is set."""
    started: dict[str, int] = {}
    stop = stop or threading.Event()
    while not stop.is_set():
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
        stop.wait(tick_seconds)


class InProcessScheduler:
    """The scheduler loop on a daemon thread of this process; `stop()` ends it cleanly
    (the job running at that moment finishes first)."""

    def __init__(self, services: Services, tick_seconds: float) -> None:
        self._stop = threading.Event()
        self.thread = threading.Thread(
            target=run_scheduler, name="oms-scheduler", daemon=True,
            kwargs={"services": services, "tick_seconds": tick_seconds, "stop": self._stop})

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout)


def wants_in_process(services: Services, testing: bool = False) -> bool:
    """Tell whether this serving process should run the periodic jobs itself: when asked
    to (OMS_SCHEDULER=in_process), or by default when there is no Redis (so no `oms
    scheduler` with a queue to start them on) and this is not a test app."""
    mode = services.settings.scheduler
    if mode not in ("auto", "in_process", "off"):
        raise ValueError(f"OMS_SCHEDULER is {mode!r}: use auto, in_process or off")
    return mode == "in_process" or (mode == "auto" and services.redis is None and not testing)


def start_in_process(services: Services) -> InProcessScheduler:
    """Start the periodic jobs in a background thread of this process; they stop when the
    services are closed."""
    scheduler = InProcessScheduler(services, float(services.settings.scheduler_tick_seconds))
    services.on_close(scheduler.stop)
    scheduler.thread.start()
    log.info("periodic jobs run in this process (no Redis)")
    return scheduler
