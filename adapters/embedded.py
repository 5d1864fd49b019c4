"""The embedded partners: a warehouse, a carrier and a ledger that work on one machine.

- The warehouse takes a release and hands back a reference; its picks, packs and
  shipments are confirmed through our own API (`POST /wms/events` with an ops key).
- The carrier prices from the group's rate-card cost and numbers labels from the shipment
  (UPU S10 style, with its check digit), so a label bought twice has the same number.
- The ledger posts balanced double-entry journal entries in our database, one per
  idempotency key (a unique key: a second call returns the first entry).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.iso import minor_units
from engine.ports import (
    FinanceReceipt,
    FulfilmentRequest,
    InvoiceRequest,
    ItemToShip,
    Label,
    LabelRequest,
    Money,
    TrackingUpdate,
    WmsRelease,
)
from engine.record import (
    LEDGER_ACCOUNTS,
    FulfilmentGroup,
    JournalEntry,
    JournalLine,
    Shipment,
    utcnow,
)


class EmbeddedWarehouse:
    """A warehouse run by our own ops staff: confirmations come through our API."""

    def __init__(self, location_code: str) -> None:
        self.location_code = location_code

    def release(self, request: FulfilmentRequest, key: str) -> WmsRelease:
        return WmsRelease(f"LWMS-{request.location_code}-{request.group_id}")

    def release_wave(self, releases: Sequence[tuple[FulfilmentRequest, str]]
                     ) -> list[WmsRelease]:
        return [self.release(request, key) for request, key in releases]

    def cancel(self, reference: str, key: str) -> None:
        return None  # nothing to take back: the pick list is our own fulfilment group

    def stop_units(self, reference: str, items: tuple[ItemToShip, ...], key: str) -> None:
        return None  # the pick list is our own group, which no longer has the units


ZERO = Decimal(0)
S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


def s10_number(prefix: str, serial: int, country: str = "BR") -> str:
    """A UPU S10 item number: two letters, eight digits, a check digit, the country."""
    digits = f"{serial % 10**8:08d}"
    check = 11 - sum(int(d) * w for d, w in zip(digits, S10_WEIGHTS, strict=True)) % 11
    check = {10: 0, 11: 5}.get(check, check)
    return f"{prefix[:2].upper():<2}{digits}{check}{country}"


class EmbeddedCarrier:
    """Table-driven rating and label numbers, for carriers without an API of their own."""

    def __init__(self, carrier_code: str, session_factory: Callable[[], Session]) -> None:
        self.carrier_code = carrier_code
        self._session_factory = session_factory

    def rate(self, request: LabelRequest) -> Decimal:
        with self._session_factory() as session:
            cost = session.scalar(select(FulfilmentGroup.shipping_cost).join(
                Shipment, Shipment.group_id == FulfilmentGroup.id).where(
                Shipment.id == request.shipment_id))
        return cost if cost is not None else Decimal(0)

    def create_label(self, request: LabelRequest, key: str) -> Label:
        return Label(s10_number(self.carrier_code, request.shipment_id), self.rate(request))

    def track(self, tracking_number: str) -> list[TrackingUpdate]:
        return []  # tracking events reach us through POST /carriers/events


# What each posting debits and credits. An invoice: the customer owes the gross; revenue,
# tax and shipping are earned. A capture: cash in, the receivable settled. A credit note:
# revenue given back, the receivable reduced. A refund: cash paid back to the customer
# (what a credit note left them owed).
class EmbeddedLedger:
    """The local double-entry ledger: one balanced, append-only entry per posting."""

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session_factory = session_factory

    def authorise(self, order_id: int, amount: Money, key: str) -> FinanceReceipt:
        # An authorisation moves no money: a memo entry with no lines records it.
        return self._post(key, "authorisation", "AUTH", order_id, amount, [])

    def capture(self, order_id: int, authorisation: str, amount: Money,
                key: str) -> FinanceReceipt:
        return self._post(key, "capture", "PAY", order_id, amount,
                          [("cash", amount.amount, ZERO), ("receivables", ZERO, amount.amount)])

    def invoice(self, request: InvoiceRequest, key: str) -> FinanceReceipt:
        net = sum((line.net for line in request.lines), Decimal(0))
        tax = sum((line.tax for line in request.lines), Decimal(0))
        gross = net + tax + request.shipping
        postings = [("receivables", gross, ZERO), ("revenue", ZERO, net),
                    ("tax_payable", ZERO, tax), ("shipping_revenue", ZERO, request.shipping)]
        return self._post(key, "invoice", "INV", request.order_id,
                          Money(gross, request.currency), postings)

    def refund(self, order_id: int, amount: Money, reason: str, key: str) -> FinanceReceipt:
        return self._post(key, "refund", "REF", order_id, amount,
                          [("receivables", amount.amount, ZERO), ("cash", ZERO, amount.amount)],
                          reason)

    def credit_note(self, order_id: int, invoice: str, amount: Money, reason: str,
                    key: str) -> FinanceReceipt:
        return self._post(key, "credit_note", "CN", order_id, amount,
                          [("revenue", amount.amount, ZERO), ("receivables", ZERO, amount.amount)],
                          f"{reason} (against {invoice})")

    def _post(self, key: str, kind: str, prefix: str, order_id: int, amount: Money,
              postings: list[tuple[str, Decimal, Decimal]],
              memo: str | None = None) -> FinanceReceipt:
        """Post one entry for this key, or return the one already posted for it."""
        lines = [JournalLine(account=account, debit=debit, credit=credit)
                 for account, debit, credit in postings if debit or credit]
        unknown = {line.account for line in lines} - set(LEDGER_ACCOUNTS)
        if unknown:
            raise ValueError(f"{kind} posts to unknown accounts {sorted(unknown)}")
        if sum(line.debit for line in lines) != sum(line.credit for line in lines):
            raise ValueError(f"unbalanced {kind} entry for order {order_id}: {postings}")
        unit = Decimal(1).scaleb(-minor_units(amount.currency))
        if any(value != value.quantize(unit) for line in lines
               for value in (line.debit, line.credit)):
            raise ValueError(f"{kind} amounts finer than {amount.currency} allows: {postings}")
        for line in lines:
            line.debit, line.credit = line.debit.quantize(unit), line.credit.quantize(unit)
        with self._session_factory() as session:
            found = self._posted(session, key)
            if found is not None:
                return found
            reference = f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:12].upper()}"
            session.add(JournalEntry(key=key, kind=kind, reference=reference,
                                     order_id=order_id, currency=amount.currency,
                                     amount=amount.amount, memo=(memo or kind)[:200],
                                     posted_at=utcnow(), lines=lines))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                found = self._posted(session, key)
                if found is None:
                    raise
                return found  # a twin call posted it first: answer what it posted
            return FinanceReceipt(reference, amount)

    @staticmethod
    def _posted(session: Session, key: str) -> FinanceReceipt | None:
        entry = session.scalars(select(JournalEntry).where(JournalEntry.key == key)).first()
        if entry is None:
            return None
        return FinanceReceipt(entry.reference, Money(entry.amount, entry.currency))
