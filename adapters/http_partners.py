"""The warehouse, carrier and finance ports over HTTP: what a real partner must implement.

Every request is JSON (`Content-Type: application/json`) signed as adapters.signing
describes (`X-OMS-Timestamp`, `X-OMS-Signature: v1=<hex>`; during a secret rotation it is
signed with every configured secret). Every effectful request carries
`Idempotency-Key: <key>`: the partner applies one effect per key and answers a repeated
key with its first answer. Money is a decimal string ("12.34"), never a JSON number;
dates are ISO 8601. Answers may carry more fields than listed; those are ignored.

Paths are relative to the partner's base URL ("effectful" = carries an Idempotency-Key):

    Warehouse (WMS)
    POST /fulfilment-orders                     FulfilmentRequest         effectful
        -> {"reference": str}
    POST /fulfilment-orders/waves               {"orders": [FulfilmentRequest + "key"]}
        -> {"orders": [{"key": str, "reference": str}]}   in the request's order
        (a wave: each order applied once per its own "key", exactly as POST
        /fulfilment-orders would; the Idempotency-Key is the wave's, from its orders' keys)
    POST /fulfilment-orders/{reference}/cancel  {}                        effectful
        -> {"reference": str, "status": "cancelled"}
    POST /fulfilment-orders/{reference}/stop    {"items": [ItemToShip]}   effectful
        -> {"reference": str, "status": "stopped"}
        (units of it no longer wanted: the warehouse picks, packs and ships the rest)

    Carrier
    POST /rates                                 LabelRequest
        -> {"amount": "12.34"}
    POST /labels                                LabelRequest              effectful
        -> {"tracking_number": str, "cost": "12.34", "label_url": str | null}
    GET  /tracking/{tracking_number}
        -> {"events": [{"status": "in_transit" | "out_for_delivery" | "delivered"
                                  | "exception",
                        "occurred_at": ISO 8601 datetime with an offset,
                        "detail": str | null}]}

    Finance, all effectful, all answering {"reference": str, "amount": "12.34", "currency": "BRL"}
    POST /payments/authorisations  {"order_id", "amount", "currency"}
    POST /payments/captures        {"order_id", "authorisation", "amount", "currency"}
    POST /invoices                 InvoiceRequest (a line's net and tax are the line's totals)
    POST /refunds                  {"order_id", "amount", "currency", "reason"}
    POST /credit-notes             {"order_id", "invoice", "amount", "currency", "reason"}
    The answer's amount and currency must be the request's; an invoice's amount is the sum of
    its lines' net and tax plus shipping.

What the engine sees, all `ExternalSystemError`s:
    ExternalTimeoutError   no answer within `timeout` (to connect, or to any read): it may
                           have happened, so retry with the same key
    ExternalSystemError    connection refused or reset, unknown host; a 408 or 429
    ExternalRejectedError  any other 4xx (not retryable)
    ExternalResponseError  a 5xx or 3xx; a 2xx whose body is not JSON, breaks the schema or
                           contradicts the request
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date
from decimal import Decimal
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import Any
from urllib.parse import quote, urlsplit

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from adapters.signing import sign
from engine.errors import (
    ExternalRejectedError,
    ExternalResponseError,
    ExternalSystemError,
    ExternalTimeoutError,
)
from engine.fulfilment.common import TRACKING_STATUSES
from engine.ports import (
    FinanceReceipt,
    FulfilmentRequest,
    InvoiceRequest,
    ItemToShip,
    Label,
    LabelRequest,
    Money,
    TrackingUpdate,
    WmsRelease,
)

MAX_ANSWER_BYTES = 1024 * 1024
RETRYABLE_4XX = (408, 429)  # request timeout, too many requests: later may work


def _wire(value: object) -> object:
    """Encode what json cannot: Decimals as plain decimal strings, dates as ISO 8601."""
    if isinstance(value, Decimal):
        return format(value, "f")  # "100", never "1E+2"
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} cannot be sent as JSON")


def _excerpt(raw: bytes, limit: int = 200) -> str:
    text = raw[:limit].decode("utf-8", errors="replace")
    return text + ("..." if len(raw) > limit else "")


# -- answers ---------------------------------------------------------------------------------

class _DecimalString(fields.Decimal):
    """A decimal that arrived as a JSON string such as "12.34", never as a number."""

    # what our columns hold: up to 14 digits before the point and 4 after
    _PATTERN = re.compile(r"-?\d{1,14}(\.\d{1,4})?")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or not self._PATTERN.fullmatch(value):
            raise ValidationError('Must be a decimal string such as "12.34".')
        return super()._deserialize(value, attr, data, **kwargs)


def _amount() -> _DecimalString:
    return _DecimalString(required=True, validate=validate.Range(min=0))


def _text(**kwargs: Any) -> fields.String:
    """A reference or tracking number: what our columns hold, visible ASCII only."""
    return fields.String(validate=[validate.Length(min=1, max=64),
                                   validate.Regexp(r"[!-~]+\Z",
                                                   error="Must be visible ASCII.")], **kwargs)


class _Answer(Schema):
    class Meta:
        unknown = EXCLUDE  # a partner may add fields without breaking us


class _Released(_Answer):
    reference = _text(required=True)


class _WaveOrder(_Answer):
    key = fields.String(required=True)
    reference = _text(required=True)


class _Wave(_Answer):
    orders = fields.List(fields.Nested(_WaveOrder), required=True)


class _Cancelled(_Answer):
    reference = _text(required=True)
    status = fields.String(required=True, validate=validate.Equal("cancelled"))


class _Stopped(_Answer):
    reference = _text(required=True)
    status = fields.String(required=True, validate=validate.Equal("stopped"))


class _Rate(_Answer):
    amount = _amount()


class _Label(_Answer):
    tracking_number = _text(required=True)
    cost = _amount()
    label_url = fields.String(load_default=None, allow_none=True,
                              validate=validate.Length(max=500))


class _Event(_Answer):
    status = fields.String(required=True, validate=validate.OneOf(TRACKING_STATUSES))
    occurred_at = fields.AwareDateTime(required=True, format="iso")
    detail = fields.String(load_default=None, allow_none=True, validate=[
        validate.Length(max=500), validate.Regexp(r"[^\x00-\x1f]*\Z",
                                                  error="Must hold no control characters.")])


class _Tracking(_Answer):
    events = fields.List(fields.Nested(_Event), required=True)


class _Receipt(_Answer):
    reference = _text(required=True)
    amount = _amount()
    currency = fields.String(required=True, validate=validate.Regexp(r"[A-Z]{3}\Z"))


# -- the client ------------------------------------------------------------------------------

class SignedClient:
    """Sends signed JSON to one partner and turns every way it can fail into our errors."""

    def __init__(self, system: str, base_url: str, secrets: Sequence[str],
                 timeout: float = 5.0) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"{system}: base URL {base_url!r} is not http(s)://host[:port]")
        if not secrets or not all(secrets):
            raise ValueError(f"{system}: at least one non-empty signing secret is needed")
        self.system = system
        self.timeout = timeout
        self._https = url.scheme == "https"
        self._host, self._port = url.hostname, url.port
        self._prefix = url.path.rstrip("/")
        self._secrets = list(secrets)

    def call(self, method: str, path: str, schema: Schema, payload: object = None,
             key: str | None = None) -> dict[str, Any]:
        """Send one request (`key`: its Idempotency-Key); return the answer `schema` loaded.

        Raises:
            ExternalSystemError: or a subclass, as the module docstring lists.
        """
        where = f"{method} {path}"
        body = b"" if payload is None else json.dumps(payload, default=_wire).encode()
        headers = {"Accept": "application/json", **sign(self._secrets, body)}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if key is not None:
            headers["Idempotency-Key"] = key
        status, raw = self._exchange(method, self._prefix + path, body, headers, where)
        told = f"{where} answered {status}: {_excerpt(raw)}"
        if status in RETRYABLE_4XX:
            raise ExternalSystemError(self.system, told)
        if 400 <= status < 500:
            raise ExternalRejectedError(self.system, told)
        if not 200 <= status < 300:
            raise ExternalResponseError(self.system, told)
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested beyond reason
            raise ExternalResponseError(self.system, f"{where} answered {status} with a body "
                                        f"that is not JSON: {_excerpt(raw)}") from None
        try:
            answer: dict[str, Any] = schema.load(document)
        except ValidationError as error:
            raise ExternalResponseError(self.system, f"{where} answered {status} with an "
                                        f"invalid body: {error.messages}") from None
        return answer

    def _exchange(self, method: str, target: str, body: bytes, headers: dict[str, str],
                  where: str) -> tuple[int, bytes]:
        # A new connection per call: nothing shared between threads, nothing left half-read.
        # The timeout bounds the connect and every read, not the whole exchange.
        kind = HTTPSConnection if self._https else HTTPConnection
        connection = kind(self._host, self._port, timeout=self.timeout)
        try:
            connection.request(method, target, body=body or None, headers=headers)
            response = connection.getresponse()
            raw = response.read(MAX_ANSWER_BYTES + 1)
        except TimeoutError as error:
            raise ExternalTimeoutError(
                self.system, f"{where}: no answer within {self.timeout}s") from error
        except OSError as error:  # refused, reset, unreachable, unknown host, TLS
            raise ExternalSystemError(self.system, f"{where}: {error}") from error
        except HTTPException as error:
            raise ExternalResponseError(
                self.system, f"{where}: broken HTTP answer ({error!r})") from error
        finally:
            connection.close()
        if len(raw) > MAX_ANSWER_BYTES:
            raise ExternalResponseError(self.system, f"{where}: answer over {MAX_ANSWER_BYTES} "
                                        "bytes")
        return response.status, raw


def _expect(system: str, where: str, what: str, asked: object, answered: object) -> None:
    """Refuse an answer that contradicts its request: a partner that mixed up two requests."""
    if answered != asked:
        raise ExternalResponseError(system, f"{where} answered {what} {answered} to a request "
                                    f"for {asked}")


def _segment(value: str) -> str:
    """Quote a reference for use as one path segment (a "/" in it must not add a level)."""
    return quote(value, safe="")


# -- the ports -------------------------------------------------------------------------------

class HttpWarehouse:
    """The Warehouse port over HTTP."""

    def __init__(self, client: SignedClient) -> None:
        self.client = client

    def release(self, request: FulfilmentRequest, key: str) -> WmsRelease:
        """Hand a fulfilment group to the warehouse; return its reference for it."""
        answer = self.client.call("POST", "/fulfilment-orders", _Released(), asdict(request),
                                  key)
        return WmsRelease(answer["reference"])

    def release_wave(self, releases: Sequence[tuple[FulfilmentRequest, str]]
                     ) -> list[WmsRelease]:
        """Hand a wave of groups to the warehouse in one request; return its references."""
        keys = [key for _, key in releases]
        wave_key = "wms-wave-" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]
        answer = self.client.call("POST", "/fulfilment-orders/waves", _Wave(), {"orders": [
            {**asdict(request), "key": key} for request, key in releases]}, wave_key)
        _expect(self.client.system, "POST /fulfilment-orders/waves", "keys", keys,
                [order["key"] for order in answer["orders"]])
        return [WmsRelease(order["reference"]) for order in answer["orders"]]

    def cancel(self, reference: str, key: str) -> None:
        """Withdraw a released fulfilment order that has not shipped."""
        path = f"/fulfilment-orders/{_segment(reference)}/cancel"
        answer = self.client.call("POST", path, _Cancelled(), {}, key)
        _expect(self.client.system, f"POST {path}", "reference", reference, answer["reference"])

    def stop_units(self, reference: str, items: tuple[ItemToShip, ...], key: str) -> None:
        """Stop these units of a released fulfilment order; the rest of it still ships."""
        path = f"/fulfilment-orders/{_segment(reference)}/stop"
        answer = self.client.call("POST", path, _Stopped(),
                                  {"items": [asdict(item) for item in items]}, key)
        _expect(self.client.system, f"POST {path}", "reference", reference, answer["reference"])


class HttpCarrierGateway:
    """The CarrierGateway port over HTTP."""

    def __init__(self, client: SignedClient) -> None:
        self.client = client

    def rate(self, request: LabelRequest) -> Decimal:
        """Return what the carrier would charge for this shipment."""
        amount: Decimal = self.client.call("POST", "/rates", _Rate(), asdict(request))["amount"]
        return amount

    def create_label(self, request: LabelRequest, key: str) -> Label:
        """Buy a label for one shipment; return its tracking number and cost."""
        answer = self.client.call("POST", "/labels", _Label(), asdict(request), key)
        return Label(answer["tracking_number"], answer["cost"], answer["label_url"])

    def track(self, tracking_number: str) -> list[TrackingUpdate]:
        """Return what the carrier knows of a shipment's progress, oldest first."""
        answer = self.client.call("GET", f"/tracking/{_segment(tracking_number)}", _Tracking())
        updates = [TrackingUpdate(tracking_number, event["status"], event["occurred_at"],
                                  event["detail"]) for event in answer["events"]]
        return sorted(updates, key=lambda update: update.occurred_at)


class HttpFinance:
    """The Finance port over HTTP; every receipt must be for the amount asked."""

    def __init__(self, client: SignedClient) -> None:
        self.client = client

    def authorise(self, order_id: int, amount: Money, key: str) -> FinanceReceipt:
        """Reserve the customer's funds for an order."""
        return self._post("/payments/authorisations",
                          {"order_id": order_id, **asdict(amount)}, amount, key)

    def capture(self, order_id: int, authorisation: str, amount: Money,
                key: str) -> FinanceReceipt:
        """Take (part of) an authorised amount."""
        return self._post("/payments/captures", {"order_id": order_id,
                          "authorisation": authorisation, **asdict(amount)}, amount, key)

    def invoice(self, request: InvoiceRequest, key: str) -> FinanceReceipt:
        """Issue an invoice: receivable against revenue, tax and shipping."""
        total = sum((line.net + line.tax for line in request.lines), request.shipping)
        return self._post("/invoices", asdict(request), Money(total, request.currency), key)

    def refund(self, order_id: int, amount: Money, reason: str, key: str) -> FinanceReceipt:
        """Pay money back to the customer."""
        return self._post("/refunds", {"order_id": order_id, **asdict(amount), "reason": reason},
                          amount, key)

    def credit_note(self, order_id: int, invoice: str, amount: Money, reason: str,
                    key: str) -> FinanceReceipt:
        """Reduce what an invoice asks for (a return, a price correction)."""
        return self._post("/credit-notes", {"order_id": order_id, "invoice": invoice,
                          **asdict(amount), "reason": reason}, amount, key)

    def _post(self, path: str, body: dict[str, Any], amount: Money,
              key: str) -> FinanceReceipt:
        answer = self.client.call("POST", path, _Receipt(), body, key)
        where = f"POST {path}"
        _expect(self.client.system, where, "currency", amount.currency, answer["currency"])
        _expect(self.client.system, where, "amount", amount.amount, answer["amount"])
        return FinanceReceipt(answer["reference"], Money(answer["amount"], answer["currency"]))
