"""The status vocabularies: the order's, with the one table of allowed transitions
enforced everywhere, and those of fulfilment groups and shipments."""

from __future__ import annotations

from enum import StrEnum

from engine.errors import InvalidTransitionError


class OrderStatus(StrEnum):
    RECEIVED = "received"
    VALIDATED = "validated"
    ALLOCATED = "allocated"
    RELEASED = "released"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    ON_HOLD = "on_hold"
    BACKORDERED = "backordered"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


S = OrderStatus

# The only place that says which status may follow which. Shipped goods are never
# cancelled (they are returned); terminal statuses have no way out.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.RECEIVED: frozenset({S.VALIDATED, S.ON_HOLD, S.REJECTED, S.CANCELLED}),
    S.VALIDATED: frozenset({S.ALLOCATED, S.BACKORDERED, S.ON_HOLD, S.CANCELLED}),
    S.ALLOCATED: frozenset({S.RELEASED, S.BACKORDERED, S.ON_HOLD, S.CANCELLED}),
    S.BACKORDERED: frozenset({S.ALLOCATED, S.ON_HOLD, S.CANCELLED}),
    S.RELEASED: frozenset({S.PARTIALLY_SHIPPED, S.SHIPPED, S.ON_HOLD, S.CANCELLED}),
    S.PARTIALLY_SHIPPED: frozenset({S.SHIPPED, S.ON_HOLD}),
    S.SHIPPED: frozenset({S.DELIVERED}),
    S.DELIVERED: frozenset({S.COMPLETED}),
    # Leaving a hold is further limited by the step the order was held at: see below.
    S.ON_HOLD: frozenset(
        {S.RECEIVED, S.VALIDATED, S.ALLOCATED, S.BACKORDERED, S.RELEASED,
         S.PARTIALLY_SHIPPED, S.SHIPPED, S.DELIVERED, S.REJECTED, S.CANCELLED}
    ),
    S.COMPLETED: frozenset(),
    S.REJECTED: frozenset(),
    S.CANCELLED: frozenset(),
}

TERMINAL = frozenset(status for status, targets in TRANSITIONS.items() if not targets)


def can_transition(current: OrderStatus, target: OrderStatus,
                   held_from: OrderStatus | None = None) -> bool:
    """Tell whether the table allows going from current to target.

    An order on hold remembers the step it was held at (held_from): it may go back to that
    step or wherever that step may go, and it may be cancelled only if that step may be, so
    a hold is never a way around the table.
    """
    if target not in TRANSITIONS[current]:
        return False
    if current is not S.ON_HOLD or held_from is None or target is S.REJECTED:
        return True
    return target is held_from or target in TRANSITIONS[held_from]


def check_transition(current: OrderStatus, target: OrderStatus,
                     held_from: OrderStatus | None = None) -> None:
    """Refuse a transition the table does not allow.

    Raises:
        InvalidTransitionError: with the current and requested status.
    """
    if not can_transition(current, target, held_from):
        raise InvalidTransitionError(current.value, target.value, held_from and held_from.value)


class GroupStatus(StrEnum):
    """Where a fulfilment group (the part of an order one location ships) is."""

    PLANNED = "planned"  # only in dry runs and simulations: never stored
    ALLOCATED = "allocated"  # its units are reserved at the location
    RELEASED = "released"  # the warehouse has it
    ON_HOLD = "on_hold"  # withdrawn from its warehouse while the order is held
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


class ShipmentStatus(StrEnum):
    """How far a shipment is: packed and shipped (the warehouse says so), then on its way
    to delivery (the carrier's tracking says so)."""

    PACKED = "packed"
    SHIPPED = "shipped"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    EXCEPTION = "exception"  # the carrier reports a problem; it may still be delivered


class RuleSetState(StrEnum):
    """Where a rule-set version is in its life: edited, deciding orders, or replaced."""

    DRAFT = "draft"
    PUBLISHED = "published"  # at most one per stage decides orders
    RETIRED = "retired"
    DISCARDED = "discarded"  # a draft given up: kept for the audit, never published


class ImportStatus(StrEnum):
    """Where an order import (a CSV file) stands: waiting for its job, being captured,
    captured to its end, or given up."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ImportOutcome(StrEnum):
    """What became of one order of an import file."""

    PENDING = "pending"
    CREATED = "created"
    FAILED = "failed"
