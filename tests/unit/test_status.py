from __future__ import annotations

import pytest

from engine.errors import InvalidTransitionError
from engine.status import TERMINAL, TRANSITIONS, OrderStatus, can_transition, check_transition


def test_every_status_has_a_row_in_the_transition_table():
    assert set(TRANSITIONS) == set(OrderStatus)


def test_the_happy_path_is_allowed_step_by_step():
    path = ["received", "validated", "allocated", "released", "partially_shipped",
            "shipped", "delivered", "completed"]
    for current, target in zip(path, path[1:], strict=False):
        assert can_transition(OrderStatus(current), OrderStatus(target)), (current, target)


def test_an_order_cannot_skip_a_required_step():
    assert not can_transition(OrderStatus.RECEIVED, OrderStatus.ALLOCATED)
    assert not can_transition(OrderStatus.VALIDATED, OrderStatus.SHIPPED)
    assert not can_transition(OrderStatus.RELEASED, OrderStatus.DELIVERED)


def test_shipped_goods_cannot_be_cancelled_only_returned():
    for status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.PARTIALLY_SHIPPED):
        assert not can_transition(status, OrderStatus.CANCELLED)


def test_closed_orders_go_nowhere():
    assert TERMINAL == {OrderStatus.COMPLETED, OrderStatus.REJECTED, OrderStatus.CANCELLED}


def test_a_refused_transition_names_both_statuses():
    with pytest.raises(InvalidTransitionError) as refused:
        check_transition(OrderStatus.CANCELLED, OrderStatus.VALIDATED)
    assert (refused.value.current, refused.value.target) == ("cancelled", "validated")
    assert refused.value.code == "invalid_transition"


def test_a_hold_is_no_way_around_the_table():
    held_after_shipping = OrderStatus.PARTIALLY_SHIPPED
    # an order held while partly shipped can resume shipping, but not be cancelled
    assert can_transition(OrderStatus.ON_HOLD, OrderStatus.PARTIALLY_SHIPPED, held_after_shipping)
    assert not can_transition(OrderStatus.ON_HOLD, OrderStatus.CANCELLED, held_after_shipping)
    # an order held on receipt cannot jump ahead to allocation
    assert not can_transition(OrderStatus.ON_HOLD, OrderStatus.ALLOCATED, OrderStatus.RECEIVED)
    assert can_transition(OrderStatus.ON_HOLD, OrderStatus.VALIDATED, OrderStatus.RECEIVED)
    assert can_transition(OrderStatus.ON_HOLD, OrderStatus.REJECTED, OrderStatus.RECEIVED)
    with pytest.raises(InvalidTransitionError) as refused:
        check_transition(OrderStatus.ON_HOLD, OrderStatus.CANCELLED, held_after_shipping)
    assert refused.value.held_from == "partially_shipped"


def test_every_step_an_order_can_be_held_at_can_be_resumed():
    for status, targets in TRANSITIONS.items():
        if OrderStatus.ON_HOLD in targets:
            assert can_transition(OrderStatus.ON_HOLD, status, status), status
