"""Reference data kept per process (published rule sets, carriers, webhook subscriptions,
postal areas) is read again as soon as another process changes it, and never keeps what a
transaction wrote and rolled back."""

from __future__ import annotations

import copy
import threading
import time

import pytest
from sqlalchemy import select

from engine.actors import system_actor
from engine.catalog import geo
from engine.decisions import rulesets
from engine.record import ReferenceVersion, WebhookDelivery
from engine.reference_cache import POSTAL_AREAS, WEBHOOKS, cached, versions
from tests.conftest import order_body

RIO = {"country": "BR", "prefix": "20040", "latitude": -22.903, "longitude": -43.176}


@pytest.fixture
def elsewhere(make_app, app):
    """Another process on the same database: its own app, engine and caches."""
    return make_app().test_client()


def stage_decision(client, headers, order_id, stage):
    decisions = client.get(f"/orders/{order_id}/decisions", headers=headers).json["items"]
    return [d for d in decisions if d["stage"] == stage][-1]


def test_a_rule_set_published_by_another_process_decides_this_ones_next_order(
        client, admin, catalog, elsewhere):
    # given this process has decided an order with validation version 1 (and kept it)
    before = client.post("/orders", json=order_body(), headers=admin).json
    assert stage_decision(client, admin, before["id"], "validation")["version"] == 1

    # when another process publishes version 2
    document = elsewhere.get("/rules/validation/versions/1", headers=admin).json["document"]
    draft = elsewhere.post("/rules/validation/versions", headers=admin,
                           json={"document": document, "comment": "same rules, again"})
    assert draft.status_code == 201, draft.json
    published = elsewhere.post("/rules/validation/versions/2/publish", headers=admin,
                               json={"comment": "from the other process"})
    assert published.status_code == 200, published.json

    # then this process's next order is decided by version 2
    after = client.post("/orders", json=order_body(), headers=admin).json
    assert stage_decision(client, admin, after["id"], "validation")["version"] == 2


def test_a_carrier_added_by_another_process_is_rated_for_this_ones_next_order(
        client, admin, catalog, elsewhere):
    # given this process has rated an overnight order (and kept the rate cards)
    def options(order):
        [shipment] = stage_decision(client, admin, order["id"], "carrier")["trace"]
        return {option["option"] for option in shipment["options"]}

    before = client.post("/orders", json=order_body(service_level="overnight"),
                         headers=admin).json
    assert "NEWCO/FLASH" not in options(before)

    # when another process adds a carrier
    assert elsewhere.put("/carriers/NEWCO", headers=admin, json={
        "name": "New Co", "services": [{
            "code": "FLASH", "name": "Flash", "service_level": "overnight", "mode": "ground",
            "max_weight_kg": 30, "cutoff_hour": 24,
            "rates": [{"max_km": 5000, "max_kg": 30, "price": "20.00",
                       "transit_days": 3}]}]}).status_code == 201

    # then this process rates its service for the next order
    after = client.post("/orders", json=order_body(service_level="overnight"),
                        headers=admin).json
    assert "NEWCO/FLASH" in options(after)


def test_a_subscription_made_by_another_process_receives_this_ones_next_event(
        client, admin, catalog, elsewhere, services):
    # given this process has posted an order while nobody subscribed (and kept that)
    client.post("/orders", json=order_body(), headers=admin)

    # when another process subscribes to new orders
    made = elsewhere.post("/webhooks/subscriptions", headers=admin, json={
        "url": "https://hooks.example.com/oms", "event_types": ["order.created"]})
    assert made.status_code == 201, made.json

    # then this process owes the subscriber its next order
    after = client.post("/orders", json=order_body(), headers=admin).json
    with services.uow() as uow:
        owed = [delivery.payload["order_id"] for delivery in uow.session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.subscription_id == made.json["id"]))]
    assert owed == [after["id"]]


def test_a_postal_area_loaded_by_another_process_is_found_by_this_one(client, admin,
                                                                     elsewhere):
    # given this process has looked for a postal code no area holds (and kept the miss)
    lookup = "/postal-areas/lookup?postal_code=20040-020"
    assert client.get(lookup, headers=admin).status_code == 404

    # when another process loads its area
    loaded = elsewhere.post("/postal-areas/bulk", headers=admin, json={"rows": [RIO]})
    assert loaded.json["created"] == 1, loaded.json

    # then this process finds it
    found = client.get(lookup, headers=admin)
    assert (found.status_code, found.json["prefix"]) == (200, "20040")


def test_a_publish_is_seen_in_its_own_transaction_and_by_the_next(services):
    # given a transaction that has read the published validation rules (version 1)
    actor = system_actor("test")
    with services.uow() as uow:
        assert rulesets.deciding_version(uow, "validation").version == 1
        document = copy.deepcopy(rulesets.get_version(uow, "validation", 1).document)

        # when it publishes version 2
        rulesets.create_draft(uow, actor, "validation", document, "again")
        rulesets.publish(uow, actor, "validation", 2, "again")

        # then it decides with version 2 from then on, and so does the next transaction
        assert rulesets.deciding_version(uow, "validation").version == 2
        uow.commit()
        assert rulesets.deciding_version(uow, "validation").version == 2
    with services.uow() as uow:
        assert rulesets.deciding_version(uow, "validation").version == 2


def test_a_write_rolled_back_leaves_neither_its_version_nor_its_data_in_the_cache(services):
    # given the process knows no area for a postal code
    with services.uow() as uow:
        assert geo.locate(uow, "BR", "20040-020") is None
        before = versions(uow.session)

    # when a transaction loads the area, finds it, and rolls back
    with services.uow() as uow:
        geo.upsert_postal_areas(uow, [dict(RIO)])
        assert geo.locate(uow, "BR", "20040-020") == (-22.903, -43.176)
        assert uow.session.scalar(select(ReferenceVersion.version).where(
            ReferenceVersion.name == POSTAL_AREAS)) == before[POSTAL_AREAS] + 1
        uow.rollback()

    # then the next transaction sees the version and the data as they were
    with services.uow() as uow:
        assert versions(uow.session) == before
        assert geo.locate(uow, "BR", "20040-020") is None


def test_threads_that_find_a_kind_out_of_date_read_it_once(services):
    # given eight threads of one process, each in its own transaction, that all find the
    # webhooks' version newer than what the process kept (nothing, here)
    loads: list[int] = []
    start = threading.Barrier(8)

    def load(session):
        loads.append(1)
        time.sleep(0.2)  # long enough for the others to arrive meanwhile
        return ("read once",)

    answers: list[tuple[str, ...]] = []

    def look_up():
        with services.uow() as uow:
            start.wait()
            answers.append(cached(uow.session, WEBHOOKS, load))

    # when they look it up at once
    threads = [threading.Thread(target=look_up) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then one read it, and all got what it read
    assert (len(loads), answers) == (1, [("read once",)] * 8)
