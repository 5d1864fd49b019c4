"""Reference data: customers, products and locations, created, updated and bulk upserted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError

from engine.errors import AlreadyExistsError, NotFoundError
from engine.paging import fetch_page
from engine.ports import UnitOfWork
from engine.record import Base, Customer, Location, Product, utcnow

Row = TypeVar("Row", bound=Base)


@dataclass(frozen=True)
class ReferenceKind(Generic[Row]):
    """One kind of reference record and the column that names it."""

    name: str
    model: type[Row]
    key: str

    @property
    def key_column(self) -> ColumnElement[str]:
        column: ColumnElement[str] = getattr(self.model, self.key)
        return column


CUSTOMERS = ReferenceKind("customer", Customer, "id")
PRODUCTS = ReferenceKind("product", Product, "sku")
LOCATIONS = ReferenceKind("location", Location, "code")


@dataclass(frozen=True)
class UpsertOutcome:
    key: str
    outcome: str  # "created" or "updated"


def create_record(uow: UnitOfWork, kind: ReferenceKind[Row], values: Mapping[str, Any]) -> Row:
    """Add a new record.

    Raises:
        AlreadyExistsError: a record with this key exists.
    """
    key = values[kind.key]
    if uow.session.get(kind.model, key) is not None:
        raise AlreadyExistsError(kind.name, key)
    record = kind.model(**values)
    try:
        with uow.session.begin_nested():
            uow.session.add(record)
    except IntegrityError as error:  # a concurrent create of the same key won
        raise AlreadyExistsError(kind.name, key) from error
    return record


def update_record(uow: UnitOfWork, kind: ReferenceKind[Row], key: str,
                  changes: Mapping[str, Any]) -> Row:
    """Change some fields of an existing record."""
    record = get_record(uow, kind, key, for_update=True)
    _assign(record, changes)
    return record


def get_record(uow: UnitOfWork, kind: ReferenceKind[Row], key: str,
               for_update: bool = False) -> Row:
    """Return the record with this key.

    Raises:
        NotFoundError: there is none.
    """
    record = uow.session.get(kind.model, key, with_for_update=for_update)
    if record is None:
        raise NotFoundError(kind.name, key)
    return record


def list_records(uow: UnitOfWork, kind: ReferenceKind[Row], after: str | None,
                 limit: int) -> tuple[list[Row], str | None]:
    """Return one page of records in key order, and the key to continue after."""
    statement = select(kind.model).order_by(kind.key_column)
    if after is not None:
        statement = statement.where(kind.key_column > after)
    rows, after_key = fetch_page(uow.session, statement, limit,
                                 lambda row: getattr(row, kind.key))
    return rows, after_key


def upsert_records(uow: UnitOfWork, kind: ReferenceKind[Row],
                   rows: Sequence[Mapping[str, Any]]) -> list[UpsertOutcome]:
    """Create the records that are new and update the others, in one transaction."""
    for attempt in range(2):
        try:
            with uow.session.begin_nested():
                return _upsert(uow, kind, rows)
        except IntegrityError:
            # A concurrent upsert created one of our new keys first: the second pass
            # sees it and updates it instead.
            if attempt == 1:
                raise
    raise AssertionError("unreachable")


def _upsert(uow: UnitOfWork, kind: ReferenceKind[Row],
            rows: Sequence[Mapping[str, Any]]) -> list[UpsertOutcome]:
    keys = [row[kind.key] for row in rows]
    existing = {
        getattr(record, kind.key): record
        for record in uow.session.scalars(
            select(kind.model).where(kind.key_column.in_(keys)).with_for_update()
        )
    }
    outcomes = []
    for row in rows:
        key = row[kind.key]
        record = existing.get(key)
        if record is None:
            uow.session.add(kind.model(**row))
            outcomes.append(UpsertOutcome(key, "created"))
        else:
            _assign(record, row)
            outcomes.append(UpsertOutcome(key, "updated"))
    uow.session.flush()
    return outcomes


def _assign(record: Base, changes: Mapping[str, Any]) -> None:
    for name, value in changes.items():
        setattr(record, name, value)
    if hasattr(record, "updated_at"):
        record.updated_at = utcnow()
