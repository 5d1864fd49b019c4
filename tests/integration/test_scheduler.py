"""The scheduler starts each periodic job once per period, and the late-shipment job finds
orders past their promise, tells the customer once and lets the exceptions rules decide."""

from __future__ import annotations

import uuid
from datetime import timedelta

from redis import Redis
from rq import Queue
from sqlalchemy import update

from adapters.bootstrap import build_services, using
from adapters.schedule import SCHEDULE, run_scheduler
from adapters.settings import Settings
from engine.models import FulfilmentGroup, utcnow
from tests.conftest import order_body


def test_two_schedulers_start_each_periodic_job_once_per_period(database_url, redis_url):
    queue_name = f"oms-test-{uuid.uuid4().hex[:8]}"
    settings = Settings(database_url=database_url, redis_url=redis_url, queue_name=queue_name)
    first, second = build_services(settings), build_services(settings)
    redis = Redis.from_url(redis_url)
    queue = Queue(queue_name, connection=redis)
    try:
        start = 3600.0 * 500_000  # the start of an hour: every job has a new slot
        for scheduler in (first, second):
            run_scheduler(scheduler, once=True, clock=lambda: start)
        assert sorted(job.func_name for job in queue.get_jobs()) == sorted(
            periodic.job for periodic in SCHEDULE)
        # a minute later only the every-minute jobs are due again, still once
        for scheduler in (first, second):
            run_scheduler(scheduler, once=True, clock=lambda: start + 61)
        assert len(queue.get_jobs()) == len(SCHEDULE) + sum(
            periodic.every_seconds == 60 for periodic in SCHEDULE)
    finally:
        queue.empty()
        for key in redis.scan_iter(f"oms:{queue_name}:schedule:*"):
            redis.delete(key)
        redis.close()
        first.close()
        second.close()


def test_a_late_order_is_found_its_customer_told_once_and_the_rules_decide(
        client, admin, catalog, services):
    from jobs.fulfilment import detect_late_shipments

    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    with services.uow() as uow:  # its promise was yesterday
        uow.session.execute(update(FulfilmentGroup).where(FulfilmentGroup.order_id == order_id)
                            .values(promised_at=utcnow() - timedelta(hours=30)))
        uow.commit()
    with using(services):
        assert detect_late_shipments() == [order_id]
        assert detect_late_shipments() == []  # told once
    events = client.get(f"/orders/{order_id}/events", headers=admin).json["items"]
    delays = [e for e in events if e["type"] == "customer.notified"
              and e["data"]["kind"].startswith("delay:")]
    assert len(delays) == 1
    # Ana is a gold customer more than a day late: the shipped rules hold the order for
    # a call from customer care
    [decision] = [d for d in client.get(f"/orders/{order_id}/decisions", headers=admin)
                  .json["items"] if d["stage"] == "exceptions"]
    assert decision["facts"]["event_type"] == "carrier_delay"
    assert str(decision["facts"]["delay_hours"]) == "30"
    assert decision["outcome"] == "hold"
    [hold] = client.get("/holds", headers=admin).json["items"]
    assert hold["queue"] == "vip-care"
