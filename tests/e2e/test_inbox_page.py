"""The inbox page reads its query string as `GET /holds` does: the same holds, in the same
order; a filter the API refuses is refused on the page too; empty form fields never reach
the URL; and a bulk action that meets a refusal shows it on that order's row."""

from __future__ import annotations

import re

import pytest

from engine.orders.locking import find_and_lock_order
from engine.status import OrderStatus
from tests.support.holds import held_order


@pytest.fixture
def app(make_app):
    return make_app(HOLD_SLA_HOURS="default=24,fraud=2")


def listed(html):
    return [int(hold) for hold in re.findall(r'data-hold="(\d+)"', html)]


def test_the_page_shows_what_the_api_answers_for_the_same_query_string(
        client, admin, make_key, catalog, services, console):
    ops_key, olga = make_key("ops"), console("ops")
    held_order(client, admin, services, "manual", 30)
    held_order(client, admin, services, "fraud", 3, rule="velocity")
    held_order(client, admin, services, "fraud", 1, rule="velocity", channel="marketplace")
    held_order(client, admin, services, "fraud", 0.5, rule="risky")

    for query in ("", "queue=fraud", "queue=fraud&overdue=false", "rule=none",
                  "channel=marketplace&channel=web&sort=newest", "older_than_hours=2",
                  "assignee=none&limit=2"):
        page = olga.get(f"/console/inbox?{query}")
        api = client.get(f"/holds?{query}", headers=ops_key).json
        assert page.status_code == 200, query
        assert listed(page.get_data(as_text=True)) == [item["id"] for item in api["items"]]


def test_a_filter_the_api_refuses_is_refused_on_the_page_and_empty_fields_are_dropped(
        client, admin, catalog, services, console):
    olga = console("ops")
    held_order(client, admin, services, "fraud", 3, rule="velocity")

    refused = olga.get("/console/inbox?overdue=maybe&colour=red")
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert "This filter is not one the API takes" in text and "colour" in text

    tidied = olga.get("/console/inbox?queue=fraud&rule=&assignee=&channel=&overdue=")
    assert (tidied.status_code, tidied.headers["Location"]) == (303, "/console/inbox?queue=fraud")


def test_a_bulk_cancel_shows_each_orders_result_and_an_order_it_could_not_cancel(
        client, admin, catalog, services, console):
    olga = console("ops")
    first, _ = held_order(client, admin, services, "fraud", 3, rule="velocity")
    closed, _ = held_order(client, admin, services, "fraud", 2, rule="velocity")
    with services.uow() as uow:  # closed under the hold's feet, as a racing command would
        find_and_lock_order(uow, closed).status = OrderStatus.SHIPPED
        uow.commit()
    form = {"filter.queue": "fraud", "action": "cancel", "reason": "fraud confirmed"}

    preview = olga.post("/console/inbox/bulk", form)
    assert preview.status_code == 200
    assert "Cancel the orders of these 2" in preview.get_data(as_text=True)

    done = olga.post("/console/inbox/bulk", {**form, "confirm": "yes", "expected": "2"})
    text = done.get_data(as_text=True)
    assert done.status_code == 200
    assert "1 order done" in text and "1 failed" in text
    row = re.search(rf'<tr data-order="{closed}">(.*?)</tr>', text, re.S).group(1)
    assert "invalid_transition" in row
    assert client.get(f"/orders/{first}", headers=admin).json["status"] == "cancelled"

    stale = olga.post("/console/inbox/bulk", {**form, "confirm": "yes", "expected": "2"})
    assert stale.status_code == 409  # one holds now, not the two previewed: nothing done
    assert "preview again" in stale.get_data(as_text=True)
