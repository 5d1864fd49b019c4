"""Test cases carried by a rule set: facts and the decision expected for them.

A rule set may hold `"tests": [{"name", "facts", "expect"}]`. `facts` overrides the
stage's baseline (a plain order that no default rule touches), so a test names only what
matters to it; `expect` lists what the decision's summary must say (for validation:
`outcome`, and the `holds` and `rejections` codes). A version whose tests fail is never
published.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from rules.stage import Stage

TEST_KEYS = ("name", "facts", "expect")


def check_tests(stage: Stage[Any], tests: Any, path: str = "/tests") -> list[tuple[str, str]]:
    """Return (path, message) for every malformed test case."""
    problems: list[tuple[str, str]] = []
    if not isinstance(tests, list):
        return [(path, "must be a list of test cases")]
    kinds = {v["name"]: v["field_type"] for v in stage.schema()["variables"]}
    names: set[str] = set()
    for index, test in enumerate(tests):
        where = f"{path}/{index}"
        if not isinstance(test, Mapping):
            problems.append((where, "a test case is an object with name, facts and expect"))
            continue
        for key in test:
            if key not in TEST_KEYS:
                problems.append((f"{where}/{key}", "unknown field"))
        name = test.get("name")
        if not isinstance(name, str) or not name:
            problems.append((f"{where}/name", "every test case needs a name"))
        elif name in names:
            problems.append((f"{where}/name", f"the name {name!r} is already used"))
        else:
            names.add(name)
        facts = test.get("facts", {})
        if not isinstance(facts, Mapping):
            problems.append((f"{where}/facts", "must be an object of variable values"))
        else:
            for variable, value in facts.items():
                message = _fact_problem(kinds.get(variable), value)
                if message:
                    problems.append((f"{where}/facts/{variable}", message))
        expect = test.get("expect")
        if not isinstance(expect, Mapping) or not expect:
            problems.append((f"{where}/expect", "must say what the decision is expected to be"))
        else:
            known = stage.decision().summary()
            for key, value in expect.items():
                if key not in known:
                    problems.append((f"{where}/expect/{key}",
                                     f"not part of a decision; use {', '.join(known)}"))
                elif isinstance(known[key], list) and not (
                        isinstance(value, list) and all(isinstance(v, str) for v in value)):
                    problems.append((f"{where}/expect/{key}", "must be a list of texts"))
                elif isinstance(known[key], str) and not isinstance(value, str):
                    problems.append((f"{where}/expect/{key}", "must be text"))
    return problems


def run_tests(stage: Stage[Any], evaluate_facts: Any, tests: list[Mapping[str, Any]],
              path: str = "/tests") -> list[tuple[str, str]]:
    """Run each test case with `evaluate_facts(facts) -> Decision`; return the failures."""
    failures = []
    for index, test in enumerate(tests):
        facts = facts_for(stage, test.get("facts", {}))
        try:
            summary = evaluate_facts(facts).summary()
        except Exception as error:  # a rule that fails on the case fails the test
            failures.append((f"{path}/{index}", f"test {test['name']!r}: a rule failed: {error}"))
            continue
        for key, expected in test["expect"].items():
            actual = summary[key]
            if _normalised(actual) != _normalised(expected):
                failures.append((f"{path}/{index}/expect/{key}",
                                 f"test {test['name']!r}: expected {expected!r}, "
                                 f"the rules decided {actual!r}"))
    return failures


def facts_for(stage: Stage[Any], overrides: Mapping[str, Any]) -> Any:
    """Return the stage's baseline facts with the given variables changed."""
    kinds = {v["name"]: v["field_type"] for v in stage.schema()["variables"]}
    converted = {name: _converted(kinds[name], value) for name, value in overrides.items()}
    return dataclasses.replace(stage.baseline, **converted)


def _converted(kind: str, value: Any) -> Any:
    if kind == "numeric":
        return Decimal(str(value))
    if kind == "datetime":
        return datetime.fromisoformat(value)
    return value


def _fact_problem(kind: str | None, value: Any) -> str | None:
    if kind is None:
        return "unknown variable"
    if kind == "numeric":
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or (isinstance(value, float) and not math.isfinite(value))):
            return "must be a number"
        if abs(value) >= 10**15:
            return "must be below 10^15"
    if kind == "boolean" and not isinstance(value, bool):
        return "must be true or false"
    if kind in ("string", "select") and not isinstance(value, str):
        return "must be text"
    if kind == "select_multiple" and not (isinstance(value, list)
                                          and all(isinstance(v, str) for v in value)):
        return "must be a list of texts"
    if kind == "datetime":
        try:
            if not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is None:
                return "must be an ISO 8601 time with a zone"
        except ValueError:
            return "must be an ISO 8601 time with a zone"
    return None


def _normalised(value: Any) -> Any:
    return sorted(value) if isinstance(value, list) else value
