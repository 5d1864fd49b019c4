"""The round trip against partners over real HTTP that misbehave on purpose, with real
Redis and RQ workers: nothing is lost, and nothing is released, labelled or posted twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import func, select

from adapters.bootstrap import using
from adapters.queue import run_worker
from adapters.signing import sign
from engine.record import ExternalEffect, OrderDecision, OutboxMessage, Shipment
from tests.conftest import load_catalog, order_body
from tests.support.peer import PartnerPeer, partner_peer_fixture  # noqa: F401

WMS_SECRET = "wms-events"
CARRIER_SECRET = "carrier-events"
CARRIERS = [c["code"] for c in json.loads(
    (Path(__file__).resolve().parents[2] / "adapters/data/carriers.json").read_text())["carriers"]]


def partners(peer: PartnerPeer, timeout: float | None = None) -> str:
    """OMS_PARTNERS sending the WH-SP warehouse, every carrier and finance to the peer."""
    endpoint = {"url": peer.url, "secrets": [peer.secret],
                "timeout": timeout or peer.client_timeout}
    return json.dumps({"wms": {"WH-SP": endpoint},
                       "carriers": {code: endpoint for code in CARRIERS},
                       "finance": endpoint})


def signed(client, path, payload, secret):
    body = json.dumps(payload).encode()
    return client.post(path, data=body,
                       headers={"Content-Type": "application/json", **sign([secret], body)})


def group_of(client, headers, order_id):
    [group] = client.get(f"/orders/{order_id}/fulfilment", headers=headers).json["items"]
    return group


def drain(app, queue_name):
    """Run an RQ worker in this process until the queue is empty."""
    redis = Redis.from_url(app.extensions["oms"].settings.redis_url)
    try:
        with using(app.extensions["oms"]):
            run_worker(redis, queue_name, burst=True, fork=False)
    finally:
        redis.close()


def test_the_round_trip_runs_against_http_partners(make_app, admin, partner_peer, database_url):
    app = make_app(PARTNERS=partners(partner_peer), WMS_EVENT_SECRETS=WMS_SECRET,
                   CARRIER_EVENT_SECRETS=CARRIER_SECRET)
    client = app.test_client()
    load_catalog(client, admin, app.extensions["oms"])
    order = client.post("/orders", json=order_body(customer_id="C-BEN"), headers=admin).json
    # released to the warehouse over HTTP: its reference is the peer's
    group = group_of(client, admin, order["id"])
    assert (group["status"], group["wms_reference"]) == ("released", "WMS-000001")
    [release] = partner_peer.effects_of("release")
    assert release.body["group_id"] == group["id"]
    assert [item["sku"] for item in release.body["items"]] == ["LAMP-1", "MUG-2"]

    # the warehouse (signing its events) packs the lamps: the label is bought from the
    # carrier's API; then both packages ship
    packed = signed(client, "/wms/events", {
        "event_id": "e1", "type": "packed", "group_id": group["id"], "package_ref": "B1",
        "weight_kg": 2, "lines": [{"sku": "LAMP-1", "quantity": 2}]}, WMS_SECRET)
    assert packed.status_code == 200, packed.json
    [box] = client.get(f"/orders/{order['id']}/shipments", headers=admin).json["items"]
    assert box["tracking_number"] == "TRK00000001"
    assert Decimal(box["label_cost"]) == Decimal("15.00")  # the peer's 10.00 + 2.50/kg
    for event in ({"event_id": "e2", "type": "shipped", "group_id": group["id"],
                   "package_ref": "B1"},
                  {"event_id": "e3", "type": "shipped", "group_id": group["id"],
                   "package_ref": "B2", "tracking_number": "OWN0001",
                   "lines": [{"sku": "MUG-2", "quantity": 1}]}):
        assert signed(client, "/wms/events", event, WMS_SECRET).status_code == 200
    for event_id, tracking in (("c1", "TRK00000001"), ("c2", "OWN0001")):
        assert signed(client, "/carriers/events", {
            "event_id": event_id, "tracking_number": tracking, "status": "delivered"},
            CARRIER_SECRET).json["outcome"] == "applied"
    completed = client.get(f"/orders/{order['id']}", headers=admin).json
    assert completed["status"] == "completed"

    # the finance system saw one authorisation, and a capture and an invoice per package,
    # adding up to the order's total
    assert len(partner_peer.effects_of("authorise")) == 1
    captures, invoices = partner_peer.effects_of("capture"), partner_peer.effects_of("invoice")
    assert len(captures) == len(invoices) == 2
    assert sum(Decimal(e.body["amount"]) for e in captures) == Decimal(completed["total"])
    shipments = client.get(f"/orders/{order['id']}/shipments", headers=admin).json["items"]
    assert [s["invoice_reference"] for s in shipments] == ["INV-000001", "INV-000002"]
    # every effectful call carried an idempotency key and our signature
    effectful = [r for r in partner_peer.requests if r.method == "POST"
                 and not r.path.endswith("/rates")]
    assert effectful and all(r.headers.get("idempotency-key") for r in effectful)
    assert all(r.headers.get("x-oms-signature", "").startswith("v1=") for r in effectful)


def test_a_warehouse_that_times_out_then_succeeds_gets_exactly_one_release(
        make_app, admin, partner_peer, redis_url):
    queue_name = f"oms-test-{uuid.uuid4().hex[:8]}"
    app = make_app(PARTNERS=partners(partner_peer), REDIS_URL=redis_url,
                   QUEUE_NAME=queue_name, JOB_RETRY_SECONDS="0,0,0")
    client = app.test_client()
    load_catalog(client, admin, app.extensions["oms"])
    # the warehouse takes the release but answers too late; the retry asks again
    partner_peer.script("release", "timeout")
    order = client.post("/orders", json=order_body(), headers=admin).json
    assert order["status"] == "allocated"
    drain(app, queue_name)
    releases = [r for r in partner_peer.requests
                if r.path.endswith("/fulfilment-orders/waves")]
    assert len(releases) == 2  # the call that timed out, and the retry
    assert releases[0].headers["idempotency-key"] == releases[1].headers["idempotency-key"]
    assert len(partner_peer.effects_of("release")) == 1  # one release at the peer
    group = group_of(client, admin, order["id"])
    assert (group["status"], group["wms_reference"]) == ("released", "WMS-000001")
    assert client.get(f"/orders/{order['id']}", headers=admin).json["status"] == "released"
    with app.extensions["oms"].uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(ExternalEffect)) == 1


def test_a_warehouse_that_keeps_failing_leaves_the_order_to_the_exceptions_rules(
        make_app, admin, partner_peer):
    app = make_app(PARTNERS=partners(partner_peer))
    client = app.test_client()
    load_catalog(client, admin, app.extensions["oms"])
    partner_peer.script("release", *["500"] * 10)
    order = client.post("/orders", json=order_body(), headers=admin).json
    # jobs run inline (no Redis): each failure goes to the exceptions rules, which send
    # it round again twice, then hold the order in the warehouse queue with the error
    assert len([r for r in partner_peer.requests
                if r.path.endswith("/fulfilment-orders/waves")]) == 3
    assert partner_peer.effects_of("release") == []
    assert client.get(f"/orders/{order['id']}", headers=admin).json["status"] == "on_hold"
    [hold] = client.get("/holds", headers=admin).json["items"]
    assert hold["queue"] == "warehouse"
    assert "500" in hold["reason"]
    decisions = [d["outcome"] for d in client.get(f"/orders/{order['id']}/decisions",
                                                   headers=admin).json["items"]
                 if d["stage"] == "exceptions"]
    assert decisions == ["retry", "retry", "hold"]


def test_orders_taken_while_redis_is_down_are_released_once_it_is_back(
        make_app, admin, redis_url):
    queue_name = f"oms-test-{uuid.uuid4().hex[:8]}"
    down = make_app(REDIS_URL="redis://127.0.0.1:1/0", QUEUE_NAME=queue_name)
    client = down.test_client()
    load_catalog(client, admin, down.extensions["oms"])
    placed = [client.post("/orders", json=order_body(), headers=admin) for _ in range(3)]
    assert [response.status_code for response in placed] == [201, 201, 201]
    with down.extensions["oms"].uow() as uow:
        waiting = list(uow.session.scalars(select(OutboxMessage.job).where(
            OutboxMessage.dispatched_at.is_(None))))
    assert waiting == ["jobs.fulfilment.release_waves"] * 3
    # Redis is back: the dispatcher hands each over once, a worker runs them
    up = make_app(REDIS_URL=redis_url, QUEUE_NAME=queue_name)
    assert up.extensions["oms"].outbox.dispatch() == 3
    assert up.extensions["oms"].outbox.dispatch() == 0
    drain(up, queue_name)
    for response in placed:
        order_id = response.json["id"]
        assert client.get(f"/orders/{order_id}", headers=admin).json["status"] == "released"
        events = [e["type"] for e in client.get(f"/orders/{order_id}/events",
                                                headers=admin).json["items"]]
        assert events.count("group.released") == 1
    assert up.test_client().get("/readyz").json["outbox"]["waiting"] == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_worker_killed_in_the_middle_of_an_invoice_posts_it_exactly_once(
        make_app, admin, redis_url, database_url):
    queue_name = f"oms-test-{uuid.uuid4().hex[:8]}"
    with PartnerPeer(client_timeout=5.0) as peer:
        config = {"PARTNERS": partners(peer), "REDIS_URL": redis_url,
                  "QUEUE_NAME": queue_name, "JOB_RETRY_SECONDS": "1,1,1",
                  "WAVE_SECONDS": "0"}  # the worker below reads its settings from OMS_*
        app = make_app(**config)
        client = app.test_client()
        load_catalog(client, admin, app.extensions["oms"])
        order = client.post("/orders", json=order_body(), headers=admin).json  # net terms
        drain(app, queue_name)  # the release
        group = group_of(client, admin, order["id"])
        everything = [{"sku": "LAMP-1", "quantity": 2}, {"sku": "MUG-2", "quantity": 1}]
        # the finance system will take the invoice, then hang: the worker is killed while
        # it waits for the answer
        peer.script("invoice", "timeout")
        ops = admin
        assert client.post("/wms/events", headers=ops, json={
            "event_id": "s1", "type": "shipped", "group_id": group["id"],
            "tracking_number": "KILL0001", "lines": everything}).status_code == 200
        worker = subprocess.Popen(
            [str(Path(sys.executable).parent / "oms"), "worker"],
            env={**os.environ, **{f"OMS_{name}": value for name, value in config.items()},
                 "OMS_DATABASE_URL": database_url},
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not peer.effects_of("invoice") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(peer.effects_of("invoice")) == 1  # posted at the peer, unanswered
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        with app.extensions["oms"].uow() as uow:
            shipment = uow.session.scalars(select(Shipment)).one()
            assert shipment.invoiced_at is None  # we never heard back

        # recovery: the sweep hands the stalled work out again, a new worker runs it
        from jobs.fulfilment import resume_stalled_work

        with using(app.extensions["oms"]):
            assert resume_stalled_work(older_than_seconds=0) == 1
        drain(app, queue_name)
        assert len(peer.effects_of("invoice")) == 1  # still exactly one at the peer
        invoice_calls = [r for r in peer.requests if r.path.endswith("/invoices")]
        assert len(invoice_calls) == 2 and len(
            {r.headers["idempotency-key"] for r in invoice_calls}) == 1
        with app.extensions["oms"].uow() as uow:
            shipment = uow.session.scalars(select(Shipment)).one()
            assert shipment.invoice_reference == "INV-000001"
            posted = uow.session.scalar(select(func.count()).select_from(ExternalEffect).where(
                ExternalEffect.operation == "invoice"))
            assert posted == 1
            assert uow.session.scalar(select(func.count()).select_from(OrderDecision).where(
                OrderDecision.stage == "exceptions")) == 0
        Queue(queue_name, connection=Redis.from_url(redis_url)).empty()


def test_carriers_that_do_not_push_events_are_asked_where_their_parcels_are(
        make_app, admin, partner_peer):
    from jobs.fulfilment import poll_tracking

    app = make_app(PARTNERS=partners(partner_peer))
    client = app.test_client()
    load_catalog(client, admin, app.extensions["oms"])
    order = client.post("/orders", json=order_body(), headers=admin).json
    group = group_of(client, admin, order["id"])
    assert client.post("/wms/events", headers=admin, json={
        "event_id": "s1", "type": "shipped", "group_id": group["id"],
        "tracking_number": "POLL0001", "lines": [{"sku": "LAMP-1", "quantity": 2},
                                                  {"sku": "MUG-2", "quantity": 1}]}).json[
        "outcome"] == "applied"
    partner_peer.set_tracking(
        "POLL0001",
        {"status": "in_transit", "occurred_at": "2026-11-23T10:00:00+00:00", "detail": "hub"},
        {"status": "delivered", "occurred_at": "2026-11-24T15:00:00+00:00", "detail": None})
    with using(app.extensions["oms"]):
        assert poll_tracking() == 2
        assert poll_tracking() == 0  # delivered: nothing left to ask about
    assert client.get(f"/orders/{order['id']}", headers=admin).json["status"] == "completed"
    events = [e["type"] for e in client.get(f"/orders/{order['id']}/events",
                                            headers=admin).json["items"]]
    assert events.index("shipment.in_transit") < events.index("shipment.delivered")
    assert [r.path for r in partner_peer.requests if r.method == "GET"] == [
        "/tracking/POLL0001"]


def test_a_refund_the_finance_system_keeps_refusing_stops_being_retried_and_is_flagged(
        make_app, admin, partner_peer):
    from jobs.fulfilment import resume_stalled_work

    app = make_app(PARTNERS=partners(partner_peer))
    client = app.test_client()
    load_catalog(client, admin, app.extensions["oms"])
    order = client.post("/orders", json=order_body(customer_id="C-BEN"), headers=admin).json
    group = group_of(client, admin, order["id"])
    assert client.post("/wms/events", headers=admin, json={
        "event_id": "s1", "type": "shipped", "group_id": group["id"],
        "tracking_number": "REF0001", "lines": [{"sku": "LAMP-1", "quantity": 2},
                                                 {"sku": "MUG-2", "quantity": 1}]}).json[
        "outcome"] == "applied"
    partner_peer.script("refund", *["reject"] * 50)
    assert client.post(f"/orders/{order['id']}/returns", headers=admin, json={
        "lines": [{"sku": "MUG-2", "quantity": 1}], "reason": "chipped"}).status_code == 201
    with using(app.extensions["oms"]):
        for _ in range(10):  # the sweep asks again until it gives up
            resume_stalled_work(older_than_seconds=0)
    [returned] = client.get(f"/orders/{order['id']}/returns", headers=admin).json["items"]
    assert returned["settled_at"] is None
    assert returned["settle_failures"] == 5
    assert "422" in returned["last_error"]
    assert len(partner_peer.effects_of("credit_note")) == 1  # the credit note posted once
    assert partner_peer.effects_of("refund") == []
    events = [e["type"] for e in client.get(f"/orders/{order['id']}/events",
                                            headers=admin).json["items"]]
    assert events.count("return.settlement_failed") == 1
    with using(app.extensions["oms"]):
        assert resume_stalled_work(older_than_seconds=0) == 0  # left for a person


def test_a_hold_takes_the_group_back_from_the_warehouse_and_its_release_is_a_new_request(
        make_app, admin, partner_peer):
    app = make_app(PARTNERS=partners(partner_peer))
    client = app.test_client()
    load_catalog(client, admin, app.extensions["oms"])
    # given an order released to the warehouse over HTTP (jobs run inline)
    order = client.post("/orders", json=order_body(), headers=admin).json
    group = group_of(client, admin, order["id"])
    assert (group["status"], group["wms_reference"]) == ("released", "WMS-000001")

    # when it is held, the warehouse is asked to cancel its fulfilment order, once
    assert client.post(f"/orders/{order['id']}/hold", json={"reason": "fraud check"},
                       headers=admin).json["status"] == "on_hold"
    [withdrawal] = partner_peer.effects_of("cancel")
    assert withdrawal.key == f"wms-withdraw-group-{group['id']}-1"
    group = group_of(client, admin, order["id"])
    assert (group["status"], group["wms_reference"]) == ("on_hold", None)

    # when the hold is released, the group is released again with a key of its own, so
    # the warehouse makes a new fulfilment order instead of answering the cancelled one
    assert client.post(f"/orders/{order['id']}/release-hold", json={},
                       headers=admin).json["status"] == "released"
    first, second = partner_peer.effects_of("release")
    assert (first.key, second.key) == (f"wms-release-group-{group['id']}",
                                       f"wms-release-group-{group['id']}-2")
    group = group_of(client, admin, order["id"])
    assert (group["status"], group["wms_reference"]) == ("released", "WMS-000002")
