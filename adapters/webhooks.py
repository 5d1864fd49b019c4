"""Outbound webhook requests: one signed JSON POST to a subscriber, whatever it does.

Headers: Content-Type, X-OMS-Event (the webhook type), X-OMS-Delivery (our delivery id,
the same on every attempt), and the signature headers of `adapters.signing` over the exact
body, signed at sending time so a retry hours later is still within the receiver's
tolerance. Redirects are not followed: a 3xx is a failed attempt, like any non-2xx.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from adapters.signing import sign
from engine.webhooks import (
    MAX_ERROR_LENGTH,
    MAX_RESPONSE_LENGTH,
    SENDING_LEASE,
    AttemptResult,
    Outgoing,
)

TIMEOUT_SECONDS = 5.0
DEADLINE_SECONDS = 30.0  # a whole send, well inside the delivery's lease
assert DEADLINE_SECONDS < SENDING_LEASE.total_seconds() / 2
EVENT_HEADER = "X-OMS-Event"
DELIVERY_HEADER = "X-OMS-Delivery"
USER_AGENT = "oms-webhooks/1"
# Bytes of the response kept: enough for MAX_RESPONSE_LENGTH characters of UTF-8.
_READ_LIMIT = MAX_RESPONSE_LENGTH * 4


def encode(payload: dict[str, Any]) -> bytes:
    """Return the body exactly as it is signed and sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def send(outgoing: Outgoing, timeout: float = TIMEOUT_SECONDS,
         now: float | None = None) -> AttemptResult:
    """POST one delivery; return the status and the start of the body, or the error.

    Never raises for the peer's failures (refused, unreachable, slow, TLS, malformed
    answer): they come back as `AttemptResult.error`.
    """
    body = encode(outgoing.payload)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               EVENT_HEADER: outgoing.event_type, DELIVERY_HEADER: str(outgoing.delivery_id),
               **sign([outgoing.secret], body, now)}
    try:
        connection = _connect(outgoing.url, timeout)
        target = _target(outgoing.url)
        # the timeout bounds each read; this bounds the whole exchange, so a receiver
        # that drips its answer cannot keep a send alive past the delivery's lease
        deadline = threading.Timer(DEADLINE_SECONDS, _abort, (connection,))
        deadline.start()
        try:
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read(_READ_LIMIT)
        finally:
            deadline.cancel()
            connection.close()
    except (OSError, http.client.HTTPException, ValueError) as error:  # timeouts are OSErrors
        return AttemptResult(error=f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH])
    text = raw.decode("utf-8", errors="replace")[:MAX_RESPONSE_LENGTH]
    return AttemptResult(status_code=response.status, response=text)


def _abort(connection: http.client.HTTPConnection) -> None:
    if connection.sock is not None:
        with contextlib.suppress(OSError):
            connection.sock.shutdown(socket.SHUT_RDWR)


def _connect(url: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    if parts.hostname is None:
        raise ValueError(f"no host in {url!r}")
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout,
                                           context=ssl.create_default_context())
    if parts.scheme == "http":
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    raise ValueError(f"scheme {parts.scheme!r} is not http or https")


def _target(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
