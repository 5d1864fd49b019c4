"""Rule set versions: drafts, one published version per stage, rollback, diff, audit."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from difflib import SequenceMatcher
from types import MappingProxyType
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from engine.actors import Actor
from engine.errors import (
    ApprovalError,
    FieldProblem,
    NotFoundError,
    RuleSetInvalidError,
    RuleSetStateError,
    RuleSetTestsFailedError,
)
from engine.ports import UnitOfWork
from engine.record import RuleSetEvent, RuleSetVersion, utcnow
from engine.reference_cache import RULE_SETS, cached
from engine.status import RuleSetState
from rules.checking import check_rule_set, review_rule_set
from rules.defaults import default_rule_set
from rules.evaluation import CompiledRuleSet, compile_rule_set, evaluate
from rules.stage import Stage
from rules.stages import STAGES
from rules.testing import run_tests

DRAFT, PUBLISHED, RETIRED = RuleSetState.DRAFT, RuleSetState.PUBLISHED, RuleSetState.RETIRED
DISCARDED = RuleSetState.DISCARDED


@dataclass(frozen=True)
class RuleChange:
    rule: str
    change: str  # "added", "removed" or "changed"
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True)
class FieldChange:
    path: str  # JSON pointer into the newer version (into the older one for "removed")
    change: str  # "added", "removed", "changed" or "moved"
    before: Any
    after: Any
    rule: str | None  # the name of the rule it belongs to, if any


def stage_named(name: str) -> Stage[Any]:
    """Return the stage with this name.

    Raises:
        NotFoundError: there is no such stage.
    """
    if name not in STAGES:
        raise NotFoundError("rule stage", name)
    return STAGES[name]


def check_document(stage: str, document: Any) -> None:
    """Refuse a rule set that does not pass its checks, listing every problem.

    Raises:
        RuleSetInvalidError: each problem's field is `document` plus the JSON pointer of the
            bad node (document/rules/2/conditions/all/0/name).
    """
    problems = check_rule_set(stage_named(stage), document)
    if problems:
        raise RuleSetInvalidError([FieldProblem(f"document{p.path}", p.message)
                                   for p in problems],
                                  f"the {stage} rule set has {len(problems)} problem(s)")


def warnings_of(stage: str, document: Any) -> list[FieldProblem]:
    """Return what an analyst should look at in a rule set that passes its checks (rules of
    a first-match stage that overlap), each with its field as `check_document` names it."""
    return [FieldProblem(f"document{p.path}", p.message)
            for p in review_rule_set(stage_named(stage), document)]


def install_defaults(uow: UnitOfWork, actor: Actor) -> list[str]:
    """Publish the shipped rule set of every stage that has none yet; return those stages."""
    installed = []
    for name in STAGES:
        if uow.session.scalar(select(RuleSetVersion.id).where(RuleSetVersion.stage == name)):
            continue
        draft = create_draft(uow, actor, name, default_rule_set(name),
                             "default rule set shipped with the service")
        publish(uow, actor, name, draft.version, "first start")
        installed.append(name)
    return installed


def list_versions(uow: UnitOfWork, stage: str) -> list[RuleSetVersion]:
    """Return every version of a stage, newest first."""
    stage_named(stage)
    return list(uow.session.scalars(
        select(RuleSetVersion).where(RuleSetVersion.stage == stage)
        .order_by(RuleSetVersion.version.desc())))


def get_version(uow: UnitOfWork, stage: str, version: int,
                for_update: bool = False) -> RuleSetVersion:
    """Return one version of a stage.

    Raises:
        NotFoundError: no such version.
    """
    stage_named(stage)
    statement = select(RuleSetVersion).where(RuleSetVersion.stage == stage,
                                             RuleSetVersion.version == version)
    if for_update:  # and reload: another transaction may have changed it meanwhile
        statement = statement.with_for_update().execution_options(populate_existing=True)
    found = uow.session.scalar(statement)
    if found is None:
        raise NotFoundError(f"{stage} rule set version", version)
    return found


def published_version(uow: UnitOfWork, stage: str) -> RuleSetVersion | None:
    """Return the version that decides orders now (None before the first publish)."""
    return uow.session.scalar(select(RuleSetVersion).where(
        RuleSetVersion.stage == stage, RuleSetVersion.state == PUBLISHED))


def deciding_version(uow: UnitOfWork, stage: str) -> RuleSetVersion | None:
    """Return the published version of a stage, from the process's cache of the published
    versions (`reference_cache`: read again after a publish anywhere).

    The cache keeps plain column values, never ORM objects: each transaction gets its own
    instance in its own session (`merge(load=False)`, no SQL), so no object is shared
    between sessions or threads, and callers get a `RuleSetVersion` as before.
    """
    found = cached(uow.session, RULE_SETS, _published_columns).get(stage)
    if found is None:
        return None
    session = uow.session
    present = session.identity_map.get(identity_key(RuleSetVersion, found["id"]))
    if isinstance(present, RuleSetVersion):  # this session's own, maybe changed: use it
        return present
    detached = RuleSetVersion(**found)
    make_transient_to_detached(detached)
    return session.merge(detached, load=False)


def _published_columns(session: Session) -> Mapping[str, Mapping[str, Any]]:
    columns = [attribute.key for attribute in inspect(RuleSetVersion).column_attrs]
    with session.no_autoflush:
        published = session.scalars(select(RuleSetVersion).where(
            RuleSetVersion.state == PUBLISHED)).all()
    return MappingProxyType({
        version.stage: MappingProxyType({key: copy.deepcopy(getattr(version, key))
                                         for key in columns})
        for version in published})


def create_draft(uow: UnitOfWork, actor: Actor, stage: str, document: Any,
                 comment: str) -> RuleSetVersion:
    """Store a checked rule set as the stage's next version, in draft."""
    check_document(stage, document)
    _lock_stage(uow, stage)
    latest = uow.session.scalar(
        select(func.max(RuleSetVersion.version)).where(RuleSetVersion.stage == stage)) or 0
    now = utcnow()
    draft = RuleSetVersion(stage=stage, version=latest + 1, state=DRAFT, document=document,
                           comment=comment, author=actor.label, created_at=now,
                           updated_at=now)
    uow.session.add(draft)
    _audit(uow, actor, draft, "drafted", comment)
    uow.session.flush()
    return draft


def update_draft(uow: UnitOfWork, actor: Actor, stage: str, version: int, document: Any,
                 comment: str, seen_at: datetime | None = None) -> RuleSetVersion:
    """Replace a draft's rules; published and retired versions never change.

    `seen_at`: when the editor loaded the draft (its `updated_at`); a draft changed since
    is refused rather than overwritten.
    """
    check_document(stage, document)
    draft = get_version(uow, stage, version, for_update=True)
    if draft.state != DRAFT:
        raise RuleSetStateError(stage, version, draft.state,
                                "only drafts change: create a new draft from it")
    if seen_at is not None and draft.updated_at.isoformat() != seen_at.isoformat():
        raise RuleSetStateError(stage, version, draft.state,
                                "it was changed by someone else after you opened it: "
                                "reload it, then make your change again")
    draft.document, draft.comment, draft.updated_at = document, comment, utcnow()
    draft.approved_by = draft.approved_at = None  # what was approved is not this
    _audit(uow, actor, draft, "updated", comment)
    return draft


def publish(uow: UnitOfWork, actor: Actor, stage: str, version: int, comment: str,
            require_approval: bool = False) -> RuleSetVersion:
    """Make a draft the published version, atomically retiring the one before.

    Raises:
        ApprovalError: the stage needs a second analyst's approval and the draft has none.
    """
    return _make_published(uow, actor, stage, version, DRAFT, "published", comment,
                           require_approval)


def approve(uow: UnitOfWork, actor: Actor, stage: str, version: int,
            comment: str) -> RuleSetVersion:
    """Approve a draft for publishing: by an analyst who did not write or change it."""
    draft = get_version(uow, stage, version, for_update=True)
    if draft.state != DRAFT:
        raise RuleSetStateError(stage, version, draft.state, "only drafts are approved")
    editors = {event.actor for event in uow.session.scalars(select(RuleSetEvent).where(
        RuleSetEvent.stage == stage, RuleSetEvent.version == version,
        RuleSetEvent.action.in_(("drafted", "updated"))))}
    if actor.label in editors:
        raise ApprovalError("a version is approved by an analyst who did not write it")
    draft.approved_by, draft.approved_at = actor.label, utcnow()
    _audit(uow, actor, draft, "approved", comment)
    return draft


def rollback(uow: UnitOfWork, actor: Actor, stage: str, version: int,
             comment: str) -> RuleSetVersion:
    """Publish again a version that was published before."""
    return _make_published(uow, actor, stage, version, RETIRED, "rolled_back", comment)


def diff(uow: UnitOfWork, stage: str, old: int,
         new: int) -> tuple[list[RuleChange], list[FieldChange]]:
    """Return the rules added, removed or changed from one version to another, by name,
    and every changed field (field_changes)."""
    old_document = get_version(uow, stage, old).document
    new_document = get_version(uow, stage, new).document
    return rule_changes(old_document, new_document), field_changes(old_document, new_document)


def rule_changes(old_document: Any, new_document: Any) -> list[RuleChange]:
    """Return the rules added, removed or changed between two documents, by name."""
    before = {r["name"]: r for r in old_document["rules"]}
    after = {r["name"]: r for r in new_document["rules"]}
    changes = [RuleChange(name, "removed", before[name], None)
               for name in before if name not in after]
    for part in ("description", "tests"):  # not rules, but part of what is published
        if old_document.get(part) != new_document.get(part):
            changes.append(RuleChange(f"({part})", "changed", {part: old_document.get(part)},
                                      {part: new_document.get(part)}))
    for name, rule in after.items():
        if name not in before:
            changes.append(RuleChange(name, "added", None, rule))
        elif before[name] != rule:
            changes.append(RuleChange(name, "changed", before[name], rule))
    return changes


def field_changes(old: Any, new: Any) -> list[FieldChange]:
    """Return every field that differs between two rule sets, down to the changed value
    (`/rules/5/conditions/all/1/value: 2000 -> 1500`).

    Rules are matched by name, so a rule moved up or down is "moved" (with its old and
    new position), not removed and added (the rules that only shifted with it are not);
    its fields are compared wherever it now is.
    """
    changes: list[FieldChange] = []
    for key in sorted((set(old) | set(new)) - {"rules"}):
        _compare(old.get(key), new.get(key), f"/{key}", None, changes)
    old_rules = {rule["name"]: (index, rule) for index, rule in enumerate(old["rules"])}
    new_rules = {rule["name"] for rule in new["rules"]}
    stayed = _kept_in_order([r["name"] for r in old["rules"] if r["name"] in new_rules],
                            [r["name"] for r in new["rules"] if r["name"] in old_rules])
    for name, (index, rule) in old_rules.items():
        if name not in new_rules:
            changes.append(FieldChange(f"/rules/{index}", "removed", rule, None, name))
    for index, rule in enumerate(new["rules"]):
        name = rule["name"]
        if name not in old_rules:
            changes.append(FieldChange(f"/rules/{index}", "added", None, rule, name))
            continue
        was, before = old_rules[name]
        if name not in stayed:
            changes.append(FieldChange(f"/rules/{index}", "moved", was, index, name))
        _compare(before, rule, f"/rules/{index}", name, changes)
    return changes


def _kept_in_order(old: list[str], new: list[str]) -> set[str]:
    """Return the most rules that keep their order between two lists (the others moved)."""
    matcher = SequenceMatcher(a=old, b=new, autojunk=False)
    return {name for block in matcher.get_matching_blocks()
            for name in old[block.a:block.a + block.size]}


def _compare(before: Any, after: Any, path: str, rule: str | None,
             changes: list[FieldChange]) -> None:
    if before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            where = f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"
            if key not in before:
                changes.append(FieldChange(where, "added", None, after[key], rule))
            elif key not in after:
                changes.append(FieldChange(where, "removed", before[key], None, rule))
            else:
                _compare(before[key], after[key], where, rule, changes)
        return
    if (isinstance(before, list) and isinstance(after, list)
            and all(isinstance(item, dict) for item in before + after)):
        for index in range(max(len(before), len(after))):
            where = f"{path}/{index}"
            if index >= len(before):
                changes.append(FieldChange(where, "added", None, after[index], rule))
            elif index >= len(after):
                changes.append(FieldChange(where, "removed", before[index], None, rule))
            else:
                _compare(before[index], after[index], where, rule, changes)
        return
    changes.append(FieldChange(path, "changed", before, after, rule))


def discard(uow: UnitOfWork, actor: Actor, stage: str, version: int,
            comment: str) -> RuleSetVersion:
    """Give up a draft: it stays in the history, is never published, and is not edited."""
    draft = get_version(uow, stage, version, for_update=True)
    if draft.state != DRAFT:
        raise RuleSetStateError(stage, version, draft.state, "only drafts are discarded")
    draft.state, draft.updated_at = DISCARDED, utcnow()
    _audit(uow, actor, draft, "discarded", comment)
    return draft


def history(uow: UnitOfWork, stage: str) -> list[RuleSetEvent]:
    """Return the stage's audit trail, oldest first."""
    stage_named(stage)
    return list(uow.session.scalars(select(RuleSetEvent).where(RuleSetEvent.stage == stage)
                                    .order_by(RuleSetEvent.id)))


def test_failures(version: RuleSetVersion) -> list[FieldProblem]:
    """Run the version's own test cases; return each failure (none: all pass)."""
    return document_test_failures(version.stage, version.document, compiled(version))


def document_test_failures(stage_name: str, document: Any,
                           rule_set: CompiledRuleSet | None = None) -> list[FieldProblem]:
    """Run the test cases a rule set carries (checked first: an editor's unsaved set).

    Raises:
        RuleSetInvalidError: the rule set does not pass its checks.
    """
    stage = stage_named(stage_name)
    if rule_set is None:
        check_document(stage_name, document)
        rule_set = compile_rule_set(stage, document)
    checked = rule_set
    failures = run_tests(stage, lambda facts: evaluate(checked, facts, stage.moment_of(facts))
                         .decision, document.get("tests", []))  # failures caught there
    return [FieldProblem(f"document{path}", message) for path, message in failures]


_COMPILED: dict[tuple[int, str], CompiledRuleSet] = {}


def compiled(version: RuleSetVersion) -> CompiledRuleSet:
    """Return the version compiled, once per process (published versions never change)."""
    key = (version.id, version.updated_at.isoformat())
    found = _COMPILED.get(key)
    if found is None:
        if len(_COMPILED) > 256:
            _COMPILED.clear()
        found = _COMPILED[key] = compile_rule_set(stage_named(version.stage), version.document)
    return found


def _make_published(uow: UnitOfWork, actor: Actor, stage: str, version: int, required: str,
                    action: str, comment: str,
                    require_approval: bool = False) -> RuleSetVersion:
    _lock_stage(uow, stage)
    target = get_version(uow, stage, version, for_update=True)  # as of the lock, fresh
    if target.state != required:
        wanted = ("only a draft can be published" if required == DRAFT
                  else "only a version published before can be rolled back to")
        raise RuleSetStateError(stage, version, target.state, wanted)
    if require_approval and target.approved_by is None:
        raise ApprovalError(f"{stage} needs a second analyst to approve version {version} "
                            "before it is published")
    check_document(stage, target.document)  # the checks may have grown since it was saved
    failures = test_failures(target)
    if failures:
        raise RuleSetTestsFailedError(failures, f"{len(failures)} test case(s) of {stage} "
                                                f"version {version} fail; it stays {target.state}")
    current = published_version(uow, stage)
    if current is not None:
        current.state = RETIRED
        uow.session.flush()  # one published version at a time, also inside this transaction
    now = utcnow()
    target.state, target.published_at, target.published_by = PUBLISHED, now, actor.label
    _audit(uow, actor, target, action, comment)
    uow.session.flush()
    return target


def _lock_stage(uow: UnitOfWork, stage: str) -> None:
    """Serialise changes to one stage's versions (PostgreSQL; SQLite locks the database)."""
    uow.session.execute(select(RuleSetVersion.id).where(RuleSetVersion.stage == stage)
                        .with_for_update())


def _audit(uow: UnitOfWork, actor: Actor, version: RuleSetVersion, action: str,
           comment: str | None) -> None:
    uow.session.add(RuleSetEvent(stage=version.stage, version=version.version, action=action,
                                 actor=actor.label, comment=comment, occurred_at=utcnow()))
