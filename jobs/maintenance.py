"""Housekeeping jobs."""

from __future__ import annotations

from datetime import timedelta

from adapters import idempotency
from adapters.bootstrap import current_services
from engine.record import utcnow


def purge_idempotency_keys() -> int:
    """Forget Idempotency-Keys older than the retention period; return how many went."""
    services = current_services()
    cutoff = utcnow() - timedelta(hours=services.settings.idempotency_retention_hours)
    with services.uow() as uow:
        purged = idempotency.purge(uow.session, cutoff)
        uow.commit()
    return purged
