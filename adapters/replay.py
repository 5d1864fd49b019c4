"""Posting orders to a running service over HTTP, as a channel would (demo and replays)."""

from __future__ import annotations

import http.client
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class ReplayOutcome:
    statuses: Counter[int] = field(default_factory=Counter)  # HTTP statuses
    order_statuses: Counter[str] = field(default_factory=Counter)  # of the orders made


def post_orders(url: str, key: str, bodies: Sequence[dict[str, Any]],
                timeout: float = 60) -> ReplayOutcome:
    """POST each body to /orders on one keep-alive connection, with an Idempotency-Key
    made of its channel and reference, and count what came back."""
    parts = urlsplit(url)
    connection_class = (http.client.HTTPSConnection if parts.scheme == "https"
                        else http.client.HTTPConnection)
    connection = connection_class(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    outcome = ReplayOutcome()
    try:
        for body in bodies:
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
            if body.get("channel_order_ref"):
                headers["Idempotency-Key"] = f"{body['channel']}-{body['channel_order_ref']}"
            connection.request("POST", f"{parts.path.rstrip('/')}/orders",
                               body=json.dumps(body), headers=headers)
            response = connection.getresponse()
            answer = response.read()
            outcome.statuses[response.status] += 1
            if response.status == 201:
                outcome.order_statuses[json.loads(answer)["status"]] += 1
    finally:
        connection.close()
    return outcome
