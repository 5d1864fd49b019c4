"""A stored decision trace in plain words: what each rule saw, and why each option won or lost.

The trace is what `rules.evaluation` recorded (each rule tried, each condition with the fact
it saw) and, for sourcing and carrier selection, every candidate location or carrier option
with its own rules and the reason it won or lost. With the rule set that decided (the
version's document), the conditions the evaluator did not need to look at, and the rules it
never reached, are shown too, marked "not checked".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from engine.decisions.recording import full_trace
from engine.record import OrderDecision
from rules.stages import STAGES

STAGE_LABELS = {"validation": "Validation", "sourcing": "Sourcing",
                "carrier": "Carrier selection", "exceptions": "Exception handling"}

# What each operator says, in the words a person would use: "<fact> <phrase> <expected>".
OPERATOR_PHRASES = {
    "equal_to": "is", "not_equal_to": "is not", "equal_to_case_insensitive": "is (any case)",
    "contains": "contains", "does_not_contain": "does not contain",
    "starts_with": "starts with", "ends_with": "ends with",
    "matches_regex": "matches the pattern", "does_not_match_regex": "does not match the pattern",
    "non_empty": "is not empty", "is_in": "is one of", "is_not_in": "is none of",
    "greater_than": "is more than", "greater_than_or_equal_to": "is at least",
    "less_than": "is less than", "less_than_or_equal_to": "is at most",
    "between": "is between", "is_true": "is yes", "is_false": "is no",
    "before": "is before", "after": "is after",
    "older_than_hours": "is more hours ago than", "within_last_hours": "is within the last hours:",
    "contains_all": "contains all of", "is_contained_by": "is only among",
    "shares_at_least_one_element_with": "includes any of",
    "shares_exactly_one_element_with": "includes exactly one of",
    "shares_no_elements_with": "includes none of",
    "equal_to_variable": "is the same as", "not_equal_to_variable": "is not the same as",
    "greater_than_variable": "is more than", "greater_than_or_equal_to_variable": "is at least",
    "less_than_variable": "is less than", "less_than_or_equal_to_variable": "is at most",
    "before_variable": "is before", "after_variable": "is after",
}
NO_ARGUMENT = frozenset({"is_true", "is_false", "non_empty"})
RESULT_WORDS = {"won": "chosen", "lost": "not chosen"}


@dataclass(frozen=True)
class Condition:
    """One condition of a rule: the fact seen, the test, and whether it held."""

    path: str  # the JSON pointer into the rule set
    variable: str
    label: str  # the variable's label
    operator: str
    test: str  # the operator in words with the expected value: "is more than 1000"
    fact: str  # the fact as seen ("" when the condition was not checked)
    held: bool | None  # None: not checked (an earlier condition already decided the rule)
    within: str | None = None  # "all" or "any": what the condition is part of

    @property
    def verdict(self) -> str:
        return {True: "held", False: "did not hold", None: "not checked"}[self.held]

    @property
    def sentence(self) -> str:
        if self.held is None:
            return f"{self.label} {self.test}: not checked"
        return f"{self.label} was {self.fact}; the rule asks that it {self.test}: {self.verdict}"


@dataclass(frozen=True)
class Rule:
    """One rule as it was tried (or not reached) in one evaluation."""

    name: str
    fired: bool
    tried: bool  # False: a first-match stage stopped before it, or the rule is disabled
    conditions: list[Condition]
    actions: list[str]  # what the rule asked for, in words (only when it fired)
    description: str = ""
    combine: str | None = None  # "all" / "any" at the top of the rule, None for one condition

    @property
    def verdict(self) -> str:
        if not self.tried:
            return "not tried"
        return "fired" if self.fired else "did not fire"


@dataclass(frozen=True)
class Detail:
    label: str
    value: str


@dataclass(frozen=True)
class Candidate:
    """A location or carrier option the stage weighed, and why it won or lost."""

    name: str
    result: str  # "won" / "lost" (as the engine recorded it)
    why: str
    details: list[Detail]
    rules: list[Rule]
    facts: list[Detail] = field(default_factory=list)

    @property
    def won(self) -> bool:
        return self.result == "won"

    @property
    def result_words(self) -> str:
        return RESULT_WORDS.get(self.result, self.result.replace("_", " "))

    @property
    def fired(self) -> list[str]:
        return [rule.name for rule in self.rules if rule.fired]


@dataclass(frozen=True)
class Section:
    """A set of candidates decided together (sourcing: the order; carrier: one shipment)."""

    title: str
    summary: str
    notes: list[str]
    candidates: list[Candidate]


@dataclass(frozen=True)
class Explanation:
    """One decision in plain words."""

    stage: str
    stage_label: str
    version: int | None
    outcome: str
    headline: str
    rules: list[Rule]  # validation, exceptions: the order's own rules
    sections: list[Section]  # sourcing, carrier: the candidates weighed
    facts: list[Detail]
    error: str | None = None
    decision_id: int | None = None
    evaluated_at: datetime | None = None

    @property
    def fired(self) -> list[str]:
        """Return the names of the rules that fired, candidates' rules included, once each."""
        names = [rule.name for rule in self.rules if rule.fired]
        for section in self.sections:
            for candidate in section.candidates:
                names += candidate.fired
        return list(dict.fromkeys(names))

    @property
    def outcome_words(self) -> str:
        return self.outcome.replace("_", " ")


def explain_decision(recorded: OrderDecision) -> Explanation:
    """Explain a stored decision, with the rule set of the version that decided it."""
    version = recorded.version
    return explain(recorded.stage, full_trace(recorded), outcome=recorded.outcome,
                   decision=recorded.decision, facts=recorded.facts,
                   version=version.version if version is not None else None,
                   document=version.document if version is not None else None,
                   decision_id=recorded.id, evaluated_at=recorded.evaluated_at)


def explain_dry_run(result: Mapping[str, Any],
                    document: Mapping[str, Any] | None = None) -> Explanation:
    """Explain what `trials.dry_run` returned (the rule set tried, as `document`)."""
    return explain(str(result["stage"]), result.get("trace") or [],
                   outcome=str(result.get("outcome", "")), decision=result.get("decision"),
                   facts=result.get("facts"), version=result.get("version"),
                   document=document)


def explain(stage: str, trace: Sequence[Any], *, outcome: str,
            decision: Mapping[str, Any] | None = None, facts: Mapping[str, Any] | None = None,
            version: int | None = None, document: Mapping[str, Any] | None = None,
            decision_id: int | None = None, evaluated_at: datetime | None = None) -> Explanation:
    """Turn a decision trace (stored, or from a dry run) into plain words.

    `document` is the rule set that decided: with it, conditions and rules the evaluation
    did not reach are shown as not checked.
    """
    words = _Words(stage, document)
    decision = decision or {}
    facts = facts or {}
    rules: list[Rule] = []
    sections: list[Section] = []
    if stage == "sourcing":
        sections = [_sourcing_section(words, trace, decision, facts)]
    elif stage == "carrier":
        shipments = facts.get("shipments") or []
        sections = [_carrier_section(words, choice, shipments[index]
                                     if index < len(shipments) else {})
                    for index, choice in enumerate(trace) if isinstance(choice, Mapping)]
    else:
        rules = words.rules(trace, facts)
    error = decision.get("error") if isinstance(decision.get("error"), str) else None
    explanation = Explanation(
        stage=stage, stage_label=STAGE_LABELS.get(stage, stage.capitalize()), version=version,
        outcome=outcome, headline="", rules=rules, sections=sections,
        facts=[Detail(words.label(name), show(value)) for name, value in facts.items()
               if name != "shipments"],
        error=error, decision_id=decision_id, evaluated_at=evaluated_at)
    return _with_headline(explanation, decision)


def show(value: Any) -> str:
    """Return a fact or an expected value as a person reads it."""
    if value is None:
        return "nothing"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, list | tuple):
        return ", ".join(show(item) for item in value) if value else "none"
    if isinstance(value, Mapping):
        return ", ".join(f"{key}: {show(item)}" for key, item in value.items())
    if isinstance(value, str):
        moment = _moment(value)
        if moment is not None:
            return moment
        return value if value else '""'
    return str(value)


def _moment(text: str) -> str | None:
    if len(text) < 16 or text[4:5] != "-" or "T" not in text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    offset = moment.utcoffset()
    zone = "UTC" if offset is not None and not offset.total_seconds() else moment.strftime("%z")
    return moment.strftime("%Y-%m-%d %H:%M ") + zone


@cache  # a stage's variables and actions are code: they change only with a new release
def _schema(stage: str) -> dict[str, Any]:
    found = STAGES.get(stage)
    return found.schema() if found is not None else {"variables": [], "actions": []}


class _Words:
    """The labels and the rule set of one stage, for naming what a trace names."""

    def __init__(self, stage: str, document: Mapping[str, Any] | None) -> None:
        schema = _schema(stage)
        self.labels: dict[str, str] = {v["name"]: v["label"] for v in schema["variables"]}
        self.actions: dict[str, dict[str, Any]] = {a["name"]: a for a in schema["actions"]}
        rules = document.get("rules") if isinstance(document, Mapping) else None
        self.document_rules: list[Mapping[str, Any]] = [
            rule for rule in (rules or []) if isinstance(rule, Mapping)]

    def label(self, name: str) -> str:
        return self.labels.get(name, name.replace("_", " ").capitalize())

    def rules(self, trace: Sequence[Any], facts: Mapping[str, Any]) -> list[Rule]:
        """Explain one evaluation's rules: those tried, then those never reached."""
        tried = [entry for entry in trace if isinstance(entry, Mapping) and "rule" in entry]
        by_name = {rule.get("name"): index for index, rule in enumerate(self.document_rules)}
        explained = []
        for entry in tried:
            index = by_name.get(entry["rule"])
            written = self.document_rules[index] if index is not None else None
            explained.append(self._rule(entry, index, written, facts))
        seen = {entry["rule"] for entry in tried}
        if self.document_rules and tried:
            explained += [self._untried(index, rule)
                          for index, rule in enumerate(self.document_rules)
                          if rule.get("name") not in seen]
        return explained

    def _rule(self, entry: Mapping[str, Any], index: int | None,
              written: Mapping[str, Any] | None, facts: Mapping[str, Any]) -> Rule:
        conditions = [self._condition(seen, facts, _parent(seen.get("path", "")))
                      for seen in entry.get("conditions") or [] if isinstance(seen, Mapping)]
        checked = {condition.path for condition in conditions}
        tree = written.get("conditions") if written else None
        if isinstance(tree, Mapping) and index is not None:
            written_leaves = self._leaves(tree, f"/rules/{index}/conditions", None)
            conditions += [leaf for leaf in written_leaves if leaf.path not in checked]
            order = {leaf.path: position for position, leaf in enumerate(written_leaves)}
            conditions.sort(key=lambda leaf: order.get(leaf.path, len(order)))
        return Rule(name=str(entry["rule"]), fired=bool(entry.get("fired")), tried=True,
                    conditions=conditions,
                    actions=[self.action(action) for action in entry.get("actions") or []
                             if isinstance(action, Mapping)],
                    description=str(written.get("description") or "") if written else "",
                    combine=_combine(tree) if isinstance(tree, Mapping) else
                    _combine_from_paths(conditions))

    def _untried(self, index: int, written: Mapping[str, Any]) -> Rule:
        tree = written.get("conditions")
        leaves = (self._leaves(tree, f"/rules/{index}/conditions", None)
                  if isinstance(tree, Mapping) else [])
        return Rule(name=str(written.get("name", "")), fired=False, tried=False,
                    conditions=leaves, actions=[],
                    description=str(written.get("description") or ""),
                    combine=_combine(tree) if isinstance(tree, Mapping) else None)

    def _condition(self, seen: Mapping[str, Any], facts: Mapping[str, Any],
                   within: str | None) -> Condition:
        variable = str(seen.get("variable", ""))
        operator = str(seen.get("operator", ""))
        held = seen.get("held")
        return Condition(path=str(seen.get("path", "")), variable=variable,
                         label=self.label(variable), operator=operator,
                         test=self.test(operator, seen.get("value"), facts),
                         fact=show(seen.get("fact")),
                         held=bool(held) if held is not None else None, within=within)

    def _leaves(self, node: Mapping[str, Any], path: str,
                within: str | None) -> list[Condition]:
        for kind in ("all", "any"):
            members = node.get(kind)
            if isinstance(members, list):
                found: list[Condition] = []
                for index, member in enumerate(members):
                    if isinstance(member, Mapping):
                        found += self._leaves(member, f"{path}/{kind}/{index}", kind)
                return found
        variable = str(node.get("name", ""))
        operator = str(node.get("operator", ""))
        return [Condition(path=path, variable=variable, label=self.label(variable),
                          operator=operator, test=self.test(operator, node.get("value"), {}),
                          fact="", held=None, within=within)]

    def test(self, operator: str, value: Any, facts: Mapping[str, Any]) -> str:
        """Return the operator and its expected value in words."""
        phrase = OPERATOR_PHRASES.get(operator, operator.replace("_", " "))
        if operator in NO_ARGUMENT:
            return phrase
        if operator.endswith("_variable") and isinstance(value, str):
            other = self.label(value)
            return (f"{phrase} {other} ({show(facts[value])})" if value in facts
                    else f"{phrase} {other}")
        if operator == "between" and isinstance(value, list | tuple) and len(value) == 2:
            return f"{phrase} {show(value[0])} and {show(value[1])}"
        if operator in ("older_than_hours", "within_last_hours"):
            hours = show(value)
            return (f"was more than {hours} hours before the decision"
                    if operator == "older_than_hours"
                    else f"was within {hours} hours before the decision")
        return f"{phrase} {show(value)}"

    def action(self, action: Mapping[str, Any]) -> str:
        """Return what an action asked for, in words: "Hold the order (queue: fraud)"."""
        name = str(action.get("name", ""))
        known = self.actions.get(name)
        label = known["label"] if known else name.replace("_", " ").capitalize()
        params = action.get("params") or {}
        param_labels: dict[str, str] = {str(p["name"]): str(p["label"])
                                        for p in (known or {}).get("params", [])}
        if not isinstance(params, Mapping) or not params:
            return str(label)
        said = "; ".join(f"{param_labels.get(str(key), str(key)).lower()}: {show(value)}"
                         for key, value in params.items())
        return f"{label} ({said})"


def _parent(path: str) -> str | None:
    parts = path.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 and parts[-2] in ("all", "any") else None


def _combine(tree: Mapping[str, Any]) -> str | None:
    return next((kind for kind in ("all", "any") if kind in tree), None)


def _combine_from_paths(conditions: Sequence[Condition]) -> str | None:
    for condition in conditions:
        tail = condition.path.split("/conditions", 1)[-1]
        for kind in ("all", "any"):
            if tail.startswith(f"/{kind}/"):
                return kind
    return None


def _sourcing_section(words: _Words, trace: Sequence[Any], decision: Mapping[str, Any],
                      facts: Mapping[str, Any]) -> Section:
    candidates = []
    for entry in trace:
        if not isinstance(entry, Mapping):
            continue
        details = []
        if entry.get("rank") is not None:
            details.append(Detail("Rank", str(entry["rank"])))
        if entry.get("score") is not None:
            details.append(Detail("Score from the rules", str(entry["score"])))
        excluded = entry.get("excluded_because") or []
        if excluded:
            details.append(Detail("Excluded because", show(excluded)))
        candidate_facts = entry.get("facts") or {}
        known = {**facts, **candidate_facts}
        candidates.append(Candidate(
            name=str(entry.get("location", "")), result=str(entry.get("result", "lost")),
            why=str(entry.get("why") or ""), details=details,
            rules=words.rules(entry.get("rules") or [], known),
            facts=[Detail(words.label(name), show(value))
                   for name, value in candidate_facts.items()]))
    notes = []
    policy = decision.get("policy")
    if isinstance(policy, Mapping):
        notes.append("Policy: " + ", ".join(
            f"{key.replace('_', ' ')} {show(value)}" for key, value in policy.items()))
    remainder = decision.get("remainder") or []
    if remainder:
        where = decision.get("remainder_to") or "backorder"
        notes.append(f"Not sourced ({show(where)}): " + ", ".join(
            f"{line.get('quantity')} × {line.get('sku')}" for line in remainder
            if isinstance(line, Mapping)))
    groups = [group for group in decision.get("groups") or [] if isinstance(group, Mapping)]
    summary = ("Ships from " + ", ".join(str(group.get("location")) for group in groups)
               if groups else "No location was chosen")
    return Section(title="Locations considered", summary=summary, notes=notes,
                   candidates=candidates)


def _carrier_section(words: _Words, choice: Mapping[str, Any],
                     shipment: Mapping[str, Any]) -> Section:
    chosen = choice.get("chosen")
    if isinstance(chosen, Mapping):
        summary = (f"{chosen.get('carrier')}/{chosen.get('service')} for {chosen.get('cost')}, "
                   f"promised {show(chosen.get('promised_at'))}")
    else:
        summary = "No carrier service could be chosen"
    notes = []
    policy = choice.get("policy")
    if isinstance(policy, Mapping):
        notes.append("Policy: " + ", ".join(
            f"{key.replace('_', ' ')} {show(value).replace('_', ' ')}"
            for key, value in policy.items() if value is not None))
    if choice.get("error"):
        notes.append(f"A rule failed: {choice['error']}")
    for unrated in choice.get("not_rated") or []:
        notes.append(f"Not rated: {unrated}")
    candidates = []
    for option in choice.get("options") or []:
        if not isinstance(option, Mapping):
            continue
        details = [Detail("Cost", str(option.get("cost", ""))),
                   Detail("Transit days", str(option.get("transit_days", ""))),
                   Detail("Promised", show(option.get("promised_at")))]
        if option.get("penalty") not in (None, "0"):
            details.append(Detail("Penalty from the rules", str(option["penalty"])))
        excluded = option.get("excluded_because") or []
        if excluded:
            details.append(Detail("Excluded because", show(excluded)))
        candidates.append(Candidate(
            name=str(option.get("option", "")), result=str(option.get("result", "lost")),
            why=str(option.get("why") or ""), details=details,
            rules=words.rules(option.get("rules") or [], shipment)))
    group = choice.get("group")
    title = f"Shipment of group {group} from {choice.get('location')}" if group else \
        f"Shipment from {choice.get('location')}"
    return Section(title=title, summary=summary, notes=notes, candidates=candidates)


def _with_headline(explanation: Explanation, decision: Mapping[str, Any]) -> Explanation:
    fired = explanation.fired
    if explanation.error:
        headline = "A rule failed while deciding: nothing was decided"
    elif explanation.sections:
        headline = "; ".join(section.summary for section in explanation.sections)
    elif fired:
        headline = f"{len(fired)} rule(s) fired: {', '.join(fired)}"
    else:
        headline = "No rule fired"
    if explanation.stage == "validation" and not explanation.error:
        reasons = [item.get("message") or item.get("reason") or item.get("code")
                   for key in ("rejections", "holds") for item in decision.get(key) or []
                   if isinstance(item, Mapping)]
        if reasons:
            headline += ". " + "; ".join(str(reason) for reason in reasons if reason)
    if explanation.stage == "exceptions" and decision.get("not_applied"):
        headline += f". {decision['not_applied']}"
    return Explanation(**{**explanation.__dict__, "headline": headline})
