"""Fulfilment jobs: release to warehouses in waves, buy labels, bill shipments, tell customers.

Each job reads what to send in one transaction, calls the partner with an idempotency key
outside any transaction, and records the answer in another, so running it twice (a retry,
a worker killed mid-call) calls again with the same key and records nothing twice. A
partner failure raises, and RQ retries with backoff; after the last attempt the
exceptions rules decide what happens to the order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import TypeVar

from sqlalchemy import select

from adapters.bootstrap import Services, current_services
from adapters.queue import batch_form_of, final_attempt
from engine import effects, job_names
from engine.actors import system_actor
from engine.decisions import escalation
from engine.errors import ExternalSystemError, OmsError
from engine.finance import returns
from engine.fulfilment import billing, labels, stalled, tracking
from engine.fulfilment import release as releasing
from engine.fulfilment.waves import WavePolicy
from engine.orders.locking import lock_orders
from engine.orders.timeline import record_event
from engine.ports import FinanceReceipt, JobArg, LabelRequest, Money
from engine.record import FulfilmentGroup, Order, OrderEvent, Shipment, utcnow
from engine.status import OrderStatus

T = TypeVar("T")
log = logging.getLogger(__name__)
# What the customer is not told while the order is on hold (releasing it tells them).
HELD_NOTICES = ("shipped:", "delivered:")


def release_waves(location_code: str | None = None) -> int:
    """Release the waves that are due (at this location, or at every one): each wave is
    one call to its warehouse carrying every ready group, up to OMS_WAVE_SIZE of them.
    Returns how many groups were released. A warehouse that fails keeps its groups for
    the next try; the other warehouses' waves still go."""
    services = current_services()
    policy = services.settings.wave_policy
    with services.uow() as uow:
        due = releasing.due_release_waves(uow, policy, utcnow(), location_code)
    released, failure = 0, None
    for location, count in due:
        try:
            while count > 0:
                sent = _release_wave(services, policy, location, min(count, policy.size))
                if not sent:
                    break  # another job took the rest
                released, count = released + sent, count - sent
        except ExternalSystemError as error:
            log.warning("the wave to %s waits: %s", location, error)
            failure = error
    if failure is not None:
        raise failure  # RQ tries again; what was released stays released
    return released


def _release_wave(services: Services, policy: WavePolicy, location: str, size: int) -> int:
    """Claim one wave to a warehouse, send it in one call, record it: three transactions,
    each with as many statements whatever the size of the wave."""
    with services.uow() as uow:
        wave = releasing.claim_release_wave(uow, location, size, policy, utcnow())
        uow.commit()
    if not wave:
        return 0
    try:
        answers = services.partners.warehouse(location).release_wave(wave)
    except ExternalSystemError as error:
        with services.uow() as uow:
            releasing.unclaim_release_wave(uow, [request.group_id for request, _ in wave])
            uow.commit()
        if final_attempt() or not error.retryable:
            for order_id in sorted({request.order_id for request, _ in wave}):
                _escalate(order_id, "wms_rejected", "wms", error, job_names.RELEASE_WAVE_JOB,
                          location)
        raise
    with services.uow() as uow:
        releasing.record_releases(uow, system_actor("wms-release"), [
            releasing.Released(request.group_id, answer.reference, request.items)
            for (request, _), answer in zip(wave, answers, strict=True)])
        uow.commit()
    return len(wave)


def buy_labels(carrier_code: str | None = None) -> int:
    """Buy the labels of the label waves that are due (of this carrier, or of each): one
    transaction claims a wave, one records it, whatever its size; the carrier is asked once
    per package (with the package's key). Returns how many labels were bought."""
    services = current_services()
    policy = services.settings.wave_policy
    with services.uow() as uow:
        due = labels.due_label_waves(uow, policy, utcnow(), carrier_code)
    bought, failure = 0, None
    for carrier, count in due:
        while count > 0:
            with services.uow() as uow:
                wave = labels.claim_label_wave(uow, carrier, min(count, policy.size), policy,
                                               utcnow())
                uow.commit()
            if not wave:
                break
            error = _label_wave(services, carrier, wave)
            bought, count = bought + len(wave), count - len(wave)
            if error is not None:
                failure = error
                break
    if failure is not None:
        raise failure  # RQ tries again; what was bought stays bought
    return bought


def _label_wave(services: Services, carrier_code: str,
                wave: list[LabelRequest]) -> ExternalSystemError | None:
    """Ask the carrier for each label of a wave and record those bought in one transaction;
    give the others back (the exceptions rules decide on the last attempt)."""
    carrier = services.partners.carrier(carrier_code)
    bought, failed = [], []
    for request in wave:
        try:
            label = carrier.create_label(request, labels.label_key(request.shipment_id))
        except ExternalSystemError as error:
            failed.append((request, error))
            continue
        bought.append(labels.Labelled(request.shipment_id, label.tracking_number, label.cost))
    with services.uow() as uow:
        labels.record_labels(uow, system_actor("carrier-label"), bought)
        labels.unclaim_labels(uow, [request.shipment_id for request, _ in failed])
        order_ids = dict(uow.session.execute(select(Shipment.id, Shipment.order_id).where(
            Shipment.id.in_([request.shipment_id for request, _ in failed]))).all())
        uow.commit()
    for request, error in failed:
        if final_attempt() or not error.retryable:
            _escalate(order_ids[request.shipment_id], "label_failed", "carrier", error,
                      job_names.LABEL_WAVE_JOB, carrier_code)
    return failed[0][1] if failed else None


def run_billing() -> int:
    """Bill what shipped, in runs of at most OMS_WAVE_SIZE shipments once a run is due:
    authorise (once per order paid up front), capture, then invoice each shipment, every
    step under its own key and recorded for the whole run in one transaction, so after a
    crash the next run picks up where this one stopped and nothing is posted twice.
    Returns how many shipments were invoiced."""
    services = current_services()
    policy = services.settings.wave_policy
    with services.uow() as uow:
        count = billing.due_billing(uow, policy, utcnow())
    invoiced = 0
    while count > 0:
        with services.uow() as uow:
            run = billing.claim_billing_run(uow, min(count, policy.size), policy, utcnow())
            uow.commit()
        if not run:
            break
        done, failure = _billing_run(services, run)
        invoiced, count = invoiced + done, count - len(run)
        if failure is not None:
            raise failure  # RQ tries again; what was posted stays posted
    return invoiced


def _billing_run(services: Services, run: list[billing.Billing]
                 ) -> tuple[int, ExternalSystemError | None]:
    """Authorise, capture and invoice a claimed run; give back what it did not invoice (held
    meanwhile, or a call failed). Returns how many it invoiced, and the first failure."""
    finance = services.partners.finance()
    failed: dict[int, ExternalSystemError] = {}
    with services.uow() as uow:
        known = billing.recorded_references(uow, [key for bill in run for key in (
            bill.authorise_key, bill.capture_key)])

    def step(operation: str, bills: list[billing.Billing], key: Callable[[billing.Billing], str],
             call: Callable[[billing.Billing], FinanceReceipt]) -> None:
        """One step for the bills still going (not failed, not held now), recorded at once."""
        with services.uow() as uow:
            held = billing.held_orders(uow, (bill.order_id for bill in bills))
        posted = []
        for bill in bills:
            if bill.shipment_id in failed or bill.order_id in held or key(bill) in known:
                continue
            try:
                receipt = call(bill)
            except ExternalSystemError as error:
                failed[bill.shipment_id] = error
                continue
            known[key(bill)] = receipt.reference
            posted.append((key(bill), bill.order_id, receipt))
        with services.uow() as uow:
            billing.record_finances(uow, operation, posted)
            uow.commit()

    paid_up_front = [bill for bill in run if bill.paid_up_front]
    step("authorise", paid_up_front, lambda bill: bill.authorise_key,
         lambda bill: finance.authorise(bill.order_id, Money(bill.order_total, bill.currency),
                                        bill.authorise_key))
    step("capture", [bill for bill in paid_up_front if bill.authorise_key in known],
         lambda bill: bill.capture_key,
         lambda bill: finance.capture(bill.order_id, known[bill.authorise_key],
                                      Money(bill.gross, bill.currency), bill.capture_key))
    with services.uow() as uow:
        held = billing.held_orders(uow, (bill.order_id for bill in run))
    invoiced = []
    for bill in run:
        if (bill.shipment_id in failed or bill.order_id in held
                or (bill.paid_up_front and bill.capture_key not in known)):
            continue
        try:
            invoiced.append((bill, finance.invoice(bill.invoice, bill.invoice_key)))
        except ExternalSystemError as error:
            failed[bill.shipment_id] = error
    with services.uow() as uow:
        billing.record_invoices(uow, system_actor("finance"), invoiced)
        done = {bill.shipment_id for bill, _ in invoiced}
        billing.unclaim_billing(uow, [bill.shipment_id for bill in run
                                      if bill.shipment_id not in done])
        uow.commit()
    for bill in run:
        error = failed.get(bill.shipment_id)
        if error is not None and (final_attempt() or not error.retryable):
            _escalate(bill.order_id, "payment_failed", "finance", error,
                      job_names.BILLING_WAVE_JOB)
    return len(invoiced), next(iter(failed.values()), None)


def notify_customer(order_id: int, kind: str) -> bool:
    """Tell the customer (confirmation, shipped:<shipment>, delivered:<shipment>, delay:<group>)
    once: the embedded notifier records the message on the timeline."""
    return _notify_customers([[order_id, kind]]) == 1


@batch_form_of(notify_customer)
def _notify_customers(calls: Sequence[Sequence[JobArg]]) -> int:
    """What many calls of `notify_customer` ask, in one transaction: the orders locked in
    one statement, the notices already sent read in one more. Returns how many were sent."""
    wanted = [(int(str(order_id)), str(kind)) for order_id, kind in calls]
    with current_services().uow() as uow:
        orders = lock_orders(uow, [order_id for order_id, _ in wanted])
        sent: set[tuple[int, str]] = {(order_id, kind) for order_id, kind in uow.session.execute(
            select(OrderEvent.order_id, OrderEvent.data["kind"].as_string())
            .where(OrderEvent.order_id.in_(sorted(orders)),
                   OrderEvent.type == "customer.notified"))}
        told = 0
        for order_id, kind in wanted:
            order = orders.get(order_id)
            if order is None or (order_id, kind) in sent:
                continue
            if order.status is OrderStatus.ON_HOLD and kind.startswith(HELD_NOTICES):
                continue  # told once the hold is released
            record_event(uow, order, "customer.notified", system_actor("notifier"), kind=kind,
                         channel="email", customer=order.customer_id)
            sent.add((order_id, kind))
            told += 1
        uow.commit()
    return told


def detect_late_shipments(grace_hours: int = 0) -> list[int]:
    """Find groups past their promised date and not yet delivered; notify each once and
    let the exceptions rules decide (a scheduled job). Returns the orders found late."""
    services = current_services()
    now = utcnow()
    with services.uow() as uow:
        late = list(uow.session.execute(
            select(FulfilmentGroup.id, FulfilmentGroup.order_id, FulfilmentGroup.promised_at)
            .join(Order, Order.id == FulfilmentGroup.order_id)
            .where(FulfilmentGroup.promised_at < now - timedelta(hours=grace_hours),
                   FulfilmentGroup.status.in_(("allocated", "released", "shipped")),
                   Order.status.in_((OrderStatus.ALLOCATED, OrderStatus.RELEASED,
                                     OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED)))))
    found = []
    for group_id, order_id, promised in late:
        if notify_customer(order_id, f"delay:{group_id}"):
            hours = int((now - promised).total_seconds() // 3600) if promised else 0
            with services.uow() as uow:
                escalation.handle_failure(uow, system_actor("late-shipments"), order_id,
                                          escalation.Failure(
                                              "carrier_delay", "late", "carrier",
                                              f"{hours} h past the promise",
                                              delay_hours=Decimal(hours)))
                uow.commit()
            found.append(order_id)
    return found


def _call(order_id: int, event_type: str, stage: str, call: Callable[[], T],
          job: str | None = None, *args: JobArg) -> T:
    """Call a partner; on the last failed attempt, let the exceptions rules decide, then
    fail the job (RQ keeps it in the failed registry with the error)."""
    try:
        return call()
    except ExternalSystemError as error:
        if final_attempt() or not error.retryable:
            _escalate(order_id, event_type, stage, error, job, *args)
        raise


def _escalate(order_id: int, event_type: str, stage: str, error: ExternalSystemError,
              job: str | None, *args: JobArg) -> None:
    """Let the exceptions rules decide what becomes of an order a partner failed."""
    with current_services().uow() as uow:
        escalation.handle_failure(uow, system_actor("exceptions"), order_id,
                                  escalation.Failure(event_type, error.code, stage,
                                                     str(error), job, args))
        uow.commit()


def _record_finance(key: str, operation: str, order_id: int,
                    receipt: FinanceReceipt) -> None:
    with current_services().uow() as uow:
        billing.record_finance(uow, key, operation, order_id, receipt)
        uow.commit()


def cancel_at_warehouse(group_id: int) -> bool:
    """Take a cancelled group back from the warehouse it was released to (once)."""
    services = current_services()
    key = releasing.cancel_key(group_id)
    with services.uow() as uow:
        group = uow.session.get(FulfilmentGroup, group_id)
        if group is None or group.wms_reference is None or effects.effect(uow, key):
            return False
        location, reference, order_id = group.location_code, group.wms_reference, group.order_id
    warehouse = services.partners.warehouse(location)
    _call(order_id, "wms_rejected", "wms", lambda: warehouse.cancel(reference, key),
          job_names.WMS_CANCEL_JOB, group_id)
    with services.uow() as uow:
        releasing.record_cancel(uow, system_actor("wms-cancel"), group_id)
        uow.commit()
    return True


def withdraw_held_group(group_id: int) -> bool:
    """Ask a warehouse to stop a group whose order was put on hold (once per release of it);
    releasing the hold releases the group again."""
    services = current_services()
    with services.uow() as uow:
        stop = releasing.withdrawal(uow, group_id)
    if stop is None:
        return False
    warehouse = services.partners.warehouse(stop.location_code)
    _call(stop.order_id, "wms_rejected", "wms", lambda: warehouse.cancel(stop.reference, stop.key),
          job_names.WITHDRAW_JOB, group_id)
    with services.uow() as uow:
        releasing.record_withdrawal(uow, system_actor("wms-withdraw"), group_id, stop)
        uow.commit()
    return True


def stop_at_warehouse(group_id: int, event_id: int) -> bool:
    """Tell a released group's warehouse to stop the units a cancellation took from it
    (the timeline event that recorded it), once; the rest of the group still ships."""
    services = current_services()
    key = releasing.stop_key(group_id, event_id)
    with services.uow() as uow:
        request = releasing.stop_request(uow, group_id, event_id)
    if request is None:
        return False
    warehouse = services.partners.warehouse(request.location_code)
    _call(request.order_id, "wms_rejected", "wms",
          lambda: warehouse.stop_units(request.reference, request.items, key),
          job_names.STOP_JOB, group_id, event_id)
    with services.uow() as uow:
        releasing.record_stop(uow, system_actor("wms-stop"), group_id, event_id, request)
        uow.commit()
    return True


def resume_stalled_work(older_than_seconds: int = 600) -> int:
    """Hand out again the release, label and billing work still undone after this long
    (a scheduled safety net behind the outbox). Returns how many jobs it started."""
    services = current_services()
    with services.uow() as uow:
        before = utcnow() - timedelta(seconds=older_than_seconds)
        work = stalled.stalled_work(uow, before) + [
            (job_names.SETTLE_JOB, (return_id,)) for return_id in returns.unsettled(uow, before)]
        for job, arguments in work:
            uow.enqueue_after_commit(job, *arguments)
        uow.commit()
    return len(work)


def poll_tracking() -> int:
    """Ask the carriers reached over HTTP where their undelivered shipments are, and apply
    what is new as tracking events (a scheduled job, for carriers that do not push them).
    Returns how many events were applied."""
    services = current_services()
    partners = services.partners
    with services.uow() as uow:
        shipments = tracking.in_transit(uow, partners.carriers_over_http())
    applied = 0
    for carrier_code, tracking_number in shipments:
        try:
            updates = partners.carrier(carrier_code).track(tracking_number)
        except ExternalSystemError:
            log.warning("tracking %s at %s failed; next round", tracking_number, carrier_code)
            continue
        for update in updates:
            event = tracking.TrackingEvent(
                event_id=f"poll:{tracking_number}:{update.status}:"
                         f"{update.occurred_at.isoformat()}",
                tracking_number=tracking_number, status=update.status,
                occurred_at=update.occurred_at, detail=update.detail)
            try:
                with services.uow() as uow:
                    outcome = tracking.apply_tracking_event(
                        uow, system_actor("tracking-poller"), event,
                        {"polled": True, "status": update.status,
                         "occurred_at": update.occurred_at.isoformat(),
                         "detail": update.detail})
                    uow.commit()
            except OmsError as error:  # one parcel's trouble does not stop the round
                log.warning("tracking update %s for %s not applied: %s", update.status,
                            tracking_number, error)
                continue
            applied += outcome.outcome == "applied"
    return applied


def complete_order(order_id: int) -> bool:
    """Complete a delivered order whose shipments are all invoiced (the sweep finds those
    a hold kept from completing). Returns whether it completed."""
    services = current_services()
    with services.uow() as uow:
        order = uow.session.get(Order, order_id, with_for_update=True)
        if order is None:
            return False
        billing.complete_if_done(uow, system_actor("completion"), order)
        completed = order.status is OrderStatus.COMPLETED
        uow.commit()
    return completed


def settle_return(return_id: int) -> str | None:
    """Credit a return against the invoices its units were billed on and, for orders paid
    up front, refund it; each posting once (a second call with the same key answers the
    first answer) and recorded as soon as it posts. Returns the credit notes' references."""
    services = current_services()
    with services.uow() as uow:
        bill = returns.settlement(uow, return_id)
    if bill is None:
        return None
    try:
        references, refund = _post_settlement(services, bill, return_id)
    except ExternalSystemError as error:
        with services.uow() as uow:
            returns.record_settle_failure(uow, system_actor("finance"), return_id, str(error))
            uow.commit()
        raise
    with services.uow() as uow:
        returns.record_settled(uow, system_actor("finance"), return_id, references, refund,
                               bill)
        uow.commit()
    return ", ".join(references)


def _post_settlement(services: Services, bill: returns.Settlement,
                     return_id: int) -> tuple[list[str], str | None]:
    """Post a return's credit notes and refund, recording each as it posts."""
    finance = services.partners.finance()
    references = []
    for credit in bill.credits:
        note = _call(bill.order_id, "payment_failed", "finance",
                     partial(finance.credit_note, bill.order_id, credit.invoice,
                             Money(credit.amount, bill.currency), bill.reason, credit.key),
                     job_names.SETTLE_JOB, return_id)
        _record_finance(credit.key, "credit_note", bill.order_id, note)
        references.append(note.reference)
    refund = None
    if bill.refund:
        paid_back = _call(bill.order_id, "payment_failed", "finance", lambda: finance.refund(
            bill.order_id, Money(bill.amount, bill.currency), bill.reason, bill.refund_key),
            job_names.SETTLE_JOB, return_id)
        _record_finance(bill.refund_key, "refund", bill.order_id, paid_back)
        refund = paid_back.reference
    return references, refund
