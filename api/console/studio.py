"""The rule studio: analysts edit, check, try, compare and publish rule sets in the browser.

Each view loads, calls the same engine use case as the REST route under /rules, and renders.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError as SchemaError
from werkzeug.wrappers import Response

from api.console.auth import console_blueprint, current_user, page
from api.orders import draft_from
from api.problems import flatten_messages
from api.schemas import OrderInSchema
from api.transactions import request_uow
from api.wiring import services
from engine.decisions import explaining, rulesets, trials
from engine.errors import FieldProblem, NotFoundError, OmsError
from engine.orders.capture import OrderDraft
from engine.record import RuleSetVersion
from engine.status import RuleSetState
from rules.stages import STAGES

blp = console_blueprint("console_studio", __name__)

VERSION = "/rules/<string:stage>/versions/<int(min=1, max=2147483647):version>"
MAX_DOCUMENT = 400_000  # characters of JSON an editor may send
CHANGED_SHOWN = 100  # orders a simulation lists, each a link to its page


@blp.route("/rules")
@page("analyst")
def index() -> str:
    """List the stages with the version each runs and the drafts waiting."""
    uow = request_uow()
    rows = []
    for name, stage in STAGES.items():
        versions = rulesets.list_versions(uow, name)
        published = next((v for v in versions if v.state == RuleSetState.PUBLISHED), None)
        rows.append({"name": name, "description": stage.description,
                     "first_match": stage.stop_on_first_trigger, "published": published,
                     "drafts": [v for v in versions if v.state == RuleSetState.DRAFT]})
    return render_template("console/studio/stages.html", stages=rows)


@blp.route("/rules/<string:stage>")
@page("analyst")
def stage_versions(stage: str) -> str:
    """Show a stage's versions with author, date, comment and approval, and its history."""
    uow = request_uow()
    versions = rulesets.list_versions(uow, stage)
    return render_template("console/studio/stage.html", stage=stage,
                           description=rulesets.stage_named(stage).description,
                           versions=versions, history=rulesets.history(uow, stage)[-30:][::-1],
                           needs_approval=services().settings.requires_approval(stage))


@blp.route("/rules/<string:stage>/drafts", methods=["POST"])
@page("analyst")
def new_draft(stage: str) -> Response:
    """Start a draft from a version (the published one by default)."""
    uow = request_uow()
    source = _version_from_form(uow, stage, "from_version")
    draft = rulesets.create_draft(uow, current_user(), stage, source.document,
                                  f"draft from version {source.version}")
    uow.commit()
    return redirect(url_for(".version_page", stage=stage, version=draft.version), 303)


@blp.route(VERSION, methods=["GET", "POST"])
@page("analyst")
def version_page(stage: str, version: int) -> str | tuple[str, int] | Response:
    """The builder: edit a draft (checks and test cases run on every save), or read a version."""
    uow = request_uow()
    found = rulesets.get_version(uow, stage, version)
    if request.method == "GET":
        return _editor(found, found.document, found.comment)
    text = request.form.get("document", "")
    comment = request.form.get("comment", "").strip()
    document, problems = _parsed(text)
    if not comment:
        problems.append(FieldProblem("comment", "say what this change is for"))
    if not problems:
        try:
            rulesets.update_draft(uow, current_user(), stage, version, document, comment,
                                  _seen_at(request.form.get("seen_at", "")))
            uow.commit()
        except OmsError as error:
            uow.rollback()
            problems = _problems_of(error)
    if problems:
        return _editor(found, document if document is not None else text, comment,
                       problems=problems), 422
    flash(f"Saved version {version}: its checks pass.", "success")
    return redirect(url_for(".version_page", stage=stage, version=version), 303)


@blp.route(VERSION + "/publish", methods=["POST"])
@page("analyst")
def publish(stage: str, version: int) -> str | tuple[str, int] | Response:
    """Publish a draft: its checks and tests must pass, and its approval where required."""
    return _change_state(stage, version, "publish")


@blp.route(VERSION + "/approve", methods=["POST"])
@page("analyst")
def approve(stage: str, version: int) -> str | tuple[str, int] | Response:
    """Approve a draft for publishing (by an analyst who did not write it)."""
    return _change_state(stage, version, "approve")


@blp.route(VERSION + "/discard", methods=["POST"])
@page("analyst")
def discard(stage: str, version: int) -> str | tuple[str, int] | Response:
    """Discard a draft: it stays in the history and is never published."""
    return _change_state(stage, version, "discard")


@blp.route(VERSION + "/rollback", methods=["POST"])
@page("analyst")
def rollback(stage: str, version: int) -> str | tuple[str, int] | Response:
    """Publish again a version that was published before."""
    return _change_state(stage, version, "rollback")


def _change_state(stage: str, version: int, action: str) -> str | tuple[str, int] | Response:
    """Carry out a change of state with its required comment; a refusal is shown on the
    form it came from."""
    uow = request_uow()
    comment = request.form.get("comment", "").strip()
    problems: list[FieldProblem] = []
    if not comment:
        problems.append(FieldProblem("comment", f"a comment is required to {action}"))
    else:
        try:
            if action == "publish":
                rulesets.publish(uow, current_user(), stage, version, comment,
                                 services().settings.requires_approval(stage))
            elif action == "approve":
                rulesets.approve(uow, current_user(), stage, version, comment)
            elif action == "discard":
                rulesets.discard(uow, current_user(), stage, version, comment)
            else:
                rulesets.rollback(uow, current_user(), stage, version, comment)
            uow.commit()
        except OmsError as error:
            uow.rollback()
            problems = _problems_of(error)
    if problems:
        found = rulesets.get_version(uow, stage, version)
        return _editor(found, found.document, found.comment,
                       action_problems={action: problems}), 422
    flash(PAST[action].format(version=version, stage=stage), "success")
    return redirect(url_for(".version_page", stage=stage, version=version), 303)


PAST = {"publish": "Published version {version}: it decides {stage} from the next order on.",
        "approve": "Approved version {version} for publishing.",
        "discard": "Discarded version {version}.",
        "rollback": "Version {version} decides {stage} again."}


@blp.route(VERSION + "/tests", methods=["POST"])
@page("analyst")
def run_tests(stage: str, version: int) -> str | tuple[str, int]:
    """Check what the editor holds and run its test cases, storing nothing."""
    document, problems = _parsed(request.form.get("document", ""))
    failures: list[FieldProblem] = []
    if not problems:
        try:
            failures = rulesets.document_test_failures(stage, document)
        except OmsError as error:
            problems = _problems_of(error)
    tests = len(document.get("tests", [])) if isinstance(document, dict) else 0
    return render_template("console/studio/_tests.html", problems=problems,
                           failures=failures, tests=tests,
                           pointers=_pointers(problems, failures, [])), 422 if problems else 200


@blp.route(VERSION + "/dry-run", methods=["POST"])
@page("analyst")
def dry_run(stage: str, version: int) -> str | tuple[str, int]:
    """Decide one order by what the editor holds, and change nothing."""
    uow = request_uow()
    document, problems = _parsed(request.form.get("document", ""))
    order_id = _positive(request.form.get("order_id", ""))
    typed = request.form.get("order", "").strip()
    draft = None
    if typed and order_id is None:
        draft = _typed_order(typed, problems)
    elif order_id is None:
        problems.append(FieldProblem("order_id", "give the number of an order, or type one"))
    if problems:
        return render_template("console/studio/_dry_run.html", problems=problems), 422
    try:
        result = trials.dry_run(uow, current_user(), stage, document=document,
                                order_id=order_id, draft=draft)
    except OmsError as error:
        return render_template("console/studio/_dry_run.html",
                               problems=_problems_of(error)), 422
    finally:
        uow.rollback()  # a dry run writes nothing, whatever happened
    explanation = explaining.explain_dry_run(result, document)
    return render_template("console/studio/_dry_run.html", result=result, order_id=order_id,
                           stage=stage, explanation=explanation)


@blp.route(VERSION + "/simulate", methods=["POST"])
@page("analyst")
def simulate(stage: str, version: int) -> str | tuple[str, int]:
    """Compare what the editor holds with the published rules over recent orders."""
    uow = request_uow()
    document, problems = _parsed(request.form.get("document", ""))
    last = _positive(request.form.get("last", "") or "200")
    if last is None or last > trials.SIMULATION_LIMIT:
        problems.append(FieldProblem("last", f"from 1 to {trials.SIMULATION_LIMIT} orders"))
    window = (_moment(request.form.get("created_from", ""), "created_from", problems),
              _moment(request.form.get("created_to", ""), "created_to", problems))
    if problems:
        return render_template("console/studio/_simulation.html", problems=problems), 422
    try:
        result = trials.simulate(uow, current_user(), stage, document=document,
                                 last=last or 200, window=window, examples=CHANGED_SHOWN)
    except OmsError as error:
        return render_template("console/studio/_simulation.html",
                               problems=_problems_of(error)), 422
    finally:
        uow.rollback()
    return render_template("console/studio/_simulation.html", result=result)


@blp.route("/rules/<string:stage>/diff")
@page("analyst")
def diff(stage: str) -> str:
    """Show every changed field between two versions (default: published -> the newest)."""
    uow = request_uow()
    versions = rulesets.list_versions(uow, stage)
    if not versions:
        abort(404)
    published = next((v for v in versions if v.state == RuleSetState.PUBLISHED), versions[-1])
    old = _positive(request.args.get("from", "")) or published.version
    new = _positive(request.args.get("to", "")) or versions[0].version
    by_number = {version.version: version for version in versions}  # all loaded already
    missing = [number for number in (old, new) if number not in by_number]
    if missing:
        abort(404, f"{stage} rule set version {missing[0]} does not exist")
    before, after = by_number[old], by_number[new]
    changes = rulesets.field_changes(before.document, after.document)
    return render_template("console/studio/diff.html", stage=stage, before=before,
                           after=after, changes=changes, versions=versions)


def _editor(found: RuleSetVersion, document: Any, comment: str,
            problems: list[FieldProblem] | None = None,
            action_problems: dict[str, list[FieldProblem]] | None = None) -> str:
    """Render the builder with the version's checks, warnings and test results."""
    uow = request_uow()
    stage = rulesets.stage_named(found.stage)
    failures: list[FieldProblem] = []
    warnings: list[FieldProblem] = []
    if problems is None:  # what is shown is what is stored: run its tests and reviews
        failures = rulesets.test_failures(found)
        warnings = rulesets.warnings_of(found.stage, found.document)
    published = rulesets.published_version(uow, found.stage)
    decision_keys = {key: "list" if isinstance(value, list) else "text"
                     for key, value in stage.decision().summary().items()}
    return render_template(
        "console/studio/version.html", version=found, stage=found.stage,
        stage_description=stage.description, first_match=stage.stop_on_first_trigger,
        editable=found.state == RuleSetState.DRAFT, document=document, comment=comment,
        schema=stage.schema(), decision_keys=decision_keys, problems=problems or [],
        failures=failures, warnings=warnings, tests=len(found.document.get("tests", [])),
        action_problems=action_problems or {}, published=published,
        needs_approval=services().settings.requires_approval(found.stage),
        was_published=found.published_at is not None,
        pointers=_pointers(problems or [], failures, warnings, document))


def _pointers(problems: list[FieldProblem], failures: list[FieldProblem],
              warnings: list[FieldProblem], document: Any = None) -> list[dict[str, str]]:
    """Return each problem as the builder shows it on its field, and where it is in words."""
    return [{"pointer": _pointer(p.field), "message": p.message, "kind": kind,
             "where": _where(document, _pointer(p.field)) if p.field.startswith("document")
             else p.field}
            for kind, group in (("error", problems), ("test", failures), ("warning", warnings))
            for p in group]


def _where(document: Any, pointer: str) -> str:
    """Name the place a pointer names as a person reads it: rule 6 (its name), field."""
    parts = pointer.strip("/").split("/") if pointer else []
    if len(parts) >= 2 and parts[0] in ("rules", "tests") and parts[1].isdigit():
        index = int(parts[1])
        items = document.get(parts[0]) if isinstance(document, dict) else None
        name = None
        if isinstance(items, list) and index < len(items) and isinstance(items[index], dict):
            name = items[index].get("name")
        kind = "rule" if parts[0] == "rules" else "test case"
        named = f"{kind} {index + 1}" + (f" ({name})" if isinstance(name, str) else "")
        return " › ".join([named, *parts[2:]]) if parts[2:] else named
    return " › ".join(parts) or "the rule set"


def _pointer(field: str) -> str:
    """Return the JSON pointer into the document a problem's field names ("" otherwise)."""
    if field == "document":
        return ""
    return field[len("document"):] if field.startswith("document/") else field


def _typed_order(text: str, problems: list[FieldProblem]) -> OrderDraft | None:
    """Return an order typed in as the API takes it (POST /orders), checked the same way."""
    body, found = _parsed(text)
    if not found:
        try:
            return draft_from(OrderInSchema().load(body))
        except SchemaError as error:
            found = [FieldProblem(f"order/{e['field']}", e["message"])
                     for e in flatten_messages(error.normalized_messages(), "body")]
    problems.extend(FieldProblem("order" + p.field[len("document"):], p.message)
                    if p.field.startswith("document") else p for p in found)
    return None


def _parsed(text: str) -> tuple[Any, list[FieldProblem]]:
    if len(text) > MAX_DOCUMENT:
        return None, [FieldProblem("document", f"at most {MAX_DOCUMENT} characters")]
    try:
        document = json.loads(text)
    except ValueError as error:
        return None, [FieldProblem("document", f"not valid JSON: {error}")]
    return document, []


def _problems_of(error: OmsError) -> list[FieldProblem]:
    found: list[FieldProblem] = list(getattr(error, "problems", None) or [])
    return found or [FieldProblem("", error.detail)]


def _positive(text: str) -> int | None:
    text = text.strip()
    if not text.isdigit() or len(text) > 18:
        return None
    number = int(text)
    return number if number > 0 else None


def _moment(text: str, name: str, problems: list[FieldProblem]) -> datetime | None:
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        problems.append(FieldProblem(name, "a time with its zone, e.g. 2026-11-20T00:00:00+00:00"))
        return None
    return moment


def _seen_at(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _version_from_form(uow: Any, stage: str, field: str) -> RuleSetVersion:
    number = _positive(request.form.get(field, ""))
    if number is None:
        found = rulesets.published_version(uow, stage)
        if found is None:
            raise NotFoundError(f"published {stage} rule set", "")
        return found
    return rulesets.get_version(uow, stage, number)
