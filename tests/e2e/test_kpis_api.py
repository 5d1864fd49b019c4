"""GET /kpis on a small world whose every KPI is known (tests/support/kpi_world.py), and on
an order taken through the API."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import order_body, wms_event
from tests.support.kpi_world import build_kpi_world


@pytest.fixture
def world(catalog, services):
    return build_kpi_world(services)


def _kpis(client, headers, **query):
    response = client.get("/kpis", query_string=query, headers=headers)
    assert response.status_code == 200, response.json
    return {kpi["key"]: kpi for kpi in response.json["kpis"]}, response.json


def _by(kpi, field="value"):
    return {row["group"]: row[field] for row in kpi["by_group"]}


def test_every_kpi_of_the_period_in_total_and_per_day(client, make_key, world):
    # given the world, when an analyst reads the KPIs of the last 30 days (the default)
    kpis, answer = _kpis(client, make_key("analyst"))
    one, two = world.day_one.isoformat(), world.day_two.isoformat()

    # then there is a group for every day, and each KPI says what it means
    assert len(answer["groups"]) == 30 and answer["group_by"] == "day"
    assert all(kpi["definition"] and kpi["unit"] for kpi in kpis.values())
    # orders by status, per day; E (40 days ago) is not in the period
    orders = kpis["orders"]
    assert orders["total"]["count"] == 4
    assert orders["total"]["parts"] == {"completed": 1, "delivered": 1, "on_hold": 1,
                                        "backordered": 1}
    assert _by(orders) == {one: 2, two: 2}
    # cycle times: shipped after 24 h and 12 h; delivered after 48 h and 96 h
    shipment, delivery = kpis["cycle_to_shipment"]["total"], kpis["cycle_to_delivery"]["total"]
    assert (shipment["p50"], shipment["p90"], shipment["count"]) == (12, 24, 2)
    assert (delivery["p50"], delivery["p90"], delivery["count"]) == (48, 96, 2)
    # fill rate: A shipped its 3 units from the first allocation, B 2 of 4
    fill = kpis["fill_rate"]["total"]
    assert (fill["numerator"], fill["denominator"]) == (5, 7)
    assert fill["value"] == pytest.approx(5 / 7)
    # on time: A yes, B no; perfect: A only
    assert kpis["on_time_delivery"]["total"]["value"] == 0.5
    perfect = kpis["perfect_order"]["total"]
    assert perfect["value"] == 0.5
    assert perfect["parts"] == {"on_time": 0.5, "complete": 1.0, "undamaged": 0.5,
                                "without_exception": 0.5, "product_form": 0.125}
    # backorders: D's 2 units, waiting one to three days
    backorders = kpis["backorders"]["total"]
    assert (backorders["value"], backorders["count"]) == (2, 1)
    assert backorders["parts"]["1_to_3d"] == 2
    assert _by(kpis["backorders"]) == {two: 2}
    # returns: 1 unit of 7 shipped, and why
    returns = kpis["return_rate"]
    assert returns["total"]["value"] == pytest.approx(1 / 7)
    assert returns["rows"] == [{"reason": "Damaged in transit", "returns": 1}]
    # exceptions: B's (released) and C's (open, one to three days old); E's is not counted
    exceptions = kpis["exceptions"]
    assert exceptions["total"]["count"] == 2 and exceptions["total"]["parts"] == {"open": 1}
    assert exceptions["rows"] == [
        {"queue": "fraud", "raised": 1, "open": 1, "under_1d": 0, "1_to_3d": 1,
         "3_to_7d": 0, "over_7d": 0},
        {"queue": "stock", "raised": 1, "open": 0, "under_1d": 0, "1_to_3d": 0,
         "3_to_7d": 0, "over_7d": 0}]
    # carriers: CORREIOS carried two late packages, JADLOG one on time
    assert kpis["carrier_scorecard"]["rows"] == [
        {"carrier": "CORREIOS", "packages": 2, "delivered": 2, "on_time_share": 0.0,
         "average_cost": 25.0, "average_transit_days": 2.25},
        {"carrier": "JADLOG", "packages": 1, "delivered": 1, "on_time_share": 1.0,
         "average_cost": 10.0, "average_transit_days": 1.0}]
    assert kpis["carrier_scorecard"]["total"]["value"] == pytest.approx(1 / 3)


def test_the_same_kpis_per_rule_version_show_what_a_publish_did(client, make_key, world):
    # when ops reads the KPIs per version of the sourcing rules
    kpis, answer = _kpis(client, make_key("ops"), group_by="rule_version", stage="sourcing")

    # then each version that last decided an order is a group, labelled with its publish
    labels = {group["key"]: group["label"] for group in answer["groups"]}
    assert list(labels) == ["1", "2", "none"]
    assert labels["2"].startswith("sourcing v2 (published 20") and labels["2"].endswith("by ana)")
    assert labels["1"].startswith("sourcing v1 (retired; published 20")
    assert _by(kpis["orders"]) == {"1": 1, "2": 2, "none": 1}
    fill = {row["group"]: (row["numerator"], row["denominator"])
            for row in kpis["fill_rate"]["by_group"]}
    assert fill == {"1": (3, 3), "2": (2, 4)}
    assert _by(kpis["perfect_order"]) == {"1": 1.0, "2": 0.0}


def test_kpis_per_channel_and_for_one_channel(client, make_key, world):
    analyst = make_key("analyst")
    kpis, _ = _kpis(client, analyst, group_by="channel")
    assert _by(kpis["orders"]) == {"marketplace": 2, "web": 2}
    assert _by(kpis["exceptions"]) == {"marketplace": 1, "web": 1}

    kpis, answer = _kpis(client, analyst, channel="marketplace")
    assert answer["channels"] == ["marketplace"]
    assert kpis["orders"]["total"]["count"] == 2
    assert kpis["cycle_to_shipment"]["total"]["count"] == 0


def test_a_date_range_and_hours(client, make_key, world):
    analyst = make_key("analyst")
    # the second day only, by hour: C at 09:00 and D at 15:00
    day = world.day_two.isoformat()
    kpis, answer = _kpis(client, analyst, **{"from": day, "to": day, "group_by": "hour"})
    assert len(answer["groups"]) == 24
    assert _by(kpis["orders"]) == {f"{day}T09": 1, f"{day}T15": 1}
    # forty days back: E alone, delivered late after 300 h
    old = (world.day_one - timedelta(days=37)).isoformat()
    kpis, _ = _kpis(client, analyst, **{"from": old, "to": old})
    assert kpis["orders"]["total"]["count"] == 1
    assert kpis["cycle_to_delivery"]["total"]["p50"] == 300
    assert kpis["on_time_delivery"]["total"]["value"] == 0.0


def test_an_order_taken_through_the_api_counts(client, admin, make_key, catalog):
    # given an order captured and shipped through the API
    placed = client.post("/orders", json=order_body(customer_id="C-BEN"), headers=admin).json
    [group] = client.get(f"/orders/{placed['id']}/fulfilment", headers=admin).json["items"]
    wms_event(client, admin, group["id"], "packed", "k-1", package_ref="BOX-1", weight_kg=2,
              lines=[{"sku": "LAMP-1", "quantity": 2}, {"sku": "MUG-2", "quantity": 1}])
    assert wms_event(client, admin, group["id"], "shipped", "k-2",
                     package_ref="BOX-1").status_code == 200

    # when the KPIs are read, then it is there, shipped from its first allocation
    kpis, _ = _kpis(client, make_key("analyst"))
    assert kpis["orders"]["total"]["parts"] == {"shipped": 1}
    assert kpis["cycle_to_shipment"]["total"]["count"] == 1
    assert kpis["fill_rate"]["total"]["value"] == 1.0
    assert kpis["carrier_scorecard"]["rows"][0]["packages"] == 1


def test_who_may_read_kpis_and_what_is_refused(client, make_key, catalog):
    assert client.get("/kpis").status_code == 401
    assert client.get("/kpis", headers=make_key("channel", channel="web")).status_code == 403
    analyst = make_key("analyst")
    for query, field in (({"group_by": "week"}, "group_by"),
                         ({"from": "2026-02-01", "to": "2026-01-01"}, "to"),
                         ({"from": "2025-01-01", "to": "2026-06-01"}, "to"),
                         ({"from": "2026-01-01", "to": "2026-03-01", "group_by": "hour"},
                          "group_by"),
                         ({"stage": "nope"}, "stage"),
                         ({"unknown": "1"}, "unknown")):
        response = client.get("/kpis", query_string=query, headers=analyst)
        assert response.status_code == 422, (query, response.json)
        assert response.content_type == "application/problem+json"
        assert field in [error["field"] for error in response.json["errors"]], response.json


def test_the_same_query_within_a_minute_is_answered_from_the_last_computation(
        make_app, make_key):
    # given an app that keeps KPIs a minute (the default) and one that does not
    for seconds, fresh in ((60, False), (0, True)):
        app = make_app(KPI_CACHE_SECONDS=seconds)
        client = app.test_client()
        analyst = make_key("analyst")
        first = client.get("/kpis", headers=analyst).json
        second = client.get("/kpis", headers=analyst).json
        # then the second answer is the first one again, or a new computation
        assert (second["computed_at"] != first["computed_at"]) is fresh
