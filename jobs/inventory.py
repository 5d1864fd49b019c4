"""Inventory jobs: stock that arrives goes to the orders waiting for it."""

from __future__ import annotations

from adapters.bootstrap import current_services
from engine import pipeline, sourcing
from engine.actors import system_actor


def allocate_backorders(sku: str) -> list[int]:
    """Allocate a SKU's waiting backorders, best customers then oldest first.

    One transaction per order, so the job never holds many orders' locks at once. Returns
    the orders that received stock; running it again allocates nothing twice.
    """
    services = current_services()
    actor = system_actor("backorder-allocator")
    with services.uow() as uow:
        waiting = sourcing.waiting_for(uow, sku)
    filled = []
    for order_id in waiting:
        with services.uow() as uow:
            if pipeline.fill_backorder(uow, actor, order_id, sku):
                filled.append(order_id)
            uow.commit()
    return filled
