"""Webhook subscriptions cannot point the service at its own network (cloud metadata,
loopback, private ranges) unless OMS_WEBHOOK_ALLOWED_HOSTS allows the host, and a target
is checked again at each send against what its name resolves to then."""

from __future__ import annotations

import pytest

from adapters.bootstrap import using
from jobs import webhooks as webhook_jobs
from tests.conftest import order_body
from tests.e2e.test_webhooks import Receiver

INTERNAL = ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:8080/hook",
            "http://[::1]/hook", "http://10.1.2.3/hook", "http://172.16.0.9/hook",
            "http://172.31.255.1/hook", "http://192.168.1.1/hook", "http://[fc00::1]/hook",
            "http://[fd12:3456::1]/hook", "http://[fe80::1]/hook", "http://0.0.0.0/hook",
            "http://[::ffff:127.0.0.1]/hook", "http://localhost:5000/hook"]


@pytest.fixture
def receiver():
    started = Receiver()
    started.thread.start()
    yield started
    started.close()


@pytest.mark.parametrize("url", INTERNAL)
def test_a_subscription_to_an_internal_address_is_refused(client, admin, url):
    # when ops subscribe a URL on a private, loopback or link-local address
    refused = client.post("/webhooks/subscriptions", headers=admin,
                          json={"url": url, "event_types": ["order.created"]})
    # then it is refused on the url, and nothing is stored
    assert refused.status_code == 422, url
    assert [e["field"] for e in refused.json["errors"]] == ["url"]
    assert "OMS_WEBHOOK_ALLOWED_HOSTS" in refused.json["errors"][0]["message"]
    assert client.get("/webhooks/subscriptions", headers=admin).json["items"] == []


def test_a_subscription_cannot_be_changed_to_point_at_an_internal_address(client, admin):
    # given a subscription to a public host
    created = client.post("/webhooks/subscriptions", headers=admin, json={
        "url": "https://hooks.example.com/oms", "event_types": ["order.created"]}).json
    # when it is changed to the cloud metadata address: refused, and it keeps its URL
    changed = client.patch(f"/webhooks/subscriptions/{created['id']}", headers=admin,
                           json={"url": "http://169.254.169.254/latest/meta-data/"})
    assert changed.status_code == 422
    assert [e["field"] for e in changed.json["errors"]] == ["url"]
    assert client.get(f"/webhooks/subscriptions/{created['id']}",
                      headers=admin).json["url"] == "https://hooks.example.com/oms"


def test_hosts_and_ranges_the_setting_allows_are_accepted(make_app, admin):
    # given a service that allows one internal host name and one private range
    client = make_app(WEBHOOK_ALLOWED_HOSTS="hooks.internal, 10.20.0.0/16").test_client()
    for url in ("http://10.20.3.4/hook", "https://hooks.internal/oms"):
        created = client.post("/webhooks/subscriptions", headers=admin,
                              json={"url": url, "event_types": ["order.created"]})
        assert created.status_code == 201, url
    # and the rest of the private ranges stay refused
    refused = client.post("/webhooks/subscriptions", headers=admin,
                          json={"url": "http://10.21.0.1/", "event_types": ["order.created"]})
    assert refused.status_code == 422


def test_a_target_no_longer_allowed_at_sending_time_gets_nothing(make_app, admin, catalog,
                                                                  receiver, services):
    # given a subscription to a receiver on loopback, made while loopback was allowed
    allowing = make_app(WEBHOOK_ALLOWED_HOSTS="127.0.0.1").test_client()
    created = allowing.post("/webhooks/subscriptions", headers=admin, json={
        "url": receiver.url + "/hook", "event_types": ["order.created"]}).json
    # when the service runs without that allowance and an order is posted
    strict = make_app()
    client = strict.test_client()
    assert client.post("/orders", json=order_body(), headers=admin).status_code == 201
    # then the receiver got nothing: the attempt is recorded as refused, to be retried
    assert receiver.requests == []
    [delivery] = client.get(f"/webhooks/subscriptions/{created['id']}/deliveries",
                            headers=admin).json["items"]
    assert delivery["status"] == "pending" and delivery["attempts"] == 1
    assert "TargetRefusedError" in delivery["last_error"]
    assert "127.0.0.1" in delivery["last_error"]
    with using(strict.extensions["oms"]):
        assert webhook_jobs.retry_due() == 0  # not due yet: it waits like any failure


def test_a_malformed_allowance_stops_the_service_from_starting(make_app):
    with pytest.raises(ValueError, match="not a host name"):
        make_app(WEBHOOK_ALLOWED_HOSTS="hooks.internal, not a host")
