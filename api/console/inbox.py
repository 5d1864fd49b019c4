"""The exception inbox: the holds ops work, with the filters of `GET /holds`.

The page's query string is the REST query: `/console/inbox?queue=fraud&overdue=true`
shows what `GET /holds?queue=fraud&overdue=true` answers, read by the same schema and the
same engine call. Every action calls the use case its REST route calls.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import flash, redirect, render_template, request, url_for
from marshmallow import ValidationError, fields
from werkzeug.datastructures import MultiDict

from api.console.auth import console_blueprint, current_user, page
from api.holds import HoldFilterSchema, HoldQuerySchema, hold_query, sla
from api.schemas import encode_cursor
from api.wiring import services
from engine import pipeline
from engine.errors import InputValidationError, OmsError
from engine.fulfilment import cancelling
from engine.orders import holds, reading

blp = console_blueprint("console_inbox", __name__)
_QUERY = HoldQuerySchema()
_FILTER = HoldFilterSchema()  # what a bulk action takes: the filters, no paging or state


def _query_args(args: MultiDict[str, str]) -> dict[str, Any]:
    """The query string as the REST schema reads it (a repeated filter: a list)."""
    return {name: (args.getlist(name) if name in _LISTS else args.get(name))
            for name in args}


_LISTS = {name for name, field in _QUERY.fields.items() if isinstance(field, fields.List)}


@blp.route("/inbox")
@page("ops", "analyst")
def inbox() -> Any:
    """Open holds, overdue first, filtered exactly as `GET /holds` with this query."""
    sent = list(request.args.items(multi=True))
    given = MultiDict([(name, value) for name, value in sent if value.strip()])
    if len(list(given.items(multi=True))) != len(sent):
        # a filter form sends its empty fields: leave them out, so the URL is the API query
        return redirect(_inbox_url(given), code=303)
    try:
        loaded = _QUERY.load(_query_args(given))
    except ValidationError as error:
        return render_template("console/inbox/index.html", problems=error.messages,
                               filters=given, items=[], summary=None, matching=0,
                               next_url=None,
                               api_query=urlencode(list(given.items(multi=True)))), 422
    query = hold_query(dict(loaded))
    actor = current_user()
    with services().uow() as uow:  # rendered inside: the rows read their orders
        found, next_offset = holds.list_holds(uow, actor, query, sla())
        everything = holds.summarize_holds(uow, actor, holds.HoldQuery(), sla())
        matching = holds.count_holds(uow, actor, query, sla())
        next_url = None
        if next_offset is not None:
            following = MultiDict(given)
            following.setlist("cursor", [_cursor(next_offset)])
            next_url = _inbox_url(following)
        return render_template(
            "console/inbox/index.html", problems=None, filters=given, items=found,
            summary=everything, rules=_rules(everything), matching=matching,
            next_url=next_url,
            api_query=urlencode(list(given.items(multi=True))))


@blp.route("/inbox/holds/<int(min=1, max=9223372036854775807):hold_id>")
@page("ops", "analyst")
def hold(hold_id: int) -> Any:
    """One hold: its order's context, its clock, its comments, the order's timeline and
    what ops may do about it."""
    actor = current_user()
    with services().uow() as uow:
        item, comments = holds.get_hold(uow, actor, hold_id, sla())
        events = reading.order_events(uow, actor, item.order.id)
        return render_template("console/inbox/hold.html", item=item, comments=comments,
                               events=list(reversed(events)), back=_back(),
                               people=holds.assignable_people(uow))


@blp.route("/inbox/holds/<int(min=1, max=9223372036854775807):hold_id>/assign",
           methods=["POST"])
@page("ops")
def assign(hold_id: int) -> Any:
    """Give the hold to me, to a colleague, or to nobody (as `POST /holds/{id}/assign`)."""
    # "Assign to me" and "Unassign" name their own value; "Assign" takes the typed name
    chosen = request.form.get("assignee") if "assignee" in request.form else request.form.get(
        "user")
    assignee = (chosen or "").strip() or None
    done = _act(lambda uow: holds.assign_hold(uow, current_user(), hold_id, assignee))
    if done is not None:
        flash(f"Hold {hold_id} is now {done.assignee or 'nobody'}'s"
              if done.assignee != current_user().id else f"Hold {hold_id} is yours",
              "success")
    if request.form.get("from") == "inbox" and _back():
        return redirect(_back() or "", code=303)
    return _to_hold(hold_id)


@blp.route("/inbox/holds/<int(min=1, max=9223372036854775807):hold_id>/comments",
           methods=["POST"])
@page("ops", "analyst")
def comment(hold_id: int) -> Any:
    """Comment on the hold (as `POST /holds/{id}/comments`)."""
    body = request.form.get("body", "")
    if not body.strip():
        flash("Write something to comment", "error")
    elif _act(lambda uow: holds.comment_on_hold(uow, current_user(), hold_id, body.strip()[:2000])):
        flash("Comment added", "success")
    return _to_hold(hold_id)


@blp.route("/inbox/holds/<int(min=1, max=9223372036854775807):hold_id>/release",
           methods=["POST"])
@page("ops")
def release(hold_id: int) -> Any:
    """Release the hold (as `POST /holds/{id}/release`); the order moves on once no other
    hold keeps it."""
    note = request.form.get("note", "").strip()[:500] or None
    if _act(lambda uow: pipeline.release_one_hold(uow, current_user(), hold_id, note)):
        flash(f"Hold {hold_id} released", "success")
    return _to_hold(hold_id)


@blp.route("/inbox/holds/<int(min=1, max=9223372036854775807):hold_id>/cancel",
           methods=["POST"])
@page("ops")
def cancel(hold_id: int) -> Any:
    """Cancel the held order, what has not shipped (as `POST /orders/{id}/cancel`)."""
    reason = request.form.get("reason", "").strip()[:500]
    if not reason:
        flash("Say why the order is cancelled", "error")
        return _to_hold(hold_id)
    actor = current_user()

    def cancel_held_order(uow: Any) -> int:
        _, order = holds.visible_hold(uow, actor, hold_id)
        cancelling.cancel_order(uow, actor, order.id, reason)
        return order.id

    order_id = _act(cancel_held_order)
    if order_id is not None:
        flash(f"Order {order_id} cancelled", "success")
    return _to_hold(hold_id)


@blp.route("/inbox/bulk", methods=["POST"])
@page("ops")
def bulk() -> Any:
    """Release or cancel every open hold the inbox's filter matches: first a preview of
    how many and which, then (confirmed) one result per order (as `POST /holds/bulk`)."""
    form = request.form
    action, reason = form.get("action", ""), form.get("reason", "").strip()[:500]
    filters = MultiDict([(name.removeprefix("filter."), value)
                         for name, value in form.items(multi=True)
                         if name.startswith("filter.") and value.strip()])
    problems = {}
    if action not in pipeline.BULK_ACTIONS:
        problems["action"] = "choose release or cancel"
    if not reason:
        problems["reason"] = "say why: it is the note of each release or cancel"
    try:
        loaded = _FILTER.load(_query_args(filters))
    except ValidationError as error:
        problems["filter"] = "; ".join(f"{name}: {messages}"
                                       for name, messages in error.messages.items())
        loaded = {}
    context = {"action": action, "reason": reason, "filters": filters,
               "api_query": urlencode(list(filters.items(multi=True))), "problems": problems}
    if problems:
        return render_template("console/inbox/bulk.html", **context), 422
    query = hold_query(dict(loaded))
    actor = current_user()
    if form.get("confirm") != "yes":
        with services().uow() as uow:
            matched, found = pipeline.preview_holds_in_bulk(uow, actor, query, sla())
            return render_template("console/inbox/bulk.html", **context, preview=found,
                                   matched=matched,
                                   too_many=matched > pipeline.MAX_BULK_HOLDS)
    expected = int(form["expected"]) if form.get("expected", "").isdigit() else None
    with services().uow() as uow:
        try:
            outcomes = pipeline.resolve_holds_in_bulk(uow, actor, action, query, sla(),
                                                      reason, expected)
        except InputValidationError as error:
            context["problems"] = {problem.field: problem.message
                                   for problem in error.problems}
            return render_template("console/inbox/bulk.html", **context), 409
        uow.commit()
    return render_template("console/inbox/bulk.html", **context, results=outcomes)


def _rules(summary: holds.HoldSummary) -> list[tuple[str, int]]:
    """The reason filter's choices: each rule (NO_RULE: a person's hold) and its holds."""
    counts: dict[str, int] = {}
    for count in summary.by_reason:
        rule = count.rule or holds.NO_RULE
        counts[rule] = counts.get(rule, 0) + count.holds
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _act(work: Any) -> Any:
    """Run one command in its own transaction; a refusal becomes a message, not a page."""
    with services().uow() as uow:
        try:
            done = work(uow)
        except OmsError as error:
            flash(error.detail, "error")
            return None
        uow.commit()
    return done


def _to_hold(hold_id: int) -> Any:
    return redirect(url_for(".hold", hold_id=hold_id, back=_back()), code=303)


def _inbox_url(args: MultiDict[str, str]) -> str:
    query = urlencode(list(args.items(multi=True)))
    return url_for(".inbox") + (f"?{query}" if query else "")


def _cursor(offset: int) -> str:
    return encode_cursor({"offset": offset})


def _back() -> str | None:
    """Where the inbox was (a filtered list), to return to after acting from it."""
    target = request.values.get("back", "")
    return target if target.startswith(url_for(".inbox")) and "//" not in target else None


@blp.app_template_filter("inbox_hours")
def inbox_hours(hours: float) -> str:
    """Say a duration in hours the way people do: 45 min, 3 h 10 min, 2 d 4 h."""
    minutes = int(round(abs(hours) * 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 24 * 60:
        return f"{minutes // 60} h {minutes % 60:02d} min" if minutes % 60 else f"{minutes // 60} h"
    days, rest = divmod(minutes // 60, 24)
    return f"{days} d {rest} h" if rest else f"{days} d"
