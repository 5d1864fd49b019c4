"""Webhook jobs: send one delivery, and the periodic sweep that retries those due."""

from __future__ import annotations

from adapters import webhooks as sender
from adapters.bootstrap import current_services
from engine import job_names, webhooks
from engine.record import utcnow


def deliver(delivery_id: int) -> str:
    """Send one delivery if it is pending and due; return its status, or "skipped".

    Safe to run twice: a delivered (or failed, or leased) delivery is not sent again. The
    claim and the outcome are two short transactions; the request runs between them, so no
    row stays locked while a subscriber takes its time.
    """
    services = current_services()
    with services.uow() as uow:
        outgoing = webhooks.claim(uow, delivery_id, utcnow())
        uow.commit()
    if outgoing is None:
        return "skipped"
    policy = sender.TargetPolicy.parse(services.settings.webhook_allowed_hosts)
    result = sender.send(outgoing, policy=policy)
    with services.uow() as uow:
        delivery = webhooks.record_attempt(uow, delivery_id, result, utcnow())
        uow.commit()
        return delivery.status


def retry_due() -> int:
    """Start a delivery job for every delivery whose next attempt is due; return how many.

    A scheduler runs it every minute. It also picks up deliveries whose first job was lost.
    """
    with current_services().uow() as uow:
        due = webhooks.due_deliveries(uow, utcnow())
        for delivery_id in due:
            uow.enqueue_after_commit(job_names.DELIVER_JOB, delivery_id)
        uow.commit()
    return len(due)
