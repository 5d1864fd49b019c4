"""Effects on partners, recorded once per key: what a job did at a warehouse, carrier or bank."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from engine.ports import (
    UnitOfWork,
)
from engine.record import (
    ExternalEffect,
    utcnow,
)


def effect(uow: UnitOfWork, key: str) -> ExternalEffect | None:
    """Return the recorded effect of this idempotency key, if the call was made."""
    found: ExternalEffect | None = uow.session.scalars(
        select(ExternalEffect).where(ExternalEffect.key == key)).first()
    return found


def record_effect(uow: UnitOfWork, key: str, system: str, operation: str, order_id: int,
                  reference: str, amount: Decimal | None = None) -> ExternalEffect:
    """Record that a partner call took effect (the key is unique: a twin fails to commit)."""
    recorded = ExternalEffect(key=key, system=system, operation=operation, order_id=order_id,
                              reference=reference, amount=amount, created_at=utcnow())
    uow.session.add(recorded)
    return recorded
