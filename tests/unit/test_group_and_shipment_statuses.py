"""Fulfilment groups and shipments have status vocabularies of their own, like the order."""

from __future__ import annotations

from engine.fulfilment.common import PROGRESS, TRACKING_STATUSES, WMS_EVENT_TYPES
from engine.record import OPEN_GROUP_STATUSES, FulfilmentGroup, Shipment
from engine.status import GroupStatus, ShipmentStatus


def test_a_new_group_is_allocated_and_a_new_shipment_packed():
    # given a group and a shipment created without a status
    # then the group holds reserved units and the shipment is on the packing bench
    assert FulfilmentGroup.__table__.c.status.default.arg == GroupStatus.ALLOCATED
    assert Shipment.__table__.c.status.default.arg == ShipmentStatus.PACKED


def test_open_groups_are_those_that_still_hold_a_reservation():
    # given a group withdrawn from its warehouse while the order is held
    # then it still holds its reservation, like an allocated or released one
    assert set(OPEN_GROUP_STATUSES) == {GroupStatus.ALLOCATED, GroupStatus.RELEASED,
                                        GroupStatus.ON_HOLD}


def test_every_shipment_status_has_a_place_in_its_progress():
    # given the order in which a shipment moves (an event never moves it back)
    # then it ranks every shipment status and nothing else
    assert set(PROGRESS) == set(ShipmentStatus)
    assert PROGRESS[ShipmentStatus.PACKED] < PROGRESS[ShipmentStatus.SHIPPED] \
        < PROGRESS[ShipmentStatus.IN_TRANSIT] < PROGRESS[ShipmentStatus.OUT_FOR_DELIVERY] \
        < PROGRESS[ShipmentStatus.DELIVERED]


def test_carriers_report_what_happens_after_the_warehouse_ships():
    # given what a carrier's tracking may say and what a warehouse's events may say
    # then tracking speaks of shipment statuses after shipping, never of packing
    assert set(TRACKING_STATUSES) == set(ShipmentStatus) - {ShipmentStatus.PACKED,
                                                            ShipmentStatus.SHIPPED}
    assert {ShipmentStatus.PACKED, ShipmentStatus.SHIPPED} <= set(WMS_EVENT_TYPES)
