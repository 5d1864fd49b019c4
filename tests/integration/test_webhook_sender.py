"""Sending one webhook: a receiver that drips its answer cannot hold a send for long."""

from __future__ import annotations

import socket
import threading
import time

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
    result = webhooks.send(outgoing, timeout=5.0)  # every byte comes well within 5 s
    assert time.monotonic() - started < 2.0
    assert result.error is not None and result.status_code is None
    stop.set()
    thread.join(5)
    listener.close()
