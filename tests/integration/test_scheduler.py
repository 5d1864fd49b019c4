"""The scheduler starts each periodic job once per period, and the late-shipment job finds
orders past their promise, tells the customer once and lets the exceptions rules decide."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

from redis import Redis
from rq import Queue
from sqlalchemy import update

from adapters.bootstrap import build_services, using
from adapters.schedule import SCHEDULE, run_scheduler
from adapters.settings import Settings
from engine.record import FulfilmentGroup, utcnow
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
        # a minute later only the jobs of a minute or less are due again, still once
        for scheduler in (first, second):
            run_scheduler(scheduler, once=True, clock=lambda: start + 61)
        assert len(queue.get_jobs()) == len(SCHEDULE) + sum(
            periodic.every_seconds <= 60 for periodic in SCHEDULE)
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


def _scheduler_threads():
    return [thread for thread in threading.enumerate() if thread.name == "oms-scheduler"]


def _eventually(check, seconds=15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_without_redis_the_service_runs_the_periodic_jobs_itself(make_app, admin, catalog):
    from tests.e2e.test_webhooks import Receiver, make_due

    receiver = Receiver()
    receiver.thread.start()
    receiver.answers = [500]  # the first attempt fails
    try:
        # given the service as the README runs it (no Redis, not a test app), with short
        # periods for the webhook retries and the late-shipment check
        app = make_app(TESTING=False, WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
                       SCHEDULER_TICK_SECONDS="0.1",
                       SCHEDULE_SECONDS="jobs.webhooks.retry_due=1,"
                                        "jobs.fulfilment.detect_late_shipments=1")
        services = app.extensions["oms"]
        assert services.redis is None and len(_scheduler_threads()) == 1
        client = app.test_client()
        subscription = client.post("/webhooks/subscriptions", headers=admin, json={
            "url": receiver.url + "/hook", "event_types": ["order.created"]}).json
        # when an order is posted and its webhook fails once
        posted = client.post("/orders", json=order_body(), headers=admin)
        assert posted.status_code == 201, posted.json
        order_id = posted.json["id"]
        def attempted() -> bool:  # the first attempt may follow the response by a moment
            items = client.get(f"/webhooks/subscriptions/{subscription['id']}/deliveries",
                               headers=admin).json["items"]
            return bool(items and items[0]["attempts"])

        assert _eventually(attempted)
        [delivery] = client.get(f"/webhooks/subscriptions/{subscription['id']}/deliveries",
                                headers=admin).json["items"]
        assert (delivery["status"], delivery["attempts"]) == ("pending", 1)
        make_due(services, delivery["id"])  # its 30 s wait has passed

        # then the in-process scheduler retries it, and it is delivered
        def delivered():
            [found] = client.get(f"/webhooks/subscriptions/{subscription['id']}/deliveries",
                                 headers=admin).json["items"]
            return found["status"] == "delivered"

        assert _eventually(delivered)
        assert len(receiver.requests) == 2
        # and when the order's promise has passed, the late-shipment check (every 15
        # minutes, here every second) finds it and tells the customer
        with services.uow() as uow:
            uow.session.execute(update(FulfilmentGroup)
                                .where(FulfilmentGroup.order_id == order_id)
                                .values(promised_at=utcnow() - timedelta(hours=30)))
            uow.commit()

        def told():
            events = client.get(f"/orders/{order_id}/events", headers=admin).json["items"]
            return any(e["type"] == "customer.notified"
                       and e["data"]["kind"].startswith("delay:") for e in events)

        assert _eventually(told)
        # and closing the service stops the scheduler
        services.close()
        assert _scheduler_threads() == []
    finally:
        receiver.close()


def test_a_test_app_or_one_with_redis_leaves_the_periodic_jobs_to_the_scheduler(
        make_app, redis_url):
    make_app()
    make_app(TESTING=False, REDIS_URL=redis_url,
             QUEUE_NAME=f"oms-test-{uuid.uuid4().hex[:8]}")
    assert _scheduler_threads() == []
