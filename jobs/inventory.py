"""Inventory jobs: stock that arrives goes to the orders waiting for it."""

from __future__ import annotations

from adapters.bootstrap import current_services
from engine import pipeline
from engine.actors import system_actor


def allocate_backorders(sku: str) -> list[int]:
    """Allocate a SKU's waiting backorders, best customers then oldest first.

    Returns the orders that received stock; running it again allocates nothing twice.
    """
    with current_services().uow() as uow:
        filled = pipeline.fill_backorders(uow, system_actor("backorder-allocator"), sku)
        uow.commit()
        return filled
