"""One order as a person reads it: every quantity, where and how it ships, and one timeline."""

from __future__ import annotations

from contextlib import contextmanager

from engine import pipeline
from engine.actors import Actor
from engine.overview import order_overview
from tests.conftest import order_body, wms_event

ANA = Actor(type="user", id="ana", role="ops", channel=None)


@contextmanager
def overview_of(services, order_id, actor=ANA):
    with services.uow() as uow:
        yield order_overview(uow, actor, order_id)


def test_lines_show_every_quantity_and_the_timeline_explains_each_decision(
        client, admin, services, catalog):
    # given an order captured through the API and decided by the shipped rules
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    # when ops open it
    with overview_of(services, order_id) as seen:
        # then each line shows its quantities, and the group its location and carrier
        assert [(line.sku, line.ordered, line.allocated, line.shipped, line.open)
                for line in seen.lines] == [("LAMP-1", 2, 2, 0, 2), ("MUG-2", 1, 1, 0, 1)]
        assert seen.customer_name == "Ana Lima"
        [group] = seen.groups
        assert (group.group.location_code, group.location_name) == ("WH-SP", "Sao Paulo warehouse")
        assert group.group.carrier_code is not None
        assert group.lines == [(1, "LAMP-1", 2), (2, "MUG-2", 1)]
        # and the timeline carries each stage's decision on the event that it caused
        explained = [(entry.type, entry.explanation.stage) for entry in seen.timeline
                     if entry.explanation is not None]
        assert ("order.validated", "validation") in explained
        assert ("order.allocated", "sourcing") in explained
        assert ("order.carrier_selected", "carrier") in explained
        sourcing = next(entry.explanation for entry in seen.timeline
                        if entry.explanation is not None and entry.explanation.stage == "sourcing")
        assert [(c.name, c.won) for c in sourcing.sections[0].candidates] == [("WH-SP", True)]
        assert seen.timeline[0].title == "Order received"
        assert [entry.at for entry in seen.timeline] == sorted(entry.at for entry in seen.timeline)
        assert seen.actions.hold and seen.actions.cancel and not seen.actions.release


def test_a_persons_hold_is_on_the_timeline_with_their_name_and_can_be_released(
        client, admin, services, catalog):
    order_id = client.post("/orders", json=order_body(), headers=admin).json["id"]
    # when Ana holds the order
    with services.uow() as uow:
        pipeline.hold(uow, ANA, order_id, "customer called to change the address")
        uow.commit()
    with overview_of(services, order_id) as seen:
        # then the timeline says who and why, and the page offers a release
        held = next(entry for entry in seen.timeline if entry.type == "order.held")
        assert (held.title, held.actor, held.by_person, held.note) == (
            "Put on hold", "user:ana", True, "customer called to change the address")
        assert (held.previous_status, held.status, held.status_changed) == (
            "released", "on_hold", True)
        assert [hold.queue for hold in seen.holds] == ["manual"]
        assert seen.actions.release and seen.actions.cancel


def test_shipments_returns_and_ledger_are_on_the_order(client, admin, make_key, services,
                                                       catalog):
    ops = make_key("ops")
    order_id = client.post("/orders", json=order_body(customer_id="C-BEN"),
                           headers=admin).json["id"]
    [group] = client.get(f"/orders/{order_id}/fulfilment", headers=ops).json["items"]
    lines = [{"sku": line["sku"], "quantity": line["quantity"]} for line in group["lines"]]
    # given the order shipped with a tracking number and a mug came back
    assert wms_event(client, ops, group["id"], "shipped", "s-1",
                     tracking_number="TR323456785BR", lines=lines).status_code == 200
    assert client.post(f"/orders/{order_id}/returns", headers=ops, json={
        "lines": [{"sku": "MUG-2", "quantity": 1}], "reason": "chipped"}).status_code == 201
    with overview_of(services, order_id) as seen:
        # then the page has the shipment, the return and the ledger's entries
        assert [s.tracking_number for s in seen.shipments] == ["TR323456785BR"]
        assert [(r.reason, r.lines[0]["sku"]) for r in seen.returns] == [("chipped", "MUG-2")]
        assert seen.totals["shipped"] == 3 and seen.totals["returned"] == 1
        assert seen.ledger_balanced
        assert not seen.actions.cancel and seen.actions.ret
        returned = next(entry for entry in seen.timeline if entry.type == "order.returned")
        assert returned.note == "chipped"
        assert "1 × MUG-2" in [detail.value for detail in returned.details]
