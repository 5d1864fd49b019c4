"""Outbound webhook requests: one signed JSON POST to a subscriber, whatever it does.

Headers: Content-Type, X-OMS-Event (the webhook type), X-OMS-Delivery (our delivery id,
the same on every attempt), and the signature headers of `adapters.signing` over the exact
body, signed at sending time so a retry hours later is still within the receiver's
tolerance. Redirects are not followed: a 3xx is a failed attempt, like any non-2xx.

Targets: a subscriber may not point us at our own network. A URL whose host is, or
resolves to, a loopback, private, link-local or otherwise non-public address is refused
when the subscription is made, and again at each send against what the name resolves to
then (a name that resolved to a public address yesterday may not today); the send then
connects to the address it checked. `OMS_WEBHOOK_ALLOWED_HOSTS` names the exceptions
(host names, addresses or CIDR ranges, comma-separated).
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]


def resolve(host: str, port: int) -> list[str]:
    """Return the addresses a host name resolves to (a literal address is itself).

    Raises:
        OSError: the name does not resolve.
    """
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


@dataclass(frozen=True)
class TargetPolicy:
    """Which webhook targets may be reached: public addresses, and those allowed by name or
    range (`OMS_WEBHOOK_ALLOWED_HOSTS`)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, allowed: str) -> TargetPolicy:
        """Read "hooks.internal, 10.1.0.0/16, ::1" into a policy.

        Raises:
            ValueError: an entry is neither a host name nor an address or range.
        """
        hosts, networks = set(), []
        for entry in (part.strip().lower() for part in allowed.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if not entry.replace("-", "").replace(".", "").isalnum():
                    raise ValueError(f"{entry!r} is not a host name, address or range") from None
                hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def refuses(self, host: str, address: str) -> bool:
        """Tell whether `host`, at `address`, may not be reached."""
        if host.lower().strip("[]").rstrip(".") in self.hosts:
            return False
        ip = ipaddress.ip_address(address.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.networks):
            return False
        return not ip.is_global or ip.is_multicast

    def problem(self, url: str, resolver: Resolver | None = None) -> str | None:
        """Return why a subscriber URL points where we do not send, or None.

        A literal address is judged as it is; a name by what it resolves to now. A name
        that does not resolve now is let through: it is judged again at each send.
        """
        parts = urlsplit(url)
        host = parts.hostname
        if host is None:
            return None
        try:
            addresses = (resolver or resolve)(host, parts.port or 443)
        except (OSError, UnicodeError):
            return None
        refused = [address for address in addresses if self.refuses(host, address)]
        if refused:
            return (f"points at a private, loopback or link-local address ({refused[0]}); "
                    "allow it with OMS_WEBHOOK_ALLOWED_HOSTS if it is meant")
        return None

    def pin(self, host: str, port: int, resolver: Resolver | None = None) -> str:
        """Resolve the host now and return the address to connect to.

        Raises:
            OSError: the name does not resolve.
            TargetRefusedError: it resolves to an address this policy refuses.
        """
        addresses = (resolver or resolve)(host, port)
        if not addresses:
            raise OSError(f"{host} resolves to no address")
        refused = [address for address in addresses if self.refuses(host, address)]
        if refused:
            raise TargetRefusedError(f"{host} resolves to {refused[0]}, a private, loopback or "
                                     "link-local address not in OMS_WEBHOOK_ALLOWED_HOSTS")
        return addresses[0]


class TargetRefusedError(ValueError):
    """A webhook target resolves to an address we do not send to."""


def encode(payload: dict[str, Any]) -> bytes:
    """Return the body exactly as it is signed and sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def send(outgoing: Outgoing, timeout: float = TIMEOUT_SECONDS,
         now: float | None = None, policy: TargetPolicy | None = None,
         resolver: Resolver | None = None) -> AttemptResult:
    """POST one delivery; return the status and the start of the body, or the error.

    Never raises for the peer's failures (refused, unreachable, slow, TLS, malformed
    answer) nor for a target the policy refuses: they come back as `AttemptResult.error`.
    """
    body = encode(outgoing.payload)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               EVENT_HEADER: outgoing.event_type, DELIVERY_HEADER: str(outgoing.delivery_id),
               **sign([outgoing.secret], body, now)}
    try:
        connection = _connect(outgoing.url, timeout, policy or TargetPolicy(), resolver)
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


def _connect(url: str, timeout: float, policy: TargetPolicy,
             resolver: Resolver | None) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    if parts.hostname is None:
        raise ValueError(f"no host in {url!r}")
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout,
                                                 context=ssl.create_default_context())
    elif parts.scheme == "http":
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    else:
        raise ValueError(f"scheme {parts.scheme!r} is not http or https")
    # connect to the address just checked, not to whatever the name resolves to next
    # (TLS still verifies the host name)
    address = policy.pin(parts.hostname, connection.port, resolver)

    def pinned(target: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        return socket.create_connection((address, target[1]), *args, **kwargs)

    connection._create_connection = pinned  # type: ignore[attr-defined]
    return connection


def _target(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
