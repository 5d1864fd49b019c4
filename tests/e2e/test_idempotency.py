"""Idempotency-Key: replays, refusals, in-flight requests, and concurrent duplicates."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from adapters import idempotency
from adapters.errors import IdempotencyInFlightError
from engine.record import Order
from tests.conftest import order_body


def order_count(services) -> int:
    with services.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(Order))


def test_the_same_key_and_body_replays_the_first_response_byte_for_byte(client, admin,
                                                                         catalog, services):
    body = order_body()
    headers = {**admin, "Idempotency-Key": "order-1"}
    first = client.post("/orders", json=body, headers=headers)
    client.post(f"/orders/{first.json['id']}/cancel", json={"reason": "changed"},
                headers=admin)  # the order changes after the first response
    replay = client.post("/orders", json=body, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.get_data() == first.get_data()
    assert replay.headers["Location"] == first.headers["Location"]
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert order_count(services) == 1


def test_the_same_key_with_another_body_is_a_422(client, admin, catalog, services):
    headers = {**admin, "Idempotency-Key": "order-2"}
    client.post("/orders", json=order_body(channel_order_ref="A-1"), headers=headers)
    response = client.post("/orders", json=order_body(channel_order_ref="A-2"), headers=headers)
    assert response.status_code == 422
    assert response.json["code"] == "idempotency_key_reused"
    assert order_count(services) == 1


def test_keys_are_scoped_to_the_api_key_that_sent_them(client, make_key, catalog, services):
    first, second = make_key("ops"), make_key("ops")
    shared = "same-key-text"
    a = client.post("/orders", json=order_body(), headers={**first, "Idempotency-Key": shared})
    b = client.post("/orders", json=order_body(), headers={**second, "Idempotency-Key": shared})
    assert (a.status_code, b.status_code) == (201, 201)
    assert order_count(services) == 2


def test_a_key_still_in_flight_is_a_409(client, admin, catalog, services):
    body = order_body()
    raw = json.dumps(body).encode()
    # given a first request that has claimed its key and not finished
    api_key_id = _admin_key_id(services)
    claim = idempotency.claim(services.engine, api_key_id, "slow-1",
                              idempotency.fingerprint("POST", "/orders?", raw),
                              timedelta(seconds=60))
    assert isinstance(claim, idempotency.Claimed)
    # when its retry arrives
    response = client.post("/orders", data=raw, content_type="application/json",
                           headers={**admin, "Idempotency-Key": "slow-1"})
    # then it is told to wait, and nothing is created twice
    assert response.status_code == 409
    assert response.json["code"] == "idempotency_in_flight"
    assert response.headers["Retry-After"] == "1"
    assert order_count(services) == 0


def test_a_key_whose_first_request_died_is_taken_over_after_its_lease(make_app, admin,
                                                                      catalog, services):
    app = make_app(IDEMPOTENCY_LEASE_SECONDS=0)
    raw = json.dumps(order_body()).encode()
    idempotency.claim(services.engine, _admin_key_id(services), "died-1",
                      idempotency.fingerprint("POST", "/orders?", raw), timedelta(seconds=0))
    response = app.test_client().post("/orders", data=raw, content_type="application/json",
                                      headers={**admin, "Idempotency-Key": "died-1"})
    assert response.status_code == 201
    assert order_count(services) == 1


def test_a_refused_request_frees_its_key_for_the_corrected_one(client, admin, catalog,
                                                               services):
    headers = {**admin, "Idempotency-Key": "fix-and-retry"}
    refused = client.post("/orders", json=order_body(customer_id="C-GHOST"), headers=headers)
    assert refused.status_code == 422
    assert order_count(services) == 0
    # the channel fixes the customer and sends again under the same key
    accepted = client.post("/orders", json=order_body(), headers=headers)
    assert accepted.status_code == 201
    assert order_count(services) == 1


def test_a_request_whose_key_was_taken_over_does_not_commit(client, admin, catalog, services):
    raw = json.dumps(order_body()).encode()
    request_print = idempotency.fingerprint("POST", "/orders?", raw)
    # given a first request that claimed the key and then stalled past its lease
    stalled = idempotency.claim(services.engine, _admin_key_id(services), "stalled",
                                request_print, timedelta(seconds=60))
    # and a retry that took the key over once the lease ran out
    retry = idempotency.claim(services.engine, _admin_key_id(services), "stalled",
                              request_print, timedelta(seconds=-1))
    assert isinstance(retry, idempotency.Claimed) and retry.token != stalled.token
    # when the stalled request finally tries to record its response
    with services.uow() as uow:
        with pytest.raises(IdempotencyInFlightError):
            idempotency.complete(uow.session.connection(), stalled, 201, {}, b"late")
    # then it cannot, nor can it give away the retry's key
    idempotency.release(services.engine, stalled)
    with pytest.raises(IdempotencyInFlightError):  # still the retry's
        idempotency.claim(services.engine, _admin_key_id(services), "stalled", request_print,
                          timedelta(seconds=60))


def test_a_key_must_be_visible_ascii(client, admin, catalog):
    for bad in ("", "x" * 256, "caf\u00e9"):
        response = client.post("/orders", json=order_body(),
                               headers={**admin, "Idempotency-Key": bad.encode().decode("latin-1")})
        assert response.status_code == 400, bad
        assert response.json["code"] == "invalid_idempotency_key"


def test_twenty_concurrent_identical_requests_create_exactly_one_order(live_server, admin,
                                                                       catalog, services):
    body = order_body()
    headers = {**admin, "Idempotency-Key": "burst-1"}
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: live_server.request("POST", "/orders", body, headers),
                                range(20)))
    assert order_count(services) == 1
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {201, 409}, statuses
    created = {payload for status, _, payload in results if status == 201}
    assert len(created) == 1  # every 201 is the same response, replayed
    for status, _, payload in results:
        if status == 409:
            assert json.loads(payload)["code"] == "idempotency_in_flight"
    # and once the first has finished, a retry gets the original response
    status, _, payload = live_server.request("POST", "/orders", body, headers)
    assert (status, payload) == (201, created.pop())


def test_twenty_concurrent_resubmissions_of_one_channel_reference_make_one_order(
        live_server, admin, catalog, services):
    body = order_body()
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(
            lambda n: live_server.request("POST", "/orders", body,
                                          {**admin, "Idempotency-Key": f"distinct-{n}"}),
            range(20)))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [201] + [409] * 19
    assert order_count(services) == 1
    winner = next(json.loads(p)["id"] for s, _, p in results if s == 201)
    assert all(json.loads(p)["order_id"] == winner for s, _, p in results if s == 409)


def _admin_key_id(services) -> int:
    from engine.record import ApiKey

    with services.uow() as uow:
        return uow.session.scalar(select(ApiKey.id).where(ApiKey.name == "bootstrap-admin"))
