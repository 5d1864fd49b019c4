"""Release to each warehouse in waves: one call per location per wave carrying every group
that is ready, cut on a period (OMS_WAVE_SECONDS) or a size (OMS_WAVE_SIZE), whichever comes
first; each group sent once however many wave jobs run; ops can hold an order until then.
Labels and billing go in waves of the same shape."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta

from redis import Redis
from rq import Queue
from sqlalchemy import event, update

from adapters.bootstrap import using
from engine.job_names import NOTIFY_JOB
from engine.record import FulfilmentGroup, OutboxMessage, Shipment, utcnow
from jobs.fulfilment import buy_labels, release_waves, run_billing
from tests.conftest import load_catalog, order_body
from tests.integration.test_partner_round_trip import CARRIERS
from tests.support.peer import PartnerPeer, partner_peer_fixture  # noqa: F401

WAVES = "/fulfilment-orders/waves"


def warehouse_at(peer: PartnerPeer) -> str:
    """OMS_PARTNERS sending the WH-SP warehouse to the peer (the rest stays embedded)."""
    return json.dumps({"wms": {"WH-SP": {"url": peer.url, "secrets": [peer.secret],
                                         "timeout": 5}}})


def capture(client, admin, count: int) -> list[dict]:
    orders = []
    for _ in range(count):
        posted = client.post("/orders", json=order_body(
            lines=[{"sku": "MUG-2", "quantity": 1, "unit_price": "24.50"}]), headers=admin)
        assert posted.status_code == 201, posted.json
        orders.append(posted.json)
    return orders


def groups_of(client, admin, order_id: int) -> list[dict]:
    return client.get(f"/orders/{order_id}/fulfilment", headers=admin).json["items"]


def status(client, admin, order_id: int) -> str:
    return client.get(f"/orders/{order_id}", headers=admin).json["status"]


def waves(peer: PartnerPeer) -> list[list[int]]:
    """The group ids of each wave the warehouse was sent, in the order it got them."""
    return [[order["group_id"] for order in request.body["orders"]]
            for request in peer.requests if request.path == WAVES]


def window_passes(services, seconds: int = 301) -> None:
    """Make every waiting group as old as the window (time passes for the waves)."""
    with services.uow() as uow:
        uow.session.execute(update(FulfilmentGroup).where(FulfilmentGroup.ready_at.is_not(None))
                            .values(ready_at=utcnow() - timedelta(seconds=seconds)))
        uow.commit()


def test_a_wave_releases_every_ready_group_of_a_location_in_one_call_exactly_once(
        make_app, admin, partner_peer):
    # given a warehouse over HTTP, a five-minute window, and four orders captured
    app = make_app(PARTNERS=warehouse_at(partner_peer), WAVE_SECONDS=300)
    services, client = app.extensions["oms"], app.test_client()
    load_catalog(client, admin, services)
    orders = capture(client, admin, 4)
    # then within the window the warehouse has nothing yet: the orders wait, allocated
    assert waves(partner_peer) == []
    assert {status(client, admin, order["id"]) for order in orders} == {"allocated"}
    # when the window has passed and the wave job runs, twice (a retry, a second worker)
    window_passes(services)
    with using(services):
        assert release_waves() == 4
        assert release_waves() == 0
    # then the warehouse got one call carrying all four groups, each applied once
    groups = [groups_of(client, admin, order["id"])[0] for order in orders]
    assert waves(partner_peer) == [[group["id"] for group in groups]]
    effects = partner_peer.effects_of("release")
    assert sorted(effect.key for effect in effects) == sorted(
        f"wms-release-group-{group['id']}" for group in groups)
    # and each group and order is released as a single release would leave it
    for order, group in zip(orders, groups, strict=True):
        assert group["status"] == "released" and group["wms_reference"].startswith("WMS-")
        assert status(client, admin, order["id"]) == "released"
        events = [e["type"] for e in client.get(f"/orders/{order['id']}/events",
                                                headers=admin).json["items"]]
        assert events.count("group.released") == 1 and events.count("order.released") == 1


def test_a_group_held_before_its_wave_is_not_sent_and_goes_in_a_later_one(
        make_app, admin, partner_peer):
    app = make_app(PARTNERS=warehouse_at(partner_peer), WAVE_SECONDS=300)
    services, client = app.extensions["oms"], app.test_client()
    load_catalog(client, admin, services)
    first, held, third = capture(client, admin, 3)
    # given ops hold one order within the window
    assert client.post(f"/orders/{held['id']}/hold", json={"reason": "call the customer"},
                       headers=admin).status_code == 200
    # when the wave is cut, it carries the two others only
    window_passes(services)
    with using(services):
        assert release_waves() == 2
    [group] = groups_of(client, admin, held["id"])
    assert waves(partner_peer) == [[groups_of(client, admin, order["id"])[0]["id"]
                                    for order in (first, third)]]
    assert group["status"] == "allocated" and group["wms_reference"] is None
    # when the hold is released (the group kept its place in line, past its window), it
    # goes in the next wave, alone
    assert client.post(f"/orders/{held['id']}/release-hold", json={},
                       headers=admin).status_code == 200
    assert waves(partner_peer)[1:] == [[group["id"]]]
    assert status(client, admin, held["id"]) == "released"


def test_a_wave_is_cut_on_its_size_before_its_period(make_app, admin, partner_peer):
    # given waves of at most two groups and a five-minute window
    app = make_app(PARTNERS=warehouse_at(partner_peer), WAVE_SECONDS=300, WAVE_SIZE=2)
    services, client = app.extensions["oms"], app.test_client()
    load_catalog(client, admin, services)
    # when five orders are captured: every second one fills a wave, which goes at once
    orders = capture(client, admin, 5)
    assert [len(wave) for wave in waves(partner_peer)] == [2, 2]
    assert status(client, admin, orders[4]["id"]) == "allocated"
    # then the fifth waits for the period, and goes alone: three calls in all
    window_passes(services)
    with using(services):
        assert release_waves() == 1
    assert [len(wave) for wave in waves(partner_peer)] == [2, 2, 1]
    assert sorted(group for wave in waves(partner_peer) for group in wave) == sorted(
        groups_of(client, admin, order["id"])[0]["id"] for order in orders)


def test_two_wave_jobs_racing_send_each_group_once(make_app, admin, partner_peer):
    # given twelve groups waiting past their window
    app = make_app(PARTNERS=warehouse_at(partner_peer), WAVE_SECONDS=300)
    client = app.test_client()
    load_catalog(client, admin, app.extensions["oms"])
    orders = capture(client, admin, 12)
    window_passes(app.extensions["oms"])
    # and workers cutting waves of five, to a warehouse slow to answer
    workers = make_app(PARTNERS=warehouse_at(partner_peer), WAVE_SECONDS=300, WAVE_SIZE=5)
    partner_peer.slow_delay = 0.3
    partner_peer.script("release", *["slow"] * 6)
    # when two workers run the wave job at the same moment
    results: list[int] = []
    start = threading.Barrier(2)

    def worker() -> None:
        with using(workers.extensions["oms"]):
            start.wait()
            results.append(release_waves())

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # then the twelve groups were sent once between them, in waves of at most five
    sent = [group for wave in waves(partner_peer) for group in wave]
    assert sorted(sent) == sorted(groups_of(client, admin, order["id"])[0]["id"]
                                  for order in orders)
    assert sorted(results) in ([0, 12], [5, 7], [2, 10], [1, 11], [6, 6], [3, 9], [4, 8])
    assert all(len(wave) <= 5 for wave in waves(partner_peer))
    assert len(partner_peer.effects_of("release")) == 12
    assert {status(client, admin, order["id"]) for order in orders} == {"released"}


def test_a_wave_costs_the_same_statements_for_ten_groups_as_for_fifty(
        make_app, admin, redis_url):
    # given jobs on Redis (not run here) and a window long enough to fill waves by hand
    queue_name = f"oms-test-{uuid.uuid4().hex[:8]}"
    app = make_app(REDIS_URL=redis_url, QUEUE_NAME=queue_name, WAVE_SECONDS=300)
    services, client = app.extensions["oms"], app.test_client()
    load_catalog(client, admin, services)
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    def wave_of(size: int) -> tuple[int, int]:
        capture(client, admin, size)
        window_passes(services)
        statements.clear()
        event.listen(services.engine, "before_cursor_execute", count)
        try:
            with using(services):
                assert release_waves("WH-SP") == size
        finally:
            event.remove(services.engine, "before_cursor_execute", count)
        return len(statements), sum(not s.startswith("INSERT") for s in statements)

    try:
        # when a wave of ten groups is released, then one of fifty
        ten, fifty = wave_of(10), wave_of(50)
    finally:
        Queue(queue_name, connection=Redis.from_url(redis_url)).empty()
    # then both took the same number of statements
    # then both took the same number of statements. SQLite's RETURNING does not promise
    # the rows' order, so SQLAlchemy's ORM inserts one row per statement there (in
    # process, no round trip): on SQLite the same holds for everything but those inserts
    if services.engine.dialect.name == "postgresql":
        assert ten == fifty, (ten, fifty)
    else:
        assert ten[1] == fifty[1], (ten, fifty)


def test_the_embedded_service_releases_its_waves_on_schedule(make_app, admin):
    # given the service as the README runs it (no Redis, not a test app), with a window
    # of one second
    app = make_app(TESTING=False, WAVE_SECONDS=1, SCHEDULER_TICK_SECONDS="0.1",
                   SCHEDULE_SECONDS="jobs.fulfilment.release_waves=1")
    services, client = app.extensions["oms"], app.test_client()
    load_catalog(client, admin, services)
    # when an order is captured, it waits for its wave
    [order] = capture(client, admin, 1)
    assert status(client, admin, order["id"]) == "allocated"
    # then the in-process scheduler cuts the wave once its window has passed
    deadline = time.monotonic() + 15
    while status(client, admin, order["id"]) != "released" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status(client, admin, order["id"]) == "released"


# -- labels and billing ----------------------------------------------------------------------

def released_groups(app, admin, count: int) -> list[dict]:
    """`count` orders (every other one paid up front) released to the warehouse."""
    services, client = app.extensions["oms"], app.test_client()
    orders = []
    for number in range(count):
        posted = client.post("/orders", json=order_body(
            customer_id=("C-ANA", "C-BEN")[number % 2],
            lines=[{"sku": "MUG-2", "quantity": 1, "unit_price": "24.50"}]), headers=admin)
        assert posted.status_code == 201, posted.json
        orders.append(posted.json)
    window_passes(services)
    with using(services):
        release_waves()
    return [{**groups_of(client, admin, order["id"])[0], "order_id": order["id"]}
            for order in orders]


def carriers_and_finance_at(peer: PartnerPeer) -> str:
    endpoint = {"url": peer.url, "secrets": [peer.secret], "timeout": 5}
    return json.dumps({"carriers": {code: endpoint for code in CARRIERS}, "finance": endpoint})


def warehouse_says(client, admin, kind: str, groups: list[dict]) -> None:
    for group in groups:
        body = {"event_id": f"{kind}-{group['id']}", "type": kind, "group_id": group["id"],
                "package_ref": f"P{group['id']}"}
        if kind == "packed":
            body |= {"weight_kg": 1, "lines": [{"sku": "MUG-2", "quantity": 1}]}
        answered = client.post("/wms/events", json=body, headers=admin)
        assert answered.status_code == 200, answered.json


def shipments(client, admin, groups: list[dict]) -> list[dict]:
    return [shipment for group in groups for shipment in client.get(
        f"/orders/{group['order_id']}/shipments", headers=admin).json["items"]]


def packages_wait(services, seconds: int = 301) -> None:
    """Make every package as old as the window: packed and shipped that long ago."""
    with services.uow() as uow:
        uow.session.execute(update(Shipment).values(
            created_at=utcnow() - timedelta(seconds=seconds)))
        uow.session.execute(update(Shipment).where(Shipment.shipped_at.is_not(None)).values(
            shipped_at=utcnow() - timedelta(seconds=seconds)))
        uow.commit()


def test_labels_and_bills_wait_for_their_wave_then_go_together_exactly_once(
        make_app, admin, partner_peer):
    # given four orders released, with a carrier and a finance system over HTTP
    app = make_app(WAVE_SECONDS=300, PARTNERS=carriers_and_finance_at(partner_peer))
    services, client = app.extensions["oms"], app.test_client()
    load_catalog(client, admin, services)
    groups = released_groups(app, admin, 4)
    # when their packages are packed, they wait for the label wave
    warehouse_says(client, admin, "packed", groups)
    assert [s["tracking_number"] for s in shipments(client, admin, groups)] == [None] * 4
    # then once the window has passed one wave buys every label, and a second run nothing
    packages_wait(services)
    with using(services):
        assert buy_labels() == 4
        assert buy_labels() == 0
    labelled = shipments(client, admin, groups)
    assert all(s["tracking_number"].startswith("TRK") for s in labelled)
    assert len(partner_peer.effects_of("create_label")) == 4
    # when they ship, the bills wait for the billing run, then go in one, exactly once
    warehouse_says(client, admin, "shipped", groups)
    assert [s["invoice_reference"] for s in shipments(client, admin, groups)] == [None] * 4
    packages_wait(services)
    with using(services):
        assert run_billing() == 4
        assert run_billing() == 0
    assert all(s["invoice_reference"].startswith("INV-")
               for s in shipments(client, admin, groups))
    # each order paid up front was authorised and captured once, each package invoiced once
    assert len(partner_peer.effects_of("authorise")) == 2
    assert len(partner_peer.effects_of("capture")) == 2
    assert len(partner_peer.effects_of("invoice")) == 4
    for group in groups:
        events = [e["type"] for e in client.get(f"/orders/{group['order_id']}/events",
                                                headers=admin).json["items"]]
        assert events.count("shipment.labelled") == events.count("shipment.invoiced") == 1


def test_a_held_order_is_neither_labelled_nor_billed_by_the_wave(make_app, admin):
    app = make_app(WAVE_SECONDS=300)
    services, client = app.extensions["oms"], app.test_client()
    load_catalog(client, admin, services)
    groups = released_groups(app, admin, 2)
    warehouse_says(client, admin, "packed", groups)
    # given one order held after packing
    held = groups[0]["order_id"]
    assert client.post(f"/orders/{held}/hold", json={"reason": "check the address"},
                       headers=admin).status_code == 200
    # when the label wave is cut, only the other package is labelled
    packages_wait(services)
    with using(services):
        assert buy_labels() == 1
    first, second = shipments(client, admin, groups)
    assert first["tracking_number"] is None and second["tracking_number"] is not None


def test_label_and_billing_waves_cost_the_same_statements_for_four_packages_as_for_twelve(
        make_app, admin, redis_url, partner_peer):
    # given carriers and finance over HTTP (the embedded ones keep their books in our
    # database: their statements would be the partner's, not the wave's)
    queue_name = f"oms-test-{uuid.uuid4().hex[:8]}"
    app = make_app(REDIS_URL=redis_url, QUEUE_NAME=queue_name, WAVE_SECONDS=300,
                   PARTNERS=carriers_and_finance_at(partner_peer))
    services, client = app.extensions["oms"], app.test_client()
    load_catalog(client, admin, services)
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    def counted(job, size: int) -> tuple[int, int]:
        packages_wait(services)
        statements.clear()
        event.listen(services.engine, "before_cursor_execute", count)
        try:
            with using(services):
                assert job() == size
        finally:
            event.remove(services.engine, "before_cursor_execute", count)
        return len(statements), sum(not s.startswith("INSERT") for s in statements)

    def waves_of(size: int) -> tuple[tuple[int, int], tuple[int, int]]:
        groups = released_groups(app, admin, size)
        warehouse_says(client, admin, "packed", groups)
        labelled = counted(buy_labels, size)
        warehouse_says(client, admin, "shipped", groups)
        return labelled, counted(run_billing, size)

    try:
        four, twelve = waves_of(4), waves_of(12)
    finally:
        Queue(queue_name, connection=Redis.from_url(redis_url)).empty()
    # as for releases: all statements on PostgreSQL, all but SQLite's one-row inserts there
    if services.engine.dialect.name == "postgresql":
        assert [four[0][0], four[1][0]] == [twelve[0][0], twelve[1][0]], (four, twelve)
    else:
        assert [four[0][1], four[1][1]] == [twelve[0][1], twelve[1][1]], (four, twelve)


def test_the_outbox_hands_thirty_jobs_to_redis_with_the_statements_of_three_as_one_job(
        make_app, redis_url):
    queue_name = f"oms-test-{uuid.uuid4().hex[:8]}"
    app = make_app(REDIS_URL=redis_url, QUEUE_NAME=queue_name)
    services = app.extensions["oms"]
    queue = Queue(queue_name, connection=Redis.from_url(redis_url))
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    def dispatch(waiting: int) -> int:
        with services.uow() as uow:  # messages waiting (written, not yet handed over)
            uow.session.add_all([OutboxMessage(job=NOTIFY_JOB, args=[n, "confirmation"],
                                               created_at=utcnow(), attempts=0)
                                 for n in range(waiting)])
            uow.commit()
        statements.clear()
        event.listen(services.engine, "before_cursor_execute", count)
        try:
            assert services.outbox.dispatch() == waiting
        finally:
            event.remove(services.engine, "before_cursor_execute", count)
        return len(statements)

    try:
        # when three messages are dispatched, then thirty
        three, thirty = dispatch(3), dispatch(30)
        # then Redis has every call, as one queue job per dispatch (same-name jobs go
        # together), and thirty cost the statements of three
        assert sorted(len(job.args[1]) for job in queue.jobs) == [3, 30]
        assert {job.args[0] for job in queue.jobs} == {NOTIFY_JOB}
    finally:
        queue.empty()
    assert three == thirty, (three, thirty)
