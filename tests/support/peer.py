"""A partner on real HTTP that plays warehouse, carrier and finance at once, and misbehaves
when a test tells it to.

It speaks the wire format of adapters/http_partners.py at one base URL (`peer.url`),
checks every request's signature (401 otherwise), applies one effect per Idempotency-Key
and per operation (a repeated key gets the first answer back), and records everything:

    peer.requests               every request received: Received(method, path, headers, body, raw)
    peer.effects                every effect applied: Effect(operation, key, body)
    peer.effects_of("release")  the effects of one operation

A wave (`POST /fulfilment-orders/waves`) is the operation "release": scripted behaviours
answer the whole request, and each order in it is applied once per its own key, recorded
as one "release" effect (as `POST /fulfilment-orders` would).

Operations are named after the port methods: release, cancel, stop_units, rate, create_label, track,
authorise, capture, invoice, refund, credit_note. `peer.script(operation, *behaviours)`
queues behaviours for that operation's next requests, one per request, then "ok":

    "ok"         apply the effect and answer
    "slow"       the same, after `slow_delay` (well inside the client's timeout)
    "timeout"    apply the effect, then stay silent past the client's timeout
    "500"        no effect, answer 500
    "malformed"  apply the effect, answer 200 with a body that is not JSON
    "duplicate"  no effect, answer with this operation's previous answer (to another request)
    "reject"     no effect, answer 422 with a problem body
    Reply(status, body)  no effect, answer exactly this (a dict or list is sent as JSON)

References, tracking numbers and prices are deterministic (WMS-000001, TRK00000001, a rate
of 10.00 + 2.50 per kg, ...). `peer.set_tracking(tracking_number, *events)` sets what `track`
answers, events in wire form: {"status": ..., "occurred_at": "...+00:00", "detail": ...}.
"""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from adapters.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify

BEHAVIOURS = ("ok", "slow", "timeout", "500", "malformed", "duplicate", "reject")

_ROUTES = [  # method, path pattern, operation, whether it is effectful
    ("POST", re.compile(r"/fulfilment-orders"), "release", True),
    ("POST", re.compile(r"/fulfilment-orders/waves"), "release", True),  # many in one
    ("POST", re.compile(r"/fulfilment-orders/(?P<ref>[^/]+)/cancel"), "cancel", True),
    ("POST", re.compile(r"/fulfilment-orders/(?P<ref>[^/]+)/stop"), "stop_units", True),
    ("POST", re.compile(r"/rates"), "rate", False),
    ("POST", re.compile(r"/labels"), "create_label", True),
    ("GET", re.compile(r"/tracking/(?P<ref>[^/]+)"), "track", False),
    ("POST", re.compile(r"/payments/authorisations"), "authorise", True),
    ("POST", re.compile(r"/payments/captures"), "capture", True),
    ("POST", re.compile(r"/invoices"), "invoice", True),
    ("POST", re.compile(r"/refunds"), "refund", True),
    ("POST", re.compile(r"/credit-notes"), "credit_note", True),
]
_LABEL = ("shipment_id", "carrier_code", "service_code", "origin_location", "ship_to",
          "weight_kg", "declared_value")
_FIELDS = {  # what each request must carry: a strict partner catches our wire drifting
    "release": ("group_id", "order_id", "location_code", "carrier_code", "service_code",
                "ship_to", "items"),
    "stop_units": ("items",),
    "rate": _LABEL, "create_label": _LABEL,
    "authorise": ("order_id", "amount", "currency"),
    "capture": ("order_id", "authorisation", "amount", "currency"),
    "invoice": ("order_id", "customer_id", "currency", "lines", "shipping", "reference"),
    "refund": ("order_id", "amount", "currency", "reason"),
    "credit_note": ("order_id", "invoice", "amount", "currency", "reason"),
}
_FINANCE_PREFIXES = {"authorise": "AUTH", "capture": "CAP", "invoice": "INV", "refund": "RFD",
                     "credit_note": "CN"}


@dataclass(frozen=True)
class Reply:
    """A scripted answer sent as is, with no effect: `body` bytes, or anything json dumps."""

    status: int
    body: Any


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON, or None for an empty body or one that is not JSON
    raw: bytes


@dataclass(frozen=True)
class Effect:
    operation: str
    key: str
    body: Any


def _route(method: str, path: str) -> tuple[str, bool, str] | None:
    """Return the operation, whether it is effectful and the reference in the path."""
    for route_method, pattern, operation, effectful in _ROUTES:
        match = pattern.fullmatch(path)
        if match and route_method == method:
            return operation, effectful, unquote(match.groupdict().get("ref") or "")
    return None


class _Refusal(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def _money(value: Any) -> Decimal:
    """Read a decimal string from a request; a JSON number is a client bug, refused."""
    if not isinstance(value, str):
        raise _Refusal(400, "bad_request", f"money must be a decimal string, not {value!r}")
    return Decimal(value)


def _problem(status: int, code: str, detail: str) -> tuple[int, bytes]:
    return status, json.dumps({"type": "about:blank", "title": code, "status": status,
                               "code": code, "detail": detail}).encode()


class PartnerPeer:
    """The partner server; use it as a context manager or call start() and close()."""

    def __init__(self, secret: str = "peer-secret", client_timeout: float = 0.5) -> None:
        self.secret = secret
        self.client_timeout = client_timeout
        self.slow_delay = client_timeout / 3
        self.hang = client_timeout * 4
        self.requests: list[Received] = []
        self.effects: list[Effect] = []
        self._script: dict[str, deque[str | Reply]] = defaultdict(deque)
        self._answers: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}
        self._previous: dict[str, dict[str, Any]] = {}
        self._tracking: dict[str, list[dict[str, Any]]] = {}
        self._released: set[str] = set()
        self._numbers: dict[str, count[int]] = defaultdict(lambda: count(1))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.peer = self
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> PartnerPeer:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; wake and wait for every handler, even one scripted to hang."""
        self._stop.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> PartnerPeer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def script(self, operation: str, *behaviours: str | Reply) -> None:
        """Queue how the next requests to `operation` are answered, one per request."""
        assert operation in {route[2] for route in _ROUTES}, f"unknown operation {operation!r}"
        for behaviour in behaviours:
            assert isinstance(behaviour, Reply) or behaviour in BEHAVIOURS, behaviour
        with self._lock:
            self._script[operation].extend(behaviours)

    def set_tracking(self, tracking_number: str, *events: dict[str, Any]) -> None:
        """Set the events `track` answers for this tracking number (wire form)."""
        with self._lock:
            self._tracking[tracking_number] = list(events)

    def effects_of(self, operation: str) -> list[Effect]:
        with self._lock:
            return [effect for effect in self.effects if effect.operation == operation]

    # -- serving -----------------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: Message,
               raw: bytes) -> tuple[int, bytes, float]:
        """Return the status, body and delay of the answer to one request."""
        path = urlsplit(target).path
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self.requests.append(Received(method, path, {name.lower(): value for name, value
                                                         in headers.items()}, body, raw))
        try:
            verify([self.secret], {name: headers[name] for name in (TIMESTAMP_HEADER,
                                   SIGNATURE_HEADER) if name in headers}, raw)
        except SignatureError as error:
            return (*_problem(401, "bad_signature", error.reason), 0)
        if raw and body is None:
            return (*_problem(400, "bad_request", "the body is not JSON"), 0)
        route = _route(method, path)
        if route is None:
            return (*_problem(404, "not_found", f"no {method} {path} here"), 0)
        operation, effectful, reference = route
        key = headers.get("Idempotency-Key")
        with self._lock:
            queued = self._script[operation]
            behaviour = queued.popleft() if queued else "ok"
            if isinstance(behaviour, Reply):
                raw_body = behaviour.body
                return behaviour.status, raw_body if isinstance(raw_body, bytes) else \
                    json.dumps(raw_body).encode(), 0
            try:
                answer = self._decide(operation, effectful, behaviour, key, path, body, reference)
            except _Refusal as refusal:
                return (*_problem(refusal.status, refusal.code, refusal.detail), 0)
        delay = {"slow": self.slow_delay, "timeout": self.hang}.get(behaviour, 0.0)
        if behaviour == "malformed":
            return 200, b"<html><body>Service temporarily fine</body></html>", delay
        return 200, json.dumps(answer).encode(), delay

    def _decide(self, operation: str, effectful: bool, behaviour: str, key: str | None,
                path: str, body: Any, reference: str) -> dict[str, Any]:
        if behaviour == "500":
            raise _Refusal(500, "internal_error", "the partner failed (scripted)")
        if behaviour == "reject":
            raise _Refusal(422, "rejected", f"{operation} refused (scripted)")
        if effectful and not key:
            raise _Refusal(400, "idempotency_key_required", "send an Idempotency-Key")
        if key and (operation, key) in self._answers:
            fingerprint, first = self._answers[operation, key]
            if fingerprint != (path, body):
                raise _Refusal(422, "idempotency_key_reused", f"key {key!r} was used before "
                               "for another request")
            return first
        if behaviour == "duplicate":
            if operation not in self._previous:
                raise _Refusal(500, "nothing_to_duplicate", f"no earlier {operation} answer")
            return self._previous[operation]
        if path.endswith("/waves"):
            orders = (body or {}).get("orders")
            if not isinstance(orders, list) or not orders:
                raise _Refusal(400, "bad_request", "a wave needs a list of orders")
            answer = {"orders": [self._effect(operation, "/fulfilment-orders",
                                              {k: v for k, v in order.items() if k != "key"},
                                              order.get("key"), reference) | {
                                     "key": order.get("key")} for order in orders]}
        else:
            answer = self._effect(operation, path, body, key if effectful else None, reference)
        if effectful and key:
            self._answers[operation, key] = ((path, body), answer)
        self._previous[operation] = answer
        return answer

    def _effect(self, operation: str, path: str, body: Any, key: str | None,
                reference: str) -> dict[str, Any]:
        """Apply one effect (the first answer again for a key seen before)."""
        if key and (operation, key) in self._answers:
            return self._answers[operation, key][1]  # a wave repeating an order
        missing = [name for name in _FIELDS.get(operation, ()) if name not in (body or {})]
        if missing:
            raise _Refusal(400, "bad_request", f"{operation} needs {', '.join(missing)}")
        try:
            answer = self._apply(operation, body, reference)
        except (LookupError, TypeError, ValueError, ArithmeticError) as error:
            raise _Refusal(400, "bad_request", f"unreadable {operation}: {error!r}") from None
        if key:
            self._answers[operation, key] = ((path, body), answer)
            self.effects.append(Effect(operation, key, body))
        return answer

    def _apply(self, operation: str, body: Any, reference: str) -> dict[str, Any]:
        if operation == "release":
            reference = f"WMS-{next(self._numbers['WMS']):06d}"
            self._released.add(reference)
            return {"reference": reference}
        if operation == "cancel":
            if reference not in self._released:
                raise _Refusal(404, "not_found", f"no fulfilment order {reference}")
            return {"reference": reference, "status": "cancelled"}
        if operation == "stop_units":
            if reference not in self._released:
                raise _Refusal(404, "not_found", f"no fulfilment order {reference}")
            if not body["items"] or any(item["quantity"] < 1 for item in body["items"]):
                raise _Refusal(400, "bad_request", "stop names units of at least one item")
            return {"reference": reference, "status": "stopped"}
        if operation in ("rate", "create_label"):
            _money(body["declared_value"])
            price = Decimal("10.00") + _money(body["weight_kg"]) * Decimal("2.50")
            amount = str(price.quantize(Decimal("0.01")))
            if operation == "rate":
                return {"amount": amount}
            tracking_number = f"TRK{next(self._numbers['TRK']):08d}"
            self._tracking.setdefault(tracking_number, [])
            return {"tracking_number": tracking_number, "cost": amount,
                    "label_url": f"{self.url}/labels/{tracking_number}.pdf"}
        if operation == "track":
            if reference not in self._tracking:
                raise _Refusal(404, "not_found", f"no shipment {reference}")
            return {"events": self._tracking[reference]}
        if operation == "invoice":
            total = sum((_money(line["net"]) + _money(line["tax"]) for line in body["lines"]),
                        _money(body["shipping"]))
        else:
            total = _money(body["amount"])
        prefix = _FINANCE_PREFIXES[operation]
        return {"reference": f"{prefix}-{next(self._numbers[prefix]):06d}",
                "amount": str(total), "currency": body["currency"]}


class _Server(ThreadingHTTPServer):
    peer: PartnerPeer
    block_on_close = True  # server_close() waits for the handlers (no thread outlives a test)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        peer = self.server.peer
        status, body, delay = peer.answer(self.command, self.path, self.headers, raw)
        if delay:
            peer._stop.wait(delay)  # close() cuts the wait short
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client stopped listening (a "timeout"): nobody to tell
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture(name="partner_peer")
def partner_peer_fixture() -> Iterator[PartnerPeer]:
    """A started PartnerPeer (secret "peer-secret", for clients with a 0.5 s timeout).

    Import `partner_peer_fixture` into a test module to use `partner_peer` there.
    """
    with PartnerPeer() as peer:
        yield peer
