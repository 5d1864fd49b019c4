"""Keyset pagination: one page of rows and where the next page starts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session

Row = TypeVar("Row")


def fetch_page(session: Session, statement: Select[Row], limit: int,
               position: Callable[[Row], Any]) -> tuple[list[Row], Any]:
    """Return up to `limit` rows, and the position of the last one if more follow."""
    rows = list(session.scalars(statement.limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, position(rows[-1])
