"""One timeline for people: events, rule decisions and people's comments, in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.overview import describe, merge_timeline
from engine.record import OrderDecision, OrderEvent

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def event(event_id, minutes, type, actor=("api_key", "erp"), **data):
    return OrderEvent(id=event_id, order_id=1, occurred_at=T0 + timedelta(minutes=minutes),
                      type=type, actor_type=actor[0], actor_id=actor[1], data=data)


def decision(decision_id, minutes, stage="validation", outcome="on_hold"):
    trace = [{"rule": "price-floor", "fired": True, "actions": [], "conditions": [
        {"path": "/rules/0/conditions", "variable": "lowest_price_ratio",
         "operator": "less_than", "value": 0.5, "fact": "0.11", "held": True}]}]
    return OrderDecision(id=decision_id, order_id=1, stage=stage, rule_set_version_id=None,
                         outcome=outcome, decision={}, facts={}, trace=trace,
                         evaluated_at=T0 + timedelta(minutes=minutes))


def test_events_decisions_and_comments_merge_into_one_timeline_oldest_first():
    # given an order held by a rule, a comment and an assignment by people, and a decision
    # that no event names (the exceptions stage deciding to do nothing)
    events = [
        event(1, 0, "order.received", status="received"),
        event(2, 0, "order.held", previous_status="received", status="on_hold",
              decision_id=10, reasons=[{"code": "pricing", "message": "priced too low"}]),
        event(3, 5, "hold.assigned", actor=("user", "otto"), hold=4, assignee="otto"),
        event(4, 7, "hold.commented", actor=("user", "ana"), hold=4,
              body="<b>called</b> the customer"),
    ]
    decisions = [decision(10, 0), decision(11, 6, stage="exceptions", outcome="none")]
    timeline = merge_timeline(events, decisions)
    # then they come in time order, each decision where it happened
    assert [(e.kind, e.type) for e in timeline] == [
        ("event", "order.received"), ("event", "order.held"), ("event", "hold.assigned"),
        ("decision", "decision.exceptions"), ("comment", "hold.commented")]
    held = timeline[1]
    assert held.explanation is not None and held.explanation.fired == ["price-floor"]
    assert ("Reasons", "priced too low [pricing]") in [(d.label, d.value) for d in held.details]
    assert (held.previous_status, held.status, held.status_changed) == (
        "received", "on_hold", True)
    # and what people did says who, the comment's text kept as written (escaped on render)
    assigned, comment = timeline[2], timeline[4]
    assert (assigned.title, assigned.by_person, assigned.actor_name) == (
        "Hold assigned", True, "otto")
    assert (comment.title, comment.note, comment.actor) == (
        "Comment", "<b>called</b> the customer", "user:ana")
    standalone = timeline[3]
    assert standalone.title == "Exception handling decided: none"


def test_event_values_read_in_words():
    assert describe([{"sku": "MUG-2", "quantity": 1, "line_no": 2}]) == "1 × MUG-2 (line 2)"
    assert describe([{"location": "WH-SP", "units": 3}]) == "WH-SP: 3 unit(s)"
    assert describe({"group": 1, "lines": [{"sku": "A", "quantity": 2}]}) == "group 1, lines 2 × A"
