"""Inventory jobs: stock that arrives goes to the orders waiting for it."""

from __future__ import annotations

from adapters.bootstrap import current_services
from engine import pipeline
from engine.actors import system_actor
from engine.decisions import sourcing
from engine.inventory import stock as inventory


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


def sweep_backorders() -> dict[str, list[int]]:
    """Offer available stock to every waiting backorder (a scheduled safety net: stock
    changes start the job per SKU themselves). Returns, per SKU, the orders filled."""
    with current_services().uow() as uow:
        skus = inventory.skus_to_fill(uow)
    return {sku: filled for sku in skus if (filled := allocate_backorders(sku))}
