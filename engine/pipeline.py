"""The spine: an order is validated, sourced, given carriers and released; holds resume it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import select

from engine.actors import Actor
from engine.decisions.carrier import choose_carriers_for
from engine.decisions.sourcing import source_order, source_orders, unsourced_units
from engine.decisions.validation import validate_order, validate_orders
from engine.errors import (
    FieldProblem,
    HoldResolvedError,
    InputValidationError,
    OmsError,
    one_of_batch,
)
from engine.fulfilment import cancelling
from engine.fulfilment.holding import resume_held_work
from engine.fulfilment.release import request_release
from engine.inventory.stock import WAITING_STATUSES
from engine.orders import holds
from engine.orders.capture import OrderDraft, capture_orders
from engine.orders.reading import get_order
from engine.orders.timeline import record_event
from engine.ports import UnitOfWork
from engine.record import (
    Hold,
    Order,
    OrderDecision,
)
from engine.status import OrderStatus


def receive_order(uow: UnitOfWork, actor: Actor, draft: OrderDraft) -> Order:
    """Capture one order and take it through the stages that run on capture: a batch of one
    (`receive_orders`), the same code.

    Raises:
        the error `receive_orders` reports for it (see `capture_orders`).
    """
    return one_of_batch(receive_orders(uow, actor, [draft]))


def receive_orders(uow: UnitOfWork, actor: Actor,
                   drafts: Sequence[OrderDraft]) -> list[Order | OmsError]:
    """Capture a batch of orders and take them through validation, sourcing and carrier
    choice together; return, in the drafts' order, each order or why it was refused.

    Each stage takes the whole batch, with a constant number of statements (its reads once,
    its writes in one insert per table), and decides the orders one after the other in
    the drafts' order: credit and stock go to the first ones first. A refused draft leaves
    the others alone; all of it is one transaction.
    """
    captured = capture_orders(uow, actor, drafts)
    orders = [order for order in captured if isinstance(order, Order)]
    validate_orders(uow, actor, orders)
    source_orders(uow, actor, [order for order in orders
                               if order.status is OrderStatus.VALIDATED])
    waiting = [order for order in orders if order.status in WAITING_STATUSES]
    choose_carriers_for(uow, actor, waiting)
    for order in waiting:
        request_release(uow, order)
    return captured


def advance(uow: UnitOfWork, actor: Actor, order: Order,
            waived: frozenset[str] = frozenset(), resumed: bool = False) -> Order:
    """Take the order through every stage it is ready for: validation, sourcing, carrier.

    `waived`: rules whose holds a person released; they do not hold the order again.
    `resumed`: the order comes back from a hold, so units it was waiting for (or that a
    hold kept from being sourced) are sourced again now.
    """
    if order.status is OrderStatus.RECEIVED:
        validate_order(uow, actor, order, waived)
    if order.status is OrderStatus.VALIDATED:
        source_order(uow, actor, order, waived)
    elif resumed and order.status in WAITING_STATUSES:
        unsourced, not_waiting = unsourced_units(order)
        if unsourced:
            source_order(uow, actor, order, waived, for_backorder=not not_waiting)
    if order.status in WAITING_STATUSES:
        choose_carriers_for(uow, actor, [order])  # for the groups that have no carrier yet
        request_release(uow, order)
    return order


def fill_backorder(uow: UnitOfWork, actor: Actor, order_id: int, sku: str) -> bool:
    """Give a waiting order what stock there is, as the head of the SKU's queue, and choose
    carriers for what it received. Returns whether it received any; running it again when
    nothing arrived changes nothing.
    """
    order = uow.session.get(Order, order_id, with_for_update=True, populate_existing=True)
    if order is None or order.status not in WAITING_STATUSES:
        return False
    if source_order(uow, actor, order, holds.waived_rules(uow, order), for_backorder=True,
                    front_of=sku) is None:
        return False
    choose_carriers_for(uow, actor, [order])
    request_release(uow, order)
    return True


def hold(uow: UnitOfWork, actor: Actor, order_id: int, reason: str) -> Order:
    """Put an order on hold for review, with the reason; releasing it returns it to where
    it was.

    Raises:
        InvalidTransitionError: the order may not be held (it is closed, or has shipped).
    """
    return holds.hold_order(uow, actor, get_order(uow, actor, order_id, lock=True), reason)


def resume_after_hold(uow: UnitOfWork, actor: Actor, order_id: int,
                      note: str | None) -> Order:
    """Release every hold of an order: back to the step it was held at, which runs again.

    The holds a person releases are waived when the step runs again: their rules do not
    hold the order a second time. Anything else (a rejection, a new hold) still applies.

    Raises:
        NotOnHoldError: the order is not on hold.
    """
    order = holds.release_hold(uow, actor, get_order(uow, actor, order_id, lock=True), note)
    resume_held_work(uow, order)
    return advance(uow, actor, order, holds.waived_rules(uow, order), resumed=True)


def release_one_hold(uow: UnitOfWork, actor: Actor, hold_id: int, note: str | None) -> Hold:
    """Release one reason an order waits; the order moves on once none is left.

    Raises:
        NotFoundError: no such hold (or not this actor's channel).
        HoldResolvedError: the hold is already resolved.
    """
    # the order first (locked), then its holds afresh: two releases of its last two holds,
    # or a release racing a cancel, are decided one after the other
    hold, order = holds.visible_hold(uow, actor, hold_id, lock=True)
    if hold.resolved_at is not None:
        raise HoldResolvedError(hold.id, hold.resolution)
    others = [other for other in holds.open_holds(uow, order) if other.id != hold.id]
    if others:
        holds.resolve_hold(actor, hold, "released")
        record_event(uow, order, "hold.released", actor, hold=hold.id, queue=hold.queue,
                     note=note, still_open=[other.queue for other in others])
    else:
        resume_after_hold(uow, actor, order.id, note)
    return hold


def order_decisions(uow: UnitOfWork, actor: Actor, order_id: int) -> list[OrderDecision]:
    """Return the order's decisions, oldest first, each with the version that made it."""
    order = get_order(uow, actor, order_id)
    return list(uow.session.scalars(select(OrderDecision).where(
        OrderDecision.order_id == order.id).order_by(OrderDecision.id)))


RELEASE, CANCEL = "release", "cancel"
BULK_ACTIONS = (RELEASE, CANCEL)
# The most holds one bulk action takes: a filter matching more must be narrowed first.
MAX_BULK_HOLDS = 500


@dataclass(frozen=True)
class BulkOutcome:
    """What a bulk action did to one order: `released` (it moved on), `still_held` (other
    holds keep it), `cancelled`, or `error` with the engine's code and why."""

    order_id: int
    hold_ids: list[int]
    outcome: str
    status: str | None = None
    code: str | None = None
    detail: str | None = None


def preview_holds_in_bulk(uow: UnitOfWork, actor: Actor, query: holds.HoldQuery,
                          sla: holds.HoldSla) -> tuple[int, list[holds.QueuedHold]]:
    """How many open holds a bulk action over `query` would take, and the first
    MAX_BULK_HOLDS of them in the inbox's order; nothing is changed."""
    matched = holds.count_holds(uow, actor, query, sla)
    found, _ = holds.list_holds(uow, actor, replace(query, limit=MAX_BULK_HOLDS), sla)
    return matched, found


def resolve_holds_in_bulk(uow: UnitOfWork, actor: Actor, action: str, query: holds.HoldQuery,
                          sla: holds.HoldSla, reason: str, expected: int | None = None,
                          ) -> list[BulkOutcome]:
    """Release (each matching hold) or cancel (each order a matching hold holds) every open
    hold a query matches, order by order, each as the single command would, oldest first.

    One order's refusal is its own result and leaves the others alone.

    Raises:
        InputValidationError: more than MAX_BULK_HOLDS match, or not `expected` (the count
            a preview showed): nothing is done.
    """
    query = replace(query, state="open", offset=0)
    ids = holds.matching_hold_ids(uow, actor, query, sla, MAX_BULK_HOLDS + 1)
    if len(ids) > MAX_BULK_HOLDS:
        raise InputValidationError([FieldProblem(
            "filter", f"more than {MAX_BULK_HOLDS} holds match: narrow the filter")])
    if expected is not None and expected != len(ids):
        raise InputValidationError([FieldProblem(
            "expected", f"{len(ids)} holds match now, not {expected}: preview again")])
    by_order: dict[int, list[int]] = {}
    for hold_id, order_id in uow.session.execute(
            select(Hold.id, Hold.order_id).where(Hold.id.in_(ids))):
        by_order.setdefault(order_id, []).append(hold_id)
    first = {hold_id: index for index, hold_id in enumerate(ids)}
    outcomes = []
    for order_id, hold_ids in sorted(by_order.items(),
                                     key=lambda item: min(first[h] for h in item[1])):
        hold_ids.sort(key=first.__getitem__)
        try:
            with uow.session.begin_nested():
                outcomes.append(_resolve_one(uow, actor, action, order_id, hold_ids, reason))
        except OmsError as error:
            outcomes.append(BulkOutcome(order_id, hold_ids, "error", code=error.code,
                                        detail=error.detail))
    return outcomes


def _resolve_one(uow: UnitOfWork, actor: Actor, action: str, order_id: int,
                 hold_ids: list[int], reason: str) -> BulkOutcome:
    if action == CANCEL:
        order = cancelling.cancel_order(uow, actor, order_id, reason)
        return BulkOutcome(order_id, hold_ids, "cancelled", order.status.value)
    for hold_id in hold_ids:
        hold = release_one_hold(uow, actor, hold_id, reason)
    order = get_order(uow, actor, hold.order_id)
    moved = order.status is not OrderStatus.ON_HOLD
    return BulkOutcome(order_id, hold_ids, "released" if moved else "still_held",
                       order.status.value)
