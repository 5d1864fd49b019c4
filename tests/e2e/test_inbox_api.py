"""The exception inbox through the API: holds with their order's context and SLA clock,
overdue first; filters that the console's page takes as its own query string; counts by
queue and reason; assignment and comments on the order's timeline; and bulk release or
cancel over everything a filter matches, previewed first, with a result per order."""

from __future__ import annotations

import pytest

from engine import people
from engine.actors import system_actor
from engine.orders import holds
from engine.orders.locking import find_and_lock_order
from engine.record import Hold
from engine.status import OrderStatus
from tests.support.holds import held_order

SLA = "default=24,fraud=2"


@pytest.fixture
def app(make_app):
    return make_app(HOLD_SLA_HOURS=SLA)


@pytest.fixture
def colleagues(services):
    """Ana and Otto of ops, and Alan, an analyst."""
    with services.uow() as uow:
        for name, roles in (("ana", ["ops"]), ("otto", ["ops", "analyst"]),
                            ("alan", ["analyst"])):
            people.create_user(uow, system_actor("test"), name, roles)
        uow.commit()


def ids(response):
    assert response.status_code == 200, response.json
    return [item["id"] for item in response.json["items"]]


def test_the_inbox_lists_overdue_holds_first_then_the_oldest_with_their_orders_context(
        client, admin, make_key, catalog, services):
    ops = make_key("ops")
    # given a manual hold 30 h old (SLA 24 h: overdue), a fraud hold 3 h old (SLA 2 h:
    # overdue), a fraud hold 1 h old and a manual one 5 h old (both in time)
    _, old_manual = held_order(client, admin, services, "manual", 30)
    _, late_fraud = held_order(client, admin, services, "fraud", 3, rule="risky-customer",
                               customer_id="C-BEN")
    _, fresh_fraud = held_order(client, admin, services, "fraud", 1, rule="risky-customer")
    order_id, recent_manual = held_order(client, admin, services, "manual", 5)

    # when ops open the inbox
    answer = client.get("/holds", headers=ops)

    # then the overdue ones come first, oldest first, then the others, oldest first
    assert ids(answer) == [old_manual, late_fraud, recent_manual, fresh_fraud]
    first, second, third, _ = answer.json["items"]
    assert (first["overdue"], first["sla_hours"], second["overdue"], second["sla_hours"],
            third["overdue"]) == (True, 24.0, True, 2.0, False)
    assert 29.9 < first["age_hours"] < 30.1
    # and each row has what ops need to decide without opening the order
    assert second["order"]["customer_id"] == "C-BEN"
    assert second["customer_name"] == "Ben Souza"
    assert third["order"] == {
        "id": order_id, "status": "on_hold", "held_from": "released", "channel": "web",
        "channel_order_ref": third["order"]["channel_order_ref"], "customer_id": "C-ANA",
        "currency": "BRL", "total": "219.30"}
    assert third["blocks"] == "shipping"
    assert (third["assignee"], third["comments"]) == (None, 0)


def test_filters_narrow_the_inbox_by_queue_rule_channel_assignee_overdue_and_age(
        client, admin, make_key, catalog, services, colleagues):
    ops = make_key("ops")
    _, manual = held_order(client, admin, services, "manual", 30)
    _, fraud = held_order(client, admin, services, "fraud", 3, rule="risky-customer")
    _, market = held_order(client, admin, services, "fraud", 1, rule="velocity",
                           channel="marketplace")
    assert client.post(f"/holds/{fraud}/assign", json={"assignee": "ana"},
                       headers=ops).status_code == 200

    def query(string):
        return ids(client.get(f"/holds?{string}", headers=ops))

    assert query("queue=fraud") == [fraud, market]
    assert query("queue=fraud&queue=manual") == [manual, fraud, market]
    assert query("rule=velocity") == [market]
    assert query("rule=none") == [manual]
    assert query("channel=marketplace") == [market]
    assert query("assignee=ana") == [fraud]
    assert query("assignee=none") == [manual, market]
    assert query("assignee=me") == []  # an API key is nobody's colleague
    assert query("overdue=true") == [manual, fraud]
    assert query("overdue=false") == [market]
    assert query("older_than_hours=2") == [manual, fraud]
    assert query("sort=newest") == [market, fraud, manual]
    assert query("queue=fraud&overdue=true&assignee=ana") == [fraud]
    # and paging walks the same order
    first = client.get("/holds?limit=2", headers=ops).json
    assert [item["id"] for item in first["items"]] == [manual, fraud]
    rest = client.get(f"/holds?limit=2&cursor={first['next_cursor']}", headers=ops).json
    assert ([item["id"] for item in rest["items"]], rest["next_cursor"]) == ([market], None)
    # an unknown filter is refused, not ignored
    refused = client.get("/holds?assigned=ana", headers=ops)
    assert refused.status_code == 422 and refused.json["code"] == "validation_failed"


def test_the_summary_counts_open_holds_by_queue_and_reason_with_the_overdue_ones(
        client, admin, make_key, catalog, services):
    analyst = make_key("analyst")
    held_order(client, admin, services, "manual", 30, reason="customer called")
    held_order(client, admin, services, "fraud", 3, rule="risky-customer")
    held_order(client, admin, services, "fraud", 1, rule="risky-customer")
    held_order(client, admin, services, "fraud", 1, rule="velocity", channel="marketplace")

    summary = client.get("/holds/summary", headers=analyst).json

    assert (summary["holds"], summary["overdue"], summary["unassigned"]) == (4, 2, 4)
    assert [(row["queue"], row["holds"], row["overdue"], row["sla_hours"])
            for row in summary["by_queue"]] == [("fraud", 3, 1, 2.0), ("manual", 1, 1, 24.0)]
    assert [(row["queue"], row["rule"], row["holds"], row["overdue"])
            for row in summary["by_reason"]] == [
        ("fraud", "risky-customer", 2, 1), ("fraud", "velocity", 1, 0), ("manual", None, 1, 1)]
    assert summary["by_reason"][2]["reason"] == "customer called"
    # the summary takes the inbox's filters too
    web = client.get("/holds/summary?channel=web&overdue=true", headers=analyst).json
    assert (web["holds"], [row["queue"] for row in web["by_queue"]]) == (2, ["fraud", "manual"])


def test_assigning_and_commenting_are_on_the_hold_and_on_the_orders_timeline(
        client, admin, make_key, catalog, services, colleagues):
    ops = make_key("ops", name="ops-desk")
    order_id, hold_id = held_order(client, admin, services, "fraud", 1, rule="risky-customer")

    # when ops give the hold to Ana, and comment on it
    assigned = client.post(f"/holds/{hold_id}/assign", json={"assignee": "ana"}, headers=ops)
    comment = client.post(f"/holds/{hold_id}/comments",
                          json={"body": "Called the customer <b>twice</b>"}, headers=ops)

    # then the hold is Ana's, with the comment, and the timeline says who did what
    assert assigned.status_code == 200, assigned.json
    assert (assigned.json["assignee"], assigned.json["assigned_by"]) == ("ana", "api_key:ops-desk")
    assert comment.status_code == 201
    detail = client.get(f"/holds/{hold_id}", headers=ops).json
    assert (detail["hold"]["assignee"], detail["hold"]["comments"]) == ("ana", 1)
    assert [(c["body"], c["created_by"]) for c in detail["comments"]] == [
        ("Called the customer <b>twice</b>", "api_key:ops-desk")]
    events = client.get(f"/orders/{order_id}/events", headers=ops).json["items"]
    mine = [(e["type"], e["actor"]["id"], e["data"].get("assignee") or e["data"].get("body"))
            for e in events if e["type"].startswith("hold.")]
    assert mine == [("hold.assigned", "ops-desk", "ana"),
                    ("hold.commented", "ops-desk", "Called the customer <b>twice</b>")]

    # and the order's own channel reads neither: they are staff notes
    web = make_key("channel", channel="web")
    seen = [e["type"] for e in client.get(f"/orders/{order_id}/events", headers=web).json["items"]]
    assert "order.held" in seen and not [kind for kind in seen if kind.startswith("hold.")]
    assert client.get(f"/holds/{hold_id}", headers=web).json["comments"] == []

    # when it is given back to nobody, the inbox shows it unassigned
    client.post(f"/holds/{hold_id}/assign", json={"assignee": None}, headers=ops)
    assert ids(client.get("/holds?assignee=none", headers=ops)) == [hold_id]


def test_who_may_assign_comment_and_act_in_bulk(client, admin, make_key, catalog, services,
                                                colleagues):
    analyst, ops = make_key("analyst"), make_key("ops")
    order_id, hold_id = held_order(client, admin, services)

    # an analyst may read and comment, not assign nor release
    assert client.get(f"/holds/{hold_id}", headers=analyst).status_code == 200
    assert client.post(f"/holds/{hold_id}/comments", json={"body": "rule too strict?"},
                       headers=analyst).status_code == 201
    for path, body in ((f"/holds/{hold_id}/assign", {"assignee": "ana"}),
                       (f"/holds/{hold_id}/release", {}),
                       ("/holds/bulk", {"action": "release", "reason": "ok"})):
        refused = client.post(path, json=body, headers=analyst)
        assert (refused.status_code, refused.json["code"]) == (403, "forbidden")
    # "me" needs a person; a hold goes to an active person of ops, nobody else
    me = client.post(f"/holds/{hold_id}/assign", json={"assignee": "me"}, headers=ops)
    assert (me.status_code, me.json["errors"][0]["field"]) == (422, "assignee")
    for nobody in ("alan", "zed"):
        refused = client.post(f"/holds/{hold_id}/assign", json={"assignee": nobody},
                              headers=ops)
        assert (refused.status_code, refused.json["errors"][0]["field"]) == (422, "assignee")
    with services.uow() as uow:
        people.disable_user(uow, system_actor("test"), "otto")
        uow.commit()
    gone = client.post(f"/holds/{hold_id}/assign", json={"assignee": "otto"}, headers=ops)
    assert gone.status_code == 422
    client.post(f"/holds/{hold_id}/release", json={}, headers=ops)
    late = client.post(f"/holds/{hold_id}/assign", json={"assignee": "ana"}, headers=ops)
    assert (late.status_code, late.json["code"]) == (409, "hold_resolved")
    # another channel's hold does not exist for a channel key
    market = make_key("channel", channel="marketplace")
    assert client.get(f"/holds/{hold_id}", headers=market).status_code == 404
    assert client.get("/holds/summary?state=all", headers=market).json["holds"] == 0


def test_bulk_release_previews_everything_the_filter_matches_then_reports_each_order(
        client, admin, make_key, catalog, services):
    ops = make_key("ops")
    # given three fraud holds (one order held twice) and a manual one
    first_order, first = held_order(client, admin, services, "fraud", 3, rule="velocity")
    twice_order, second = held_order(client, admin, services, "fraud", 2, rule="velocity")
    with services.uow() as uow:
        [other] = holds.put_on_hold(uow, system_actor("test-rules"),
                                    find_and_lock_order(uow, twice_order), "validation",
                                    [holds.HoldReason("address", "check the address")])
        uow.commit()
        other_id = other.id
    _, manual = held_order(client, admin, services, "manual", 1)
    body = {"action": "release", "filter": {"queue": ["fraud"]}, "reason": "false alarm",
            "preview": True}

    # when ops preview a release of the fraud queue: nothing changes, all matches are named
    preview = client.post("/holds/bulk", json=body, headers=ops)
    assert preview.status_code == 200, preview.json
    assert (preview.json["matched"], preview.json["too_many"]) == (2, False)
    assert [hold["id"] for hold in preview.json["holds"]] == [first, second]
    assert preview.json["results"] == []
    assert ids(client.get("/holds?queue=fraud", headers=ops)) == [first, second]

    # when a new fraud hold arrived since, releasing what was previewed is refused
    _, newcomer = held_order(client, admin, services, "fraud", 0, rule="velocity")
    stale = client.post("/holds/bulk", json={**body, "preview": False, "expected": 2},
                        headers=ops)
    assert (stale.status_code, stale.json["errors"][0]["field"]) == (422, "expected")

    # when they release all that match now
    done = client.post("/holds/bulk", json={**body, "preview": False, "expected": 3},
                       headers=ops)

    # then each order has its result: moved on, or still held by its other hold
    assert done.status_code == 200, done.json
    assert (done.json["succeeded"], done.json["failed"]) == (3, 0)
    results = {row["order_id"]: row for row in done.json["results"]}
    assert (results[first_order]["outcome"], results[first_order]["status"]) == (
        "released", "released")
    assert (results[twice_order]["outcome"], results[twice_order]["hold_ids"]) == (
        "still_held", [second])
    assert ids(client.get("/holds", headers=ops)) == [manual, other_id]
    assert client.get(f"/holds/{newcomer}", headers=ops).json["hold"]["resolution"] == (
        "released")


def test_bulk_cancel_cancels_each_held_order_and_reports_a_refusal_on_its_own_row(
        client, admin, make_key, catalog, services):
    ops = make_key("ops")
    cancelled_order, _ = held_order(client, admin, services, "fraud", 3, rule="velocity")
    refused_order, refused_hold = held_order(client, admin, services, "fraud", 2,
                                             rule="velocity")
    # the second order is closed under the hold's feet (as a racing command would)
    with services.uow() as uow:
        find_and_lock_order(uow, refused_order).status = OrderStatus.SHIPPED
        uow.commit()

    done = client.post("/holds/bulk", headers=ops, json={
        "action": "cancel", "filter": {"queue": ["fraud"]}, "reason": "fraud confirmed"})

    assert done.status_code == 200, done.json
    assert [(row["order_id"], row["outcome"], row["code"]) for row in done.json["results"]] == [
        (cancelled_order, "cancelled", None), (refused_order, "error", "invalid_transition")]
    assert client.get(f"/orders/{cancelled_order}", headers=ops).json["status"] == "cancelled"
    with services.uow() as uow:
        assert uow.session.get(Hold, refused_hold).resolved_at is None
