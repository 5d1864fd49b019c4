"""The HTTP partner adapters against a real, misbehaving HTTP peer on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from adapters.http_partners import HttpCarrierGateway, HttpFinance, HttpWarehouse, SignedClient
from adapters.signing import verify
from engine.errors import (
    ExternalRejectedError,
    ExternalResponseError,
    ExternalSystemError,
    ExternalTimeoutError,
)
from engine.ports import (
    Address,
    FinanceReceipt,
    FulfilmentRequest,
    InvoiceLine,
    InvoiceRequest,
    ItemToShip,
    Label,
    LabelRequest,
    Money,
    TrackingUpdate,
    WmsRelease,
)
from tests.support.peer import (  # noqa: F401 - partner_peer_fixture provides partner_peer
    PartnerPeer,
    Reply,
    partner_peer_fixture,
)

TIMEOUT = 0.5
ANA = Address("Ana Lima", "Av. Paulista 1000", "Sao Paulo", "01310-100", "BR")
FULFILMENT = FulfilmentRequest(group_id=11, order_id=7, location_code="WH-SP",
                               carrier_code="CORREIOS", service_code="SEDEX", ship_to=ANA,
                               items=(ItemToShip(101, "LAMP-1", 2), ItemToShip(102, "MUG-2", 1)))
PARCEL = LabelRequest(shipment_id=21, carrier_code="CORREIOS", service_code="SEDEX",
                      origin_location="WH-SP", ship_to=ANA, weight_kg=Decimal("2.150"),
                      declared_value=Decimal("204.30"))
INVOICE = InvoiceRequest(order_id=7, customer_id="C-ANA", currency="BRL",
                         lines=(InvoiceLine("LAMP-1", 2, Decimal("179.80"), Decimal("32.36")),
                                InvoiceLine("MUG-2", 1, Decimal("24.50"), Decimal("4.41"))),
                         shipping=Decimal("15.00"), reference="SHP-21")
INVOICE_TOTAL = Money(Decimal("256.07"), "BRL")


def client(peer: PartnerPeer, system: str = "partner", secrets: list[str] | None = None,
           timeout: float = TIMEOUT) -> SignedClient:
    return SignedClient(system, peer.url, secrets or [peer.secret], timeout=timeout)


def wms(peer: PartnerPeer, **options: Any) -> HttpWarehouse:
    return HttpWarehouse(client(peer, "wms", **options))


def carrier(peer: PartnerPeer, **options: Any) -> HttpCarrierGateway:
    return HttpCarrierGateway(client(peer, "carrier", **options))


def finance(peer: PartnerPeer, **options: Any) -> HttpFinance:
    return HttpFinance(client(peer, "finance", **options))


def test_the_warehouse_releases_and_cancels_a_fulfilment_order(partner_peer):
    # when
    release = wms(partner_peer).release(FULFILMENT, key="release:11")
    wms(partner_peer).cancel(release.reference, key="cancel:11")
    # then
    assert release == WmsRelease("WMS-000001")
    assert [(e.operation, e.key) for e in partner_peer.effects] == [
        ("release", "release:11"), ("cancel", "cancel:11")]
    sent = partner_peer.effects[0].body
    assert sent["items"][0] == {"order_line_id": 101, "sku": "LAMP-1", "quantity": 2}
    assert sent["ship_to"]["postal_code"] == "01310-100"


def test_cancelling_a_reference_the_warehouse_does_not_know_is_rejected(partner_peer):
    with pytest.raises(ExternalRejectedError, match="404"):
        wms(partner_peer).cancel("WMS-999999", key="cancel:x")


def test_the_warehouse_is_told_which_units_of_a_released_order_to_stop(partner_peer):
    # given a released fulfilment order
    warehouse = wms(partner_peer)
    release = warehouse.release(FULFILMENT, key="release:11")
    # when one lamp of it is no longer wanted, asked twice with the same key
    for _ in range(2):
        warehouse.stop_units(release.reference, (ItemToShip(101, "LAMP-1", 1),),
                             key="stop:11:1")
    # then the warehouse stopped it once, told which line, SKU and how many
    stops = partner_peer.effects_of("stop_units")
    assert [(e.key, e.body) for e in stops] == [
        ("stop:11:1", {"items": [{"order_line_id": 101, "sku": "LAMP-1", "quantity": 1}]})]
    assert partner_peer.requests[-1].path == "/fulfilment-orders/WMS-000001/stop"


def test_a_warehouse_confirming_a_stop_for_another_order_is_caught(partner_peer):
    # given two released orders; the stop on the second is answered for the first
    warehouse = wms(partner_peer)
    first = warehouse.release(FULFILMENT, key="release:11")
    second = warehouse.release(FULFILMENT, key="release:12")
    warehouse.stop_units(first.reference, (ItemToShip(101, "LAMP-1", 1),), key="stop:11")
    partner_peer.script("stop_units", "duplicate")
    # when / then
    with pytest.raises(ExternalResponseError, match="reference WMS-000001 to a request for "
                                                    "WMS-000002"):
        warehouse.stop_units(second.reference, (ItemToShip(101, "LAMP-1", 1),), key="stop:12")
    # and a reference it does not know is a rejection
    with pytest.raises(ExternalRejectedError, match="404"):
        warehouse.stop_units("WMS-999999", (ItemToShip(101, "LAMP-1", 1),), key="stop:x")


def test_the_carrier_rates_sells_a_label_and_tracks_it_oldest_first(partner_peer):
    gateway = carrier(partner_peer)
    # when
    rate = gateway.rate(PARCEL)
    label = gateway.create_label(PARCEL, key="label:21")
    partner_peer.set_tracking(
        label.tracking_number,
        {"status": "delivered", "occurred_at": "2026-03-02T15:00:00-03:00", "detail": "Ana"},
        {"status": "in_transit", "occurred_at": "2026-03-01T09:30:00Z", "detail": None},
    )
    updates = gateway.track(label.tracking_number)
    # then
    assert rate == Decimal("15.38")  # 10.00 + 2.50 per kg
    assert label == Label("TRK00000001", Decimal("15.38"),
                          f"{partner_peer.url}/labels/TRK00000001.pdf")
    assert updates == [
        TrackingUpdate("TRK00000001", "in_transit", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        TrackingUpdate("TRK00000001", "delivered",
                       datetime(2026, 3, 2, 15, tzinfo=timezone(timedelta(hours=-3))), "Ana"),
    ]
    assert [e.operation for e in partner_peer.effects] == ["create_label"]  # a rate is no effect


def test_finance_authorises_captures_invoices_refunds_and_credits(partner_peer):
    books = finance(partner_peer)
    paid = Money(Decimal("256.07"), "BRL")
    # when
    authorised = books.authorise(7, paid, key="auth:7")
    captured = books.capture(7, authorised.reference, paid, key="capture:7")
    invoiced = books.invoice(INVOICE, key="invoice:21")
    refunded = books.refund(7, Money(Decimal("24.50"), "BRL"), "damaged mug", key="refund:7")
    credited = books.credit_note(7, invoiced.reference, Money(Decimal("24.50"), "BRL"),
                                 "damaged mug", key="credit:7")
    # then
    assert authorised == FinanceReceipt("AUTH-000001", paid)
    assert captured == FinanceReceipt("CAP-000001", paid)
    assert invoiced == FinanceReceipt("INV-000001", INVOICE_TOTAL)
    assert refunded == FinanceReceipt("RFD-000001", Money(Decimal("24.50"), "BRL"))
    assert credited == FinanceReceipt("CN-000001", Money(Decimal("24.50"), "BRL"))
    bodies = {e.operation: e.body for e in partner_peer.effects}
    assert bodies["capture"] == {"order_id": 7, "authorisation": "AUTH-000001",
                                 "amount": "256.07", "currency": "BRL"}
    assert bodies["credit_note"]["invoice"] == "INV-000001"


def test_money_and_weights_travel_as_decimal_strings_never_floats(partner_peer):
    # when
    carrier(partner_peer).create_label(PARCEL, key="label:21")
    finance(partner_peer).invoice(INVOICE, key="invoice:21")
    # then
    label, invoice = (e.body for e in partner_peer.effects)
    assert (label["weight_kg"], label["declared_value"]) == ("2.150", "204.30")
    assert invoice["lines"][0] == {"sku": "LAMP-1", "quantity": 2, "net": "179.80",
                                   "tax": "32.36"}
    assert invoice["shipping"] == "15.00"


def test_every_request_is_signed_and_every_effectful_one_carries_its_key(partner_peer):
    # when
    release = wms(partner_peer).release(FULFILMENT, key="k-release")
    wms(partner_peer).cancel(release.reference, key="k-cancel")
    gateway = carrier(partner_peer)
    gateway.rate(PARCEL)
    label = gateway.create_label(PARCEL, key="k-label")
    gateway.track(label.tracking_number)
    finance(partner_peer).authorise(7, INVOICE_TOTAL, key="k-auth")
    finance(partner_peer).invoice(INVOICE, key="k-invoice")
    # then
    for request in partner_peer.requests:
        verify([partner_peer.secret], {"X-OMS-Timestamp": request.headers["x-oms-timestamp"],
                                       "X-OMS-Signature": request.headers["x-oms-signature"]},
               request.raw)
    keys = {(r.method, r.path): r.headers.get("idempotency-key") for r in partner_peer.requests}
    assert keys == {
        ("POST", "/fulfilment-orders"): "k-release",
        ("POST", "/fulfilment-orders/WMS-000001/cancel"): "k-cancel",
        ("POST", "/rates"): None,
        ("POST", "/labels"): "k-label",
        ("GET", "/tracking/TRK00000001"): None,
        ("POST", "/payments/authorisations"): "k-auth",
        ("POST", "/invoices"): "k-invoice",
    }
    assert all(r.headers.get("content-type") == "application/json"
               for r in partner_peer.requests if r.method == "POST")


def test_a_signature_the_partner_does_not_accept_is_a_rejection(partner_peer):
    # when / then
    with pytest.raises(ExternalRejectedError, match="401") as raised:
        wms(partner_peer, secrets=["not-the-partners-secret"]).release(FULFILMENT, key="k")
    assert raised.value.retryable is False
    assert partner_peer.effects == []


def test_during_a_rotation_both_secrets_sign_and_the_partner_accepts_either(partner_peer):
    # given the partner still knows only the old secret
    books = finance(partner_peer, secrets=["the-new-secret", partner_peer.secret])
    # when
    receipt = books.authorise(7, INVOICE_TOTAL, key="auth:7")
    # then
    assert receipt.reference == "AUTH-000001"
    assert partner_peer.requests[0].headers["x-oms-signature"].count("v1=") == 2


def test_a_slow_answer_within_the_timeout_succeeds(partner_peer):
    # given
    partner_peer.script("release", "slow")
    # when
    release = wms(partner_peer).release(FULFILMENT, key="release:11")
    # then
    assert release == WmsRelease("WMS-000001")


TIMED_OUT_CALLS: dict[str, Callable[[PartnerPeer], object]] = {
    "release": lambda peer: wms(peer).release(FULFILMENT, key="once"),
    "create_label": lambda peer: carrier(peer).create_label(PARCEL, key="once"),
    "invoice": lambda peer: finance(peer).invoice(INVOICE, key="once"),
}


@pytest.mark.parametrize("operation", TIMED_OUT_CALLS)
def test_a_timeout_then_a_retry_with_the_same_key_has_exactly_one_effect(partner_peer,
                                                                         operation):
    # given the partner will act, then not answer in time
    partner_peer.script(operation, "timeout")
    call = TIMED_OUT_CALLS[operation]
    # when
    started = time.monotonic()
    with pytest.raises(ExternalTimeoutError) as raised:
        call(partner_peer)
    waited = time.monotonic() - started
    second = call(partner_peer)
    # then
    assert raised.value.retryable is True
    assert TIMEOUT <= waited < partner_peer.hang  # it gave up; it did not wait it out
    assert len(partner_peer.effects_of(operation)) == 1
    assert second == call(partner_peer)  # and any later retry: the first answer, again
    assert len(partner_peer.effects) == 1


def test_a_500_is_a_bad_response_with_no_effect(partner_peer):
    # given
    partner_peer.script("invoice", "500")
    # when / then
    with pytest.raises(ExternalResponseError, match="500") as raised:
        finance(partner_peer).invoice(INVOICE, key="invoice:21")
    assert raised.value.retryable is True
    assert partner_peer.effects == []


def test_a_body_that_is_not_json_is_a_bad_response_and_the_retry_gets_the_answer(partner_peer):
    # given the partner acts but answers garbage
    partner_peer.script("release", "malformed")
    # when
    with pytest.raises(ExternalResponseError, match="not JSON"):
        wms(partner_peer).release(FULFILMENT, key="release:11")
    retried = wms(partner_peer).release(FULFILMENT, key="release:11")
    # then
    assert retried == WmsRelease("WMS-000001")
    assert len(partner_peer.effects) == 1


SCHEMA_BREAKS = {
    "a float amount": ("authorise", {"reference": "A-1", "amount": 256.07, "currency": "BRL"}),
    "a missing reference": ("authorise", {"amount": "256.07", "currency": "BRL"}),
    "a lower-case currency": ("authorise", {"reference": "A-1", "amount": "256.07",
                                            "currency": "brl"}),
    "an unknown tracking status": ("track", {"events": [
        {"status": "lost_in_space", "occurred_at": "2026-03-01T09:30:00Z"}]}),
    "a datetime without a zone": ("track", {"events": [
        {"status": "in_transit", "occurred_at": "2026-03-01T09:30:00"}]}),
    "a label without a tracking number": ("create_label", {"cost": "15.38"}),
    "a list for an object": ("rate", ["15.38"]),
    # answers we could not store: longer than our columns, NUL, more than 4 decimals
    "a tracking number too long to keep": ("create_label", {"tracking_number": "T" * 300,
                                                            "cost": "15.38"}),
    "a reference with a NUL": ("authorise", {"reference": "A\u0000", "amount": "256.07",
                                             "currency": "BRL"}),
    "a cost beyond our columns": ("create_label", {"tracking_number": "T1",
                                                   "cost": "123456789012345678.00"}),
    "a cost with five decimals": ("rate", {"amount": "15.38001"}),
}


@pytest.mark.parametrize("broken", SCHEMA_BREAKS)
def test_an_answer_that_breaks_the_schema_is_a_bad_response(partner_peer, broken):
    # given
    operation, body = SCHEMA_BREAKS[broken]
    partner_peer.script(operation, Reply(200, body))
    calls = {
        "authorise": lambda: finance(partner_peer).authorise(7, INVOICE_TOTAL, key="k"),
        "track": lambda: carrier(partner_peer).track("TRK00000001"),
        "create_label": lambda: carrier(partner_peer).create_label(PARCEL, key="k"),
        "rate": lambda: carrier(partner_peer).rate(PARCEL),
    }
    # when / then
    with pytest.raises(ExternalResponseError, match="invalid body"):
        calls[operation]()


def test_an_answer_nested_beyond_reason_is_a_bad_response_not_a_crash(partner_peer):
    partner_peer.script("track", Reply(200, b"[" * 100_000))
    with pytest.raises(ExternalResponseError, match="not JSON"):
        carrier(partner_peer).track("TRK00000001")


def test_a_partner_answering_with_another_payments_receipt_is_caught(partner_peer):
    # given a first authorisation, and a partner that will confuse the second with it
    books = finance(partner_peer)
    books.authorise(7, Money(Decimal("100.00"), "BRL"), key="auth:7")
    partner_peer.script("authorise", "duplicate")
    # when / then
    with pytest.raises(ExternalResponseError, match="amount 100.00 to a request for 50.00"):
        books.authorise(8, Money(Decimal("50.00"), "BRL"), key="auth:8")


def test_a_receipt_in_another_currency_is_caught(partner_peer):
    partner_peer.script("refund", Reply(200, {"reference": "R-1", "amount": "24.50",
                                              "currency": "USD"}))
    with pytest.raises(ExternalResponseError, match="currency USD to a request for BRL"):
        finance(partner_peer).refund(7, Money(Decimal("24.50"), "BRL"), "damaged", key="r")


def test_a_warehouse_confirming_the_cancel_of_another_order_is_caught(partner_peer):
    # given two released orders; the second cancel is answered with the first one's answer
    warehouse = wms(partner_peer)
    first = warehouse.release(FULFILMENT, key="release:11")
    second = warehouse.release(FULFILMENT, key="release:12")
    warehouse.cancel(first.reference, key="cancel:11")
    partner_peer.script("cancel", "duplicate")
    # when / then
    with pytest.raises(ExternalResponseError, match="reference WMS-000001 to a request for "
                                                    "WMS-000002"):
        warehouse.cancel(second.reference, key="cancel:12")


def test_a_rejection_is_not_retryable_and_has_no_effect(partner_peer):
    # given
    partner_peer.script("create_label", "reject")
    # when / then
    with pytest.raises(ExternalRejectedError, match="422.*refused") as raised:
        carrier(partner_peer).create_label(PARCEL, key="label:21")
    assert raised.value.retryable is False
    assert partner_peer.effects == []


def test_too_many_requests_is_worth_retrying(partner_peer):
    partner_peer.script("capture", Reply(429, {"title": "slow down"}))
    with pytest.raises(ExternalSystemError, match="429") as raised:
        finance(partner_peer).capture(7, "AUTH-1", INVOICE_TOTAL, key="c")
    assert type(raised.value) is ExternalSystemError
    assert raised.value.retryable is True


def test_a_closed_port_is_a_retryable_system_error_raised_at_once():
    # given a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    warehouse = HttpWarehouse(SignedClient("wms", f"http://127.0.0.1:{port}", ["s"],
                                           timeout=TIMEOUT))
    # when
    started = time.monotonic()
    with pytest.raises(ExternalSystemError, match="wms: POST /fulfilment-orders") as raised:
        warehouse.release(FULFILMENT, key="release:11")
    # then
    assert time.monotonic() - started < TIMEOUT / 2
    assert type(raised.value) is ExternalSystemError
    assert raised.value.retryable is True


def test_a_wave_is_one_request_and_each_of_its_orders_is_applied_once_by_its_key(partner_peer):
    # given a wave of two groups, the first of them released alone before
    warehouse = wms(partner_peer)
    second = FulfilmentRequest(**{**FULFILMENT.__dict__, "group_id": 12})
    alone = warehouse.release(FULFILMENT, key="release:11")
    # when the wave is sent, then sent again (a retry)
    wave = [(FULFILMENT, "release:11"), (second, "release:12")]
    first_answer = warehouse.release_wave(wave)
    assert warehouse.release_wave(wave) == first_answer
    # then each order has one reference, the first one's its earlier release's, each
    # applied once, and each wave was one request carrying the same Idempotency-Key
    assert first_answer == [alone, WmsRelease("WMS-000002")]
    assert [effect.key for effect in partner_peer.effects_of("release")] == [
        "release:11", "release:12"]
    waves = [r for r in partner_peer.requests if r.path == "/fulfilment-orders/waves"]
    assert len(waves) == 2 and waves[0].headers["idempotency-key"] == waves[1].headers[
        "idempotency-key"]


def test_a_wave_answered_for_other_orders_is_refused(partner_peer):
    # given a warehouse that answers a wave with its orders the other way round
    partner_peer.script("release", Reply(200, {"orders": [
        {"key": "release:12", "reference": "WMS-2"}, {"key": "release:11", "reference": "WMS-1"}]}))
    second = FulfilmentRequest(**{**FULFILMENT.__dict__, "group_id": 12})
    # then the answer is an error, not two references pinned on the wrong groups
    with pytest.raises(ExternalResponseError, match="keys"):
        wms(partner_peer).release_wave([(FULFILMENT, "release:11"), (second, "release:12")])
