"""Holds that really hold: a held order is not released, labelled, billed or announced as
shipped; its warehouse is asked to stop; goods that leave anyway are recorded and flagged;
releasing the hold resumes exactly what was stopped, once."""

from __future__ import annotations

import uuid
from decimal import Decimal

from redis import Redis

from adapters.bootstrap import using
from adapters.queue import run_worker
from jobs.fulfilment import resume_stalled_work
from tests.conftest import order_body, stock_level, wms_event

FRAUD = {"reason": "fraud suspicion - stop shipment"}


def events(client, headers, order_id):
    return client.get(f"/orders/{order_id}/events", headers=headers).json["items"]


def types(client, headers, order_id):
    return [event["type"] for event in events(client, headers, order_id)]


def ledger_kinds(client, headers, order_id):
    return [entry["kind"] for entry in
            client.get(f"/orders/{order_id}/ledger", headers=headers).json["items"]]


def notices(client, headers, order_id):
    return [event["data"]["kind"] for event in events(client, headers, order_id)
            if event["type"] == "customer.notified"]


def pick_list(client, headers):
    return [group["id"] for group in
            client.get("/wms/work?location=WH-SP", headers=headers).json["items"]]


def the_group(client, headers, order_id):
    [group] = client.get(f"/orders/{order_id}/fulfilment", headers=headers).json["items"]
    return group


def test_a_hold_stops_the_warehouse_labels_billing_and_notices_until_it_is_released(
        client, admin, make_key, catalog, services):
    ops = make_key("ops")
    # given Ben's order, paid by card, captured and released to the warehouse at once
    order_id = client.post("/orders", json=order_body(customer_id="C-BEN"),
                           headers=admin).json["id"]
    group = the_group(client, ops, order_id)
    assert group["status"] == "released" and pick_list(client, ops) == [group["id"]]

    # when ops hold it for fraud
    held = client.post(f"/orders/{order_id}/hold", json=FRAUD, headers=ops)

    # then it is on hold, off the pick list, and the warehouse was asked to stop it
    assert (held.status_code, held.json["status"]) == (200, "on_hold")
    assert pick_list(client, ops) == []
    assert the_group(client, ops, order_id)["status"] == "on_hold"
    withdrawn = [e for e in events(client, ops, order_id) if e["type"] == "group.withdrawn"]
    assert [(e["data"]["group"], e["data"]["reason"]) for e in withdrawn] == [
        (group["id"], "order on hold")]

    # when the warehouse had already packed the lamps and the mug: no label is bought
    assert wms_event(client, ops, group["id"], "packed", "h-1", package_ref="BOX-1",
               lines=[{"sku": "LAMP-1", "quantity": 2}]).json["outcome"] == "applied"
    assert wms_event(client, ops, group["id"], "packed", "h-2", package_ref="BOX-2",
               lines=[{"sku": "MUG-2", "quantity": 1}]).json["outcome"] == "applied"
    boxes = client.get(f"/orders/{order_id}/shipments", headers=ops).json["items"]
    assert [box["tracking_number"] for box in boxes] == [None, None]

    # and the lamps leave anyway: the shipment is recorded, and flagged for ops
    shipped = wms_event(client, ops, group["id"], "shipped", "h-3", package_ref="BOX-1",
                  tracking_number="WH000000001BR")
    assert shipped.json["outcome"] == "applied"
    assert stock_level(services, "LAMP-1") == (98, 0)
    order = client.get(f"/orders/{order_id}", headers=ops).json
    assert order["status"] == "on_hold"
    assert [line["quantities"]["shipped"] for line in order["lines"]] == [2, 0]
    flagged = client.get("/holds?queue=shipped_while_held", headers=ops).json["items"]
    assert [(h["order_id"], h["stage"]) for h in flagged] == [(order_id, "fulfilment")]
    last_held = [e for e in events(client, ops, order_id) if e["type"] == "order.held"][-1]
    assert [r["code"] for r in last_held["data"]["reasons"]] == ["shipped_while_held"]
    # but nothing is billed, labelled or announced
    assert ledger_kinds(client, ops, order_id) == []
    assert not any(kind.startswith("shipped:") for kind in notices(client, ops, order_id))
    assert "order.partially_shipped" not in types(client, ops, order_id)
    assert "shipment.labelled" not in types(client, ops, order_id)

    # when ops release the hold
    released = client.post(f"/orders/{order_id}/release-hold", json={"note": "checked"},
                           headers=ops)

    # then the order carries on: the shipped package is billed once and announced, the
    # packed mug gets its label, and the group is back on the pick list
    assert (released.status_code, released.json["status"]) == (200, "partially_shipped")
    assert client.get("/holds?queue=shipped_while_held", headers=ops).json["items"] == []
    assert ledger_kinds(client, ops, order_id) == ["authorisation", "capture", "invoice"]
    assert f"shipped:{boxes[0]['id']}" in notices(client, ops, order_id)
    assert types(client, ops, order_id).count("order.partially_shipped") == 1
    boxes = client.get(f"/orders/{order_id}/shipments", headers=ops).json["items"]
    assert boxes[1]["tracking_number"] is not None  # bought on release
    assert pick_list(client, ops) == [group["id"]]
    assert the_group(client, ops, order_id)["status"] == "released"

    # when the mug ships and the sweep looks for stalled work
    assert wms_event(client, ops, group["id"], "shipped", "h-4",
               package_ref="BOX-2").json["outcome"] == "applied"
    with using(services):
        resume_stalled_work(older_than_seconds=0)

    # then everything is billed exactly once, for the whole order
    order = client.get(f"/orders/{order_id}", headers=ops).json
    assert order["status"] == "shipped"
    ledger = client.get(f"/orders/{order_id}/ledger", headers=ops).json
    kinds = [entry["kind"] for entry in ledger["items"]]
    assert kinds == ["authorisation", "capture", "invoice", "capture", "invoice"]
    invoiced = sum(Decimal(e["amount"]) for e in ledger["items"] if e["kind"] == "invoice")
    assert invoiced == Decimal(order["total"]) and ledger["balanced"] is True
    assert client.post(f"/orders/{order_id}/release-hold", json={},
                       headers=ops).status_code == 409


def redis_app(make_app, redis_url):
    queue_name = f"oms-test-{uuid.uuid4().hex[:8]}"
    return make_app(REDIS_URL=redis_url, QUEUE_NAME=queue_name), queue_name


def work(app, redis_url, queue_name):
    """Run every job waiting on the queue, as an RQ worker would."""
    redis = Redis.from_url(redis_url)
    with using(app.extensions["oms"]):
        run_worker(redis, queue_name, burst=True, fork=False)
    redis.close()


def test_a_hold_placed_before_the_release_keeps_the_order_from_the_warehouse(
        make_app, redis_url, admin, catalog):
    app, queue_name = redis_app(make_app, redis_url)
    client = app.test_client()
    # given an order allocated, whose release job waits on the queue
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    assert client.get(f"/orders/{order_id}", headers=admin).json["status"] == "allocated"

    # when it is held before the job runs, and then the job runs
    assert client.post(f"/orders/{order_id}/hold", json=FRAUD,
                       headers=admin).status_code == 200
    work(app, redis_url, queue_name)

    # then nothing went to the warehouse
    group = the_group(client, admin, order_id)
    assert (group["status"], group["wms_reference"]) == ("allocated", None)
    assert pick_list(client, admin) == []
    assert "group.released" not in types(client, admin, order_id)

    # when the hold is released, the order is released to the warehouse
    released = client.post(f"/orders/{order_id}/release-hold", json={}, headers=admin)
    assert released.json["status"] == "allocated"
    work(app, redis_url, queue_name)
    assert client.get(f"/orders/{order_id}", headers=admin).json["status"] == "released"
    assert pick_list(client, admin) == [group["id"]]


def test_a_billing_job_queued_before_the_hold_bills_nothing_until_it_is_released(
        make_app, redis_url, admin, catalog):
    app, queue_name = redis_app(make_app, redis_url)
    client = app.test_client()
    # given Ben's card order, released, whose lamps shipped; their billing job is queued
    order_id = client.post("/orders", json=order_body(customer_id="C-BEN"),
                           headers=admin).json["id"]
    work(app, redis_url, queue_name)
    group = the_group(client, admin, order_id)
    assert wms_event(client, admin, group["id"], "shipped", "b-1", tracking_number="WH000000002BR",
               lines=[{"sku": "LAMP-1", "quantity": 2}]).json["outcome"] == "applied"

    # when the order is held before the job runs, and then the job runs
    held = client.post(f"/orders/{order_id}/hold", json=FRAUD, headers=admin)
    assert held.json["status"] == "on_hold"
    work(app, redis_url, queue_name)

    # then nothing is billed, and the customer is not told it shipped
    assert ledger_kinds(client, admin, order_id) == []
    assert not any(kind.startswith("shipped:") for kind in notices(client, admin, order_id))
    assert pick_list(client, admin) == []

    # when the hold is released: billed once, told once, and the mug back on the pick list
    released = client.post(f"/orders/{order_id}/release-hold", json={}, headers=admin)
    assert released.json["status"] == "partially_shipped"
    work(app, redis_url, queue_name)
    work(app, redis_url, queue_name)
    assert ledger_kinds(client, admin, order_id) == ["authorisation", "capture", "invoice"]
    assert len([k for k in notices(client, admin, order_id) if k.startswith("shipped:")]) == 1
    assert pick_list(client, admin) == [group["id"]]
    group = the_group(client, admin, order_id)
    assert group["wms_reference"] is not None
    assert [(line["sku"], line["quantity"]) for line in group["lines"]] == [("MUG-2", 1)]


def test_a_lost_request_to_stop_a_held_group_is_sent_again_by_the_sweep(
        make_app, redis_url, admin, catalog):
    app, queue_name = redis_app(make_app, redis_url)
    client = app.test_client()
    # given a released order held, whose request to the warehouse to stop was lost
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    work(app, redis_url, queue_name)
    assert client.post(f"/orders/{order_id}/hold", json=FRAUD,
                       headers=admin).status_code == 200
    redis = Redis.from_url(redis_url)
    redis.delete(f"rq:queue:{queue_name}")
    redis.close()
    assert the_group(client, admin, order_id)["wms_reference"] is not None

    # when the stalled-work sweep runs, and its jobs
    with using(app.extensions["oms"]):
        assert resume_stalled_work(older_than_seconds=0) >= 1
    work(app, redis_url, queue_name)

    # then the warehouse was asked, once
    group = the_group(client, admin, order_id)
    assert (group["status"], group["wms_reference"]) == ("on_hold", None)
    assert types(client, admin, order_id).count("group.withdrawn") == 1
