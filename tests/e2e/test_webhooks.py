"""Webhooks: every order event a subscriber asked for reaches it signed, retried, replayable."""

from __future__ import annotations

import json
import socket
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import update

from adapters.bootstrap import using
from adapters.signing import SignatureError, verify
from engine.record import WebhookDelivery, utcnow
from engine.webhooks import BACKOFF, MAX_ATTEMPTS
from jobs import webhooks as webhook_jobs
from tests.conftest import order_body


class Receiver:
    """A subscriber on 127.0.0.1 that records every request and answers as it is told."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answers: list[int] = []  # statuses to answer with, in turn; then 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": self.headers,
                                          "body": body})
                status = receiver.answers.pop(0) if receiver.answers else 200
                reply = b"boom" if status >= 500 else b"thanks"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep the test output quiet

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def payloads(self) -> list[dict]:
        return [json.loads(request["body"]) for request in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def app(make_app):
    # the receivers listen on loopback, which subscriptions may reach only when allowed
    return make_app(WEBHOOK_ALLOWED_HOSTS="127.0.0.1")


@pytest.fixture
def receiver():
    started = Receiver()
    started.thread.start()
    yield started
    started.close()


def subscribe(client, headers, url, *event_types):
    response = client.post("/webhooks/subscriptions", headers=headers,
                           json={"url": url, "event_types": list(event_types)})
    assert response.status_code == 201, response.json
    return response.json


def deliveries(client, headers, subscription_id):
    response = client.get(f"/webhooks/subscriptions/{subscription_id}/deliveries",
                          headers=headers)
    assert response.status_code == 200, response.json
    return response.json["items"]


def make_due(services, delivery_id):
    """Move a delivery's next attempt into the past, as if its wait had passed."""
    with services.uow() as uow:
        uow.session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                            .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        uow.commit()


def sweep(services):
    """Run the periodic retry sweep, as the scheduler would."""
    with using(services):
        return webhook_jobs.retry_due()


def test_a_subscriber_receives_a_signed_delivery_when_an_order_is_posted(client, admin,
                                                                         catalog, receiver):
    # given a subscription for order.created, whose secret is shown once
    created = subscribe(client, admin, receiver.url + "/hooks/oms?tenant=7", "order.created")
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert created["active"] is True
    read = client.get(f"/webhooks/subscriptions/{created['id']}", headers=admin).json
    assert "secret" not in read
    assert read["event_types"] == ["order.created"]
    listed = client.get("/webhooks/subscriptions", headers=admin).json["items"]
    assert [s["id"] for s in listed] == [created["id"]] and "secret" not in listed[0]

    # when an order is posted (it is also validated and allocated in the same request)
    order = client.post("/orders", json=order_body(), headers=admin).json
    assert order["status"] == "allocated"

    # then exactly one request arrived: order.created, signed with that secret
    [request] = receiver.requests
    assert request["path"] == "/hooks/oms?tenant=7"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["X-OMS-Event"] == "order.created"
    verify([secret], request["headers"], request["body"])
    with pytest.raises(SignatureError):
        verify(["whsec_someone-else"], request["headers"], request["body"])
    with pytest.raises(SignatureError):
        verify([secret], request["headers"], request["body"].replace(b"created", b"cancelled"))
    payload = json.loads(request["body"])
    assert payload["type"] == "order.created"
    assert payload["order_id"] == order["id"]
    assert payload["id"].startswith("evt_")
    assert payload["data"]["order_status"] == "received"
    assert payload["data"]["channel_order_ref"] == order["channel_order_ref"]
    assert payload["occurred_at"]

    # and the delivery is recorded with the answer
    [delivery] = deliveries(client, admin, created["id"])
    assert request["headers"]["X-OMS-Delivery"] == str(delivery["id"])
    assert delivery["payload"] == payload
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"],
            delivery["last_response"], delivery["next_attempt_at"]) == (
        "delivered", 1, 200, "thanks", None)
    assert delivery["delivered_at"] is not None


def test_events_a_subscriber_did_not_ask_for_are_not_delivered(client, admin, catalog,
                                                              receiver):
    # given one subscriber for cancellations and one for allocations
    cancellations = subscribe(client, admin, receiver.url + "/cancelled", "order.cancelled")
    allocations = subscribe(client, admin, receiver.url + "/allocated", "order.allocated")

    # when an order is posted, only the allocation is sent
    order = client.post("/orders", json=order_body(), headers=admin).json
    assert [(r["path"], p["type"]) for r, p in zip(receiver.requests, receiver.payloads(),
                                                  strict=True)] == [
        ("/allocated", "order.allocated")]
    assert deliveries(client, admin, cancellations["id"]) == []

    # and when it is cancelled, only the cancellation
    cancelled = client.post(f"/orders/{order['id']}/cancel", json={"reason": "changed mind"},
                            headers=admin)
    assert cancelled.status_code == 200, cancelled.json
    assert [r["path"] for r in receiver.requests] == ["/allocated", "/cancelled"]
    assert receiver.payloads()[1]["data"]["order_status"] == "cancelled"
    assert len(deliveries(client, admin, allocations["id"])) == 1
    assert len(deliveries(client, admin, cancellations["id"])) == 1


def test_a_failed_delivery_waits_and_the_sweep_sends_it_once_due(client, admin, catalog,
                                                                 receiver, services):
    # given a subscriber that answers 500 once
    receiver.answers = [500]
    subscription = subscribe(client, admin, receiver.url, "order.created")

    # when an order is posted, the delivery fails and waits, with the answer recorded
    before = utcnow()
    client.post("/orders", json=order_body(), headers=admin)
    [failed] = deliveries(client, admin, subscription["id"])
    assert (failed["status"], failed["attempts"], failed["last_status_code"],
            failed["last_response"]) == ("pending", 1, 500, "boom")
    wait = datetime.fromisoformat(failed["next_attempt_at"]) - before
    assert BACKOFF[0] <= wait <= BACKOFF[0] + timedelta(seconds=30)

    # and the sweep leaves it alone until it is due
    assert sweep(services) == 0
    assert len(receiver.requests) == 1

    # once due, the sweep sends it again, with the same event id, and it is delivered
    make_due(services, failed["id"])
    assert sweep(services) == 1
    first, second = receiver.payloads()
    assert first == second
    [delivered] = deliveries(client, admin, subscription["id"])
    assert (delivered["status"], delivered["attempts"], delivered["last_status_code"]) == (
        "delivered", 2, 200)

    # a delivered delivery is never sent again, by the sweep or by a duplicate job
    assert sweep(services) == 0
    with using(services):
        assert webhook_jobs.deliver(delivered["id"]) == "skipped"
    assert len(receiver.requests) == 2


def test_a_delivery_fails_after_its_last_attempt(client, admin, catalog, receiver, services):
    # given a subscriber that always answers 500
    receiver.answers = [500] * 20
    subscription = subscribe(client, admin, receiver.url, "order.created")
    client.post("/orders", json=order_body(), headers=admin)
    [delivery] = deliveries(client, admin, subscription["id"])

    # each failure waits longer, by the schedule
    waits = []
    for _ in range(MAX_ATTEMPTS - 1):
        delivery = deliveries(client, admin, subscription["id"])[0]
        assert delivery["status"] == "pending"
        waits.append(datetime.fromisoformat(delivery["next_attempt_at"]) - utcnow())
        make_due(services, delivery["id"])
        assert sweep(services) == 1
    assert [round(wait / timedelta(seconds=10)) for wait in waits] == [
        round(step / timedelta(seconds=10)) for step in BACKOFF]

    # and after the last attempt it has failed: the sweep takes it no more
    [failed] = deliveries(client, admin, subscription["id"])
    assert (failed["status"], failed["attempts"], failed["next_attempt_at"]) == (
        "failed", MAX_ATTEMPTS, None)
    assert len(receiver.requests) == MAX_ATTEMPTS
    assert sweep(services) == 0


def test_a_subscriber_that_cannot_be_reached_is_recorded_and_retried(client, admin, catalog):
    # given a subscription to a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subscription = subscribe(client, admin, f"http://127.0.0.1:{port}/x", "order.created")

    # the order is taken all the same, and the delivery waits with the error
    assert client.post("/orders", json=order_body(), headers=admin).status_code == 201
    [delivery] = deliveries(client, admin, subscription["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == (
        "pending", 1, None)
    assert "ConnectionRefused" in delivery["last_error"]


def test_replay_sends_a_delivery_again(client, admin, catalog, receiver, make_key):
    ops = make_key("ops")
    subscription = subscribe(client, ops, receiver.url, "order.created")
    client.post("/orders", json=order_body(), headers=admin)
    [delivery] = deliveries(client, ops, subscription["id"])
    assert delivery["status"] == "delivered"

    # when ops replay it, it is sent again: same payload, freshly signed
    replayed = client.post(f"/webhooks/deliveries/{delivery['id']}/replay", json={},
                           headers=ops)
    assert replayed.status_code == 202, replayed.json
    assert replayed.json["status"] == "pending"
    first, second = receiver.requests
    assert first["body"] == second["body"]
    assert second["headers"]["X-OMS-Delivery"] == str(delivery["id"])
    [again] = deliveries(client, ops, subscription["id"])
    assert (again["status"], again["attempts"]) == ("delivered", 1)

    # a delivery still being tried is not replayed: it could go out twice at once
    receiver.answers = [500]
    client.post("/orders", json=order_body(), headers=admin)
    pending = deliveries(client, ops, subscription["id"])[0]
    assert pending["status"] == "pending"
    refused = client.post(f"/webhooks/deliveries/{pending['id']}/replay", json={},
                          headers=ops)
    assert (refused.status_code, refused.json["code"]) == (409, "invalid_transition")

    # an unknown delivery, or a body with fields, is refused
    missing = client.post("/webhooks/deliveries/999999/replay", json={}, headers=ops)
    assert (missing.status_code, missing.json["code"]) == (404, "not_found")
    extra = client.post(f"/webhooks/deliveries/{delivery['id']}/replay",
                        json={"now": True}, headers=ops)
    assert extra.status_code == 422
    assert [e["field"] for e in extra.json["errors"]] == ["now"]


def test_a_deactivated_subscription_receives_nothing_until_it_is_active_again(
        client, admin, catalog, receiver, services):
    subscription = subscribe(client, admin, receiver.url, "order.created")
    path = f"/webhooks/subscriptions/{subscription['id']}"

    # DELETE deactivates: orders go on, nothing is sent
    removed = client.delete(path, headers=admin)
    assert (removed.status_code, removed.json["active"]) == (200, False)
    client.post("/orders", json=order_body(), headers=admin)
    assert receiver.requests == []
    assert deliveries(client, admin, subscription["id"]) == []  # it is owed nothing

    # PATCH makes it active again, for more events and a new path
    changed = client.patch(path, headers=admin, json={
        "active": True, "event_types": ["order.created", "order.cancelled"],
        "url": receiver.url + "/v2"})
    assert changed.status_code == 200, changed.json
    assert (changed.json["active"], changed.json["event_types"], changed.json["url"]) == (
        True, ["order.created", "order.cancelled"], receiver.url + "/v2")
    order = client.post("/orders", json=order_body(), headers=admin).json
    client.post(f"/orders/{order['id']}/cancel", json={"reason": "test"}, headers=admin)
    assert [(r["path"], p["type"]) for r, p in zip(receiver.requests, receiver.payloads(),
                                                  strict=True)] == [
        ("/v2", "order.created"), ("/v2", "order.cancelled")]
    assert client.get(path + "/deliveries?status=delivered&limit=1",
                      headers=admin).json["next_cursor"] is not None


def test_deliveries_are_listed_newest_first_a_page_at_a_time(client, admin, catalog,
                                                             receiver):
    subscription = subscribe(client, admin, receiver.url, "order.created")
    orders = [client.post("/orders", json=order_body(), headers=admin).json["id"]
              for _ in range(3)]
    path = f"/webhooks/subscriptions/{subscription['id']}/deliveries"
    first = client.get(path + "?limit=2", headers=admin).json
    second = client.get(path + f"?limit=2&cursor={first['next_cursor']}", headers=admin).json
    seen = [d["payload"]["order_id"] for d in first["items"] + second["items"]]
    assert seen == orders[::-1]
    assert second["next_cursor"] is None
    assert client.get(path + "?status=failed", headers=admin).json["items"] == []
    bad = client.get(path + "?status=lost&colour=red", headers=admin)
    assert bad.status_code == 422
    assert sorted(e["field"] for e in bad.json["errors"]) == ["colour", "status"]
    missing = client.get("/webhooks/subscriptions/999999/deliveries", headers=admin)
    assert missing.status_code == 404


def test_bad_subscriptions_are_refused_with_every_offending_field(client, admin):
    refused = client.post("/webhooks/subscriptions", headers=admin, json={
        "url": "ftp://example.com/hooks", "event_types": ["order.created", "order.exploded"],
        "colour": "blue"})
    assert refused.status_code == 422
    assert refused.content_type == "application/problem+json"
    assert refused.json["code"] == "validation_failed"
    assert sorted((e["field"], e["in"]) for e in refused.json["errors"]) == [
        ("colour", "body"), ("event_types/1", "body"), ("url", "body")]
    messages = {e["field"]: e["message"] for e in refused.json["errors"]}
    assert messages["event_types/1"].startswith("must be one of order.created")
    assert "http:// or https://" in messages["url"]

    for url in ("http://user:pass@example.com/", "https://", "http://exa mple.com/",
                "javascript:alert(1)", "http://example.com:99999/", "http://example.com/\n"):
        bad = client.post("/webhooks/subscriptions", headers=admin,
                          json={"url": url, "event_types": ["order.created"]})
        assert bad.status_code == 422, url
        assert [e["field"] for e in bad.json["errors"]] == ["url"], url
    empty = client.post("/webhooks/subscriptions", headers=admin,
                        json={"url": "https://example.com/", "event_types": []})
    assert [e["field"] for e in empty.json["errors"]] == ["event_types"]
    missing = client.post("/webhooks/subscriptions", headers=admin, json={})
    assert sorted(e["field"] for e in missing.json["errors"]) == ["event_types", "url"]

    # the same checks apply to changes
    created = subscribe(client, admin, "https://example.com/hooks", "order.created")
    changed = client.patch(f"/webhooks/subscriptions/{created['id']}", headers=admin,
                           json={"url": "ftp://example.com", "event_types": ["order.lost"],
                                 "secret": "mine"})
    assert changed.status_code == 422
    assert sorted(e["field"] for e in changed.json["errors"]) == [
        "event_types/0", "secret", "url"]
    assert client.get("/webhooks/subscriptions/999999", headers=admin).status_code == 404


def test_only_ops_and_admin_manage_webhooks(client, admin, make_key):
    created = subscribe(client, make_key("ops"), "https://example.com/hooks", "order.created")
    for key in (make_key("analyst"), make_key("channel", channel="web")):
        for method, path, body in (
                ("post", "/webhooks/subscriptions",
                 {"url": "https://example.com/", "event_types": ["order.created"]}),
                ("get", "/webhooks/subscriptions", None),
                ("get", f"/webhooks/subscriptions/{created['id']}", None),
                ("patch", f"/webhooks/subscriptions/{created['id']}", {"active": False}),
                ("delete", f"/webhooks/subscriptions/{created['id']}", None),
                ("get", f"/webhooks/subscriptions/{created['id']}/deliveries", None),
                ("post", "/webhooks/deliveries/1/replay", {})):
            refused = getattr(client, method)(path, json=body, headers=key)
            assert refused.status_code == 403, (method, path)
            assert refused.content_type == "application/problem+json"
            assert refused.json["code"] == "forbidden"
    assert client.get("/webhooks/subscriptions").status_code == 401
    assert client.get(f"/webhooks/subscriptions/{created['id']}",
                      headers=admin).json["active"] is True
