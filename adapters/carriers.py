"""The carriers shipped with the service: a JSON file of services and rate cards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEFAULT_FILE = Path(__file__).parent / "data" / "carriers.json"


def shipped_carriers() -> list[dict[str, Any]]:
    """Return the shipped carriers file's rows, as the carriers API accepts them."""
    rows: list[dict[str, Any]] = json.loads(DEFAULT_FILE.read_text())["carriers"]
    return rows
