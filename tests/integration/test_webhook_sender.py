"""Sending one webhook: a receiver that drips its answer cannot hold a send for long."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from adapters import webhooks
from engine.webhooks import Outgoing


def test_a_receiver_dripping_its_answer_is_cut_off_at_the_deadline(monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def drip() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
                if stop.wait(0.2):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    monkeypatch.setattr(webhooks, "DEADLINE_SECONDS", 0.6)  # instead of 30 s
    outgoing = Outgoing(delivery_id=1, url=f"http://127.0.0.1:{listener.getsockname()[1]}/h",
                        secret="s", event_type="order.created", payload={"id": "evt_1"})
    started = time.monotonic()
    result = webhooks.send(outgoing, timeout=5.0,  # every byte comes well within 5 s
                           policy=webhooks.TargetPolicy.parse("127.0.0.1"))
    assert time.monotonic() - started < 2.0
    assert result.error is not None and result.status_code is None
    assert "Refused" not in result.error
    stop.set()
    thread.join(5)
    listener.close()


def test_a_name_that_resolves_to_loopback_at_sending_time_is_not_called():
    # given a receiver on loopback, and a name that now resolves to it (DNS rebinding)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    outgoing = Outgoing(delivery_id=1, url=f"http://hooks.partner.example:{port}/h",
                        secret="s", event_type="order.created", payload={"id": "evt_1"})
    rebound = lambda host, port: ["127.0.0.1"]  # noqa: E731
    # when it is sent with the default policy: refused before any connection
    result = webhooks.send(outgoing, policy=webhooks.TargetPolicy(), resolver=rebound)
    assert result.status_code is None and "TargetRefusedError" in result.error
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()


def test_an_allowed_name_is_called_at_the_address_that_was_checked():
    # given a receiver on loopback, reached by a name that DNS does not know: only the
    # address the policy checked can be where the request goes
    received: list[bytes] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer() -> None:
        connection, _ = listener.accept()
        with connection:
            received.append(connection.recv(65536))
            connection.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    outgoing = Outgoing(delivery_id=1, url=f"http://hooks.internal.invalid:{port}/h",
                        secret="s", event_type="order.created", payload={"id": "evt_1"})
    # when it is sent with the name allowed
    result = webhooks.send(outgoing, policy=webhooks.TargetPolicy.parse("hooks.internal.invalid"),
                           resolver=lambda host, port: ["127.0.0.1"])
    thread.join(5)
    listener.close()
    # then it arrived, naming the host it was sent to
    assert result.status_code == 204, result.error
    assert b"Host: hooks.internal.invalid" in received[0]
