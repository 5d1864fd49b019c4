"""The default rule sets shipped with the service, one JSON file per stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SETS_DIR = Path(__file__).parent / "sets"


def default_rule_set(stage: str) -> dict[str, Any]:
    """Return the shipped rule set of a stage, as its JSON file holds it."""
    document: dict[str, Any] = json.loads((SETS_DIR / f"{stage}.json").read_text())
    return document
