"""Jobs run after the commit that asked for them: inline by default, on RQ with Redis."""

from __future__ import annotations

import uuid
from datetime import timedelta

from redis import Redis
from rq import Queue
from sqlalchemy import func, select

from adapters import idempotency
from adapters.bootstrap import build_services, using
from adapters.queue import RqJobQueue, run_worker
from adapters.settings import Settings
from engine.models import IdempotencyRecord, utcnow


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
