"""Held orders for tests of the inbox: an order captured through the API, then held by a
rule in a queue, as if some hours ago."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from engine.actors import system_actor
from engine.orders import holds
from engine.orders.locking import find_and_lock_order
from engine.record import utcnow
from tests.conftest import order_body


def held_order(client: Any, admin: dict[str, str], services: Any, queue: str = "manual",
               hours_ago: float = 0.0, rule: str | None = None, channel: str = "web",
               customer_id: str = "C-ANA", reason: str | None = None) -> tuple[int, int]:
    """Capture an order and hold it in a queue, as if `hours_ago` hours ago; return the
    order id and the hold id."""
    order_id = client.post("/orders", json=order_body(channel=channel, customer_id=customer_id),
                           headers=admin).json["id"]
    with services.uow() as uow:
        order = find_and_lock_order(uow, order_id)
        [hold] = holds.put_on_hold(uow, system_actor("test-rules"), order, "validation", [
            holds.HoldReason(queue, reason or f"{queue} check", rule)])
        uow.session.flush()
        hold.created_at = utcnow() - timedelta(hours=hours_ago)
        uow.commit()
        return order_id, hold.id
