"""Jobs run after the commit that asked for them: inline by default, on RQ with Redis."""

from __future__ import annotations

import uuid
from datetime import timedelta

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry
from sqlalchemy import event, func, select

from adapters import idempotency
from adapters.bootstrap import build_services, using
from adapters.queue import RqJobQueue, run_worker
from adapters.settings import Settings
from engine.ports import QueuedJob
from engine.record import IdempotencyRecord, OutboxMessage, utcnow
from tests.conftest import load_catalog, order_body


def _old_and_new_keys(services) -> None:
    with services.uow() as uow:
        from engine.access import create_api_key

        key, _ = create_api_key(uow, f"k-{uuid.uuid4().hex[:6]}", "ops")
        now = utcnow()
        for name, created in (("old", now - timedelta(hours=30)), ("new", now)):
            uow.session.add(IdempotencyRecord(
                api_key_id=key.id, key=name, fingerprint="f", state="completed",
                created_at=created, locked_at=created, claim_token="t"))
        uow.commit()


def _keys_left(services) -> list[str]:
    with services.uow() as uow:
        return sorted(uow.session.scalars(select(IdempotencyRecord.key)), reverse=True)


def test_without_redis_a_job_runs_inline_right_after_the_commit(database_url):
    services = build_services(Settings(database_url=database_url))
    _old_and_new_keys(services)
    with services.uow() as uow:
        uow.enqueue_after_commit("jobs.maintenance.purge_idempotency_keys")
        assert _keys_left(services) == ["old", "new"]  # nothing runs before the commit
        uow.commit()
    assert _keys_left(services) == ["new"]
    services.close()


def test_a_rolled_back_transaction_starts_no_job(database_url):
    services = build_services(Settings(database_url=database_url))
    _old_and_new_keys(services)
    with services.uow() as uow:
        uow.enqueue_after_commit("jobs.maintenance.purge_idempotency_keys")
        uow.rollback()
    assert _keys_left(services) == ["old", "new"]
    services.close()


def test_with_redis_the_job_waits_on_the_queue_until_an_rq_worker_runs_it(database_url,
                                                                         redis_url):
    queue_name = f"oms-test-{uuid.uuid4().hex[:8]}"
    services = build_services(Settings(database_url=database_url, redis_url=redis_url,
                                       queue_name=queue_name))
    assert isinstance(services.jobs, RqJobQueue)
    _old_and_new_keys(services)
    with services.uow() as uow:
        uow.enqueue_after_commit("jobs.maintenance.purge_idempotency_keys")
        uow.commit()
    redis = Redis.from_url(redis_url)
    assert Queue(queue_name, connection=redis).count == 1
    assert _keys_left(services) == ["old", "new"]  # queued, not yet run
    with using(services):
        run_worker(redis, queue_name, burst=True, fork=False)
    assert _keys_left(services) == ["new"]
    assert Queue(queue_name, connection=redis).count == 0
    # running the same job again is harmless
    with using(services):
        services.jobs.enqueue("jobs.maintenance.purge_idempotency_keys", ())
        run_worker(redis, queue_name, burst=True, fork=False)
    assert _keys_left(services) == ["new"]
    redis.close()
    services.close()


def test_jobs_of_one_name_handed_over_together_run_as_one_queue_job_and_a_failed_call_alone(
        database_url, redis_url):
    queue_name = f"oms-test-{uuid.uuid4().hex[:8]}"
    services = build_services(Settings(database_url=database_url, redis_url=redis_url,
                                       queue_name=queue_name))
    _old_and_new_keys(services)
    redis = Redis.from_url(redis_url)
    jobs = RqJobQueue(redis, queue_name, retry_seconds=(0,))
    purge = "jobs.maintenance.purge_idempotency_keys"
    jobs.enqueue_many([QueuedJob(purge, (), "outbox-1"), QueuedJob(purge, (), "outbox-2"),
                       QueuedJob(purge, ("not hours",), "outbox-3")])
    queue = Queue(queue_name, connection=redis)
    assert queue.count == 1  # three calls, one queue job
    with using(services):
        run_worker(redis, queue_name, burst=True, fork=False)
    assert _keys_left(services) == ["new"]  # the first call purged; the second found none
    # the failed call was queued again on its own, retried once, and is failed alone
    failed = FailedJobRegistry(queue=queue)
    [job_id] = failed.get_job_ids()
    job = Job.fetch(job_id, connection=redis)
    assert (job.func_name, job.args) == (purge, ("not hours",))
    redis.close()
    services.close()


def test_a_batch_of_notices_is_sent_in_one_transaction_each_once_and_none_while_held(
        make_app, redis_url, admin, services):
    queue_name = f"oms-test-{uuid.uuid4().hex[:8]}"
    app = make_app(REDIS_URL=redis_url, QUEUE_NAME=queue_name)
    client, built = app.test_client(), app.extensions["oms"]
    load_catalog(client, admin, built)
    ids = [client.post("/orders", json=order_body(), headers=admin).json["id"]
           for _ in range(3)]
    held = client.post(f"/orders/{ids[2]}/hold", json={"reason": "customer called"},
                       headers=admin)
    assert held.json["status"] == "on_hold", held.json
    redis = Redis.from_url(redis_url)
    queue = Queue(queue_name, connection=redis)
    queue.empty()  # what the orders themselves asked for
    notify = "jobs.fulfilment.notify_customer"
    calls = [(ids[0], "delay:1"), (ids[1], "delay:1"), (ids[0], "delay:1"),
             (ids[2], "shipped:9"), (10**9, "delay:1")]
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(built.engine, "before_cursor_execute", count)
    try:
        for _ in range(2):  # the same batch twice: a retry, or a second dispatch
            built.jobs.enqueue_many([QueuedJob(notify, call) for call in calls])
            assert queue.count == 1
            with using(built):
                run_worker(redis, queue_name, burst=True, fork=False)
    finally:
        event.remove(built.engine, "before_cursor_execute", count)
    told = {order_id: [e["data"]["kind"] for e in client.get(
        f"/orders/{order_id}/events", headers=admin).json["items"]
        if e["type"] == "customer.notified" and e["data"]["kind"] != "confirmation"]
        for order_id in ids}
    # once each, whatever the repeats; the held order is told nothing shipped
    assert told == {ids[0]: ["delay:1"], ids[1]: ["delay:1"], ids[2]: []}
    writes = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    assert len(statements) < 20 and len(writes) <= 4, statements  # not one transaction a call
    redis.close()


def test_purge_counts_what_it_removed(database_url):
    services = build_services(Settings(database_url=database_url))
    _old_and_new_keys(services)
    with services.uow() as uow:
        removed = idempotency.purge(uow.session, utcnow() - timedelta(hours=24))
        uow.commit()
    assert removed == 1
    with services.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 1
    services.close()


def test_a_large_simulation_runs_as_an_rq_job_and_its_result_is_kept(make_app, redis_url,
                                                                    admin, catalog, client):
    from tests.conftest import order_body

    for _ in range(3):
        client.post("/orders", json=order_body(), headers=admin)
    queue_name = f"oms-test-{uuid.uuid4().hex[:8]}"
    app = make_app(REDIS_URL=redis_url, QUEUE_NAME=queue_name)
    queued = app.test_client().post("/rules/validation/simulations", headers=admin,
                                    json={"version": 1, "last": 20_000})
    assert queued.status_code == 202
    assert queued.json["state"] == "queued"
    location = queued.headers["Location"]
    assert app.test_client().get(location, headers=admin).json["state"] == "queued"
    services = app.extensions["oms"]
    redis = Redis.from_url(redis_url)
    with using(services):
        run_worker(redis, queue_name, burst=True, fork=False)
    done = app.test_client().get(location, headers=admin).json
    assert done["state"] == "done"
    assert (done["result"]["orders"], done["result"]["changed"]) == (3, 0)
    # a second delivery of the same job finds it done and keeps the first result
    from jobs.rules import run_simulation

    with using(services):
        assert run_simulation(done["id"]) == "done"
    assert app.test_client().get(location, headers=admin).json == done
    redis.close()


def test_without_redis_the_simulation_job_runs_right_after_the_request(client, admin,
                                                                       catalog):
    from tests.conftest import order_body

    client.post("/orders", json=order_body(), headers=admin)
    queued = client.post("/rules/validation/simulations", headers=admin, json={"version": 1})
    assert queued.status_code == 202
    done = client.get(queued.headers["Location"], headers=admin).json
    assert (done["state"], done["result"]["orders"]) == ("done", 1)
    assert client.get("/rules/validation/simulations/999", headers=admin).status_code == 404


def test_the_work_a_change_asks_for_is_kept_in_its_transaction_while_redis_is_down(
        make_app, redis_url, admin, catalog, client, services):
    """Redis unreachable when stock arrives: the receipt is accepted, the backorder job
    waits in the outbox, and once Redis is back it runs exactly once."""
    from jobs.inventory import allocate_backorders
    from tests.conftest import order_body, stock

    stock(services, {("LAMP-1", "WH-SP"): 0})
    lamps = [{"sku": "LAMP-1", "quantity": 2, "unit_price": "89.90"}]
    waiting = client.post("/orders", json=order_body(customer_id="C-BEN", lines=lamps),
                          headers=admin).json
    assert waiting["status"] == "backordered"
    queue_name = f"oms-test-{uuid.uuid4().hex[:8]}"
    down = make_app(REDIS_URL="redis://127.0.0.1:1/0", QUEUE_NAME=queue_name)
    receipt = down.test_client().post("/inventory/receipts", headers=admin, json={
        "sku": "LAMP-1", "location": "WH-SP", "quantity": 2, "reference": "PO-9"})
    assert receipt.status_code == 200
    up = make_app(REDIS_URL=redis_url, QUEUE_NAME=queue_name)
    ready = up.test_client().get("/readyz").json
    assert ready["outbox"]["waiting"] == 1 and ready["outbox"]["oldest_seconds"] >= 0
    with services.uow() as uow:
        [message] = uow.session.scalars(select(OutboxMessage))
        assert (message.job, message.args, message.dispatched_at) == (
            "jobs.inventory.allocate_backorders", ["LAMP-1"], None)
        assert "ConnectionError" in message.last_error
    # Redis is back: a dispatcher hands it over once, a worker runs it
    built = up.extensions["oms"]
    assert built.outbox.dispatch() == 1
    assert built.outbox.dispatch() == 0  # handed once
    redis = Redis.from_url(redis_url)
    assert Queue(queue_name, connection=redis).count == 1
    with using(built):
        run_worker(redis, queue_name, burst=True, fork=False)
        assert allocate_backorders("LAMP-1") == []  # a second run finds nothing to do
    redis.close()
    # allocated, and the release it caused ran in the same burst
    assert client.get(f"/orders/{waiting['id']}", headers=admin).json["status"] == "released"
    assert up.test_client().get("/readyz").json["outbox"]["waiting"] == 0
