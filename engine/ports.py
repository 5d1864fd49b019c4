"""What the engine needs from the outside world, as Protocols."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy.orm import Session

JobArg = str | int | float | bool | None


class UnitOfWork(Protocol):
    """One transaction: the session to work in, and the jobs it will start once committed."""

    session: Session

    def commit(self) -> None:
        """Commit the transaction, then enqueue the jobs it asked for."""

    def rollback(self) -> None:
        """Undo everything since the transaction began and drop its pending jobs."""

    def enqueue_after_commit(self, job: str, *args: JobArg) -> None:
        """Run the named job with these arguments once this transaction has committed."""


@dataclass(frozen=True)
class QueuedJob:
    """One job to hand to a queue: its name, its arguments, and an id to keep it under."""

    job: str
    args: tuple[JobArg, ...]
    key: str | None = None


class JobQueue(Protocol):
    """Runs jobs by name, now (inline) or later (a worker)."""

    def enqueue(self, job: str, args: tuple[JobArg, ...], key: str | None = None) -> None:
        """Hand one job over for running (`key`: an id the queue may keep it under)."""

    def enqueue_many(self, jobs: Sequence[QueuedJob]) -> None:
        """Hand several jobs over at once (all of them, or none if the queue refuses)."""


# The systems an order's round trip talks to. Every effectful call carries a `key`: calling
# again with the same key must return the first answer and have no second effect, so a job
# that runs twice (a retry, a worker killed mid-call) never releases, labels or posts twice.


@dataclass(frozen=True)
class ItemToShip:
    order_line_id: int
    sku: str
    quantity: int


@dataclass(frozen=True)
class Address:
    name: str
    line1: str
    city: str
    postal_code: str | None
    country: str


@dataclass(frozen=True)
class FulfilmentRequest:
    """One fulfilment group, as the warehouse needs it to pick, pack and ship."""

    group_id: int
    order_id: int
    location_code: str
    carrier_code: str | None
    service_code: str | None
    ship_to: Address
    items: tuple[ItemToShip, ...]


@dataclass(frozen=True)
class WmsRelease:
    reference: str  # the warehouse's id for the fulfilment order


class Warehouse(Protocol):
    """A warehouse management system: it picks, packs and ships what we release to it."""

    def release(self, request: FulfilmentRequest, key: str) -> WmsRelease:
        """Hand a fulfilment group to the warehouse; return its reference for it."""

    def release_wave(self, releases: Sequence[tuple[FulfilmentRequest, str]]
                     ) -> list[WmsRelease]:
        """Hand a wave of groups (each with its key) to the warehouse in one call; return
        its reference for each, in the same order."""

    def cancel(self, reference: str, key: str) -> None:
        """Withdraw a released fulfilment order that has not shipped."""

    def stop_units(self, reference: str, items: tuple[ItemToShip, ...], key: str) -> None:
        """Stop these units of a released fulfilment order; the rest of it still ships."""


@dataclass(frozen=True)
class LabelRequest:
    shipment_id: int
    carrier_code: str
    service_code: str
    origin_location: str
    ship_to: Address
    weight_kg: Decimal
    declared_value: Decimal


@dataclass(frozen=True)
class Label:
    tracking_number: str
    cost: Decimal
    label_url: str | None = None


@dataclass(frozen=True)
class TrackingUpdate:
    tracking_number: str
    status: str  # in_transit, out_for_delivery, delivered, exception
    occurred_at: datetime
    detail: str | None = None


class CarrierGateway(Protocol):
    """A carrier's systems: prices, labels with tracking numbers, and tracking."""

    def rate(self, request: LabelRequest) -> Decimal:
        """Return what the carrier would charge for this shipment."""

    def create_label(self, request: LabelRequest, key: str) -> Label:
        """Buy a label for one shipment; return its tracking number and cost."""

    def track(self, tracking_number: str) -> list[TrackingUpdate]:
        """Return what the carrier knows of a shipment's progress, oldest first."""


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class InvoiceLine:
    sku: str
    quantity: int
    net: Decimal
    tax: Decimal


@dataclass(frozen=True)
class InvoiceRequest:
    order_id: int
    customer_id: str
    currency: str
    lines: tuple[InvoiceLine, ...]
    shipping: Decimal
    reference: str  # e.g. the shipment it bills


@dataclass(frozen=True)
class FinanceReceipt:
    reference: str  # the finance system's id for the effect (payment, invoice, note)
    amount: Money


class Finance(Protocol):
    """Payments and the books: authorise and capture, invoice, refund, credit."""

    def authorise(self, order_id: int, amount: Money, key: str) -> FinanceReceipt:
        """Reserve the customer's funds for an order."""

    def capture(self, order_id: int, authorisation: str, amount: Money,
                key: str) -> FinanceReceipt:
        """Take (part of) an authorised amount."""

    def invoice(self, request: InvoiceRequest, key: str) -> FinanceReceipt:
        """Issue an invoice: receivable against revenue, tax and shipping."""

    def refund(self, order_id: int, amount: Money, reason: str, key: str) -> FinanceReceipt:
        """Pay money back to the customer."""

    def credit_note(self, order_id: int, invoice: str, amount: Money, reason: str,
                    key: str) -> FinanceReceipt:
        """Reduce what an invoice asks for (a return, a price correction)."""
