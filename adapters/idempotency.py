"""Idempotency keys: the first response to a keyed request is kept and replayed.

A request first claims its key with one self-committing INSERT ... ON CONFLICT DO NOTHING,
so that a concurrent twin sees "in flight" at once instead of waiting. The response is
then stored in the same transaction as the change it reports, so a replay can never
describe a change that did not commit, nor a change commit without its response.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engine.errors import IdempotencyInFlightError, IdempotencyKeyReusedError
from engine.models import IdempotencyRecord, utcnow

IN_FLIGHT = "in_flight"
COMPLETED = "completed"


@dataclass(frozen=True)
class Claimed:
    """This request owns the key and must do the work."""

    record_id: int


@dataclass(frozen=True)
class Replay:
    """The key was used before for this same request: send its response again."""

    status_code: int
    headers: dict[str, str]
    body: bytes


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Return what identifies 'the same request': method, path with query, exact body."""
    digest = hashlib.sha256()
    for part in (method.encode(), b"\0", path.encode(), b"\0", body):
        digest.update(part)
    return digest.hexdigest()


def claim(engine: Engine, api_key_id: int, key: str, request_fingerprint: str,
          lease: timedelta) -> Claimed | Replay:
    """Claim the key for this request, or say what became of its first use.

    Raises:
        IdempotencyKeyReusedError: the key was first used for a different request.
        IdempotencyInFlightError: the first request is still being processed.
    """
    now = utcnow()
    with _autocommit(engine) as connection:
        insert = _insert_for(connection.dialect.name).values(
            api_key_id=api_key_id, key=key, fingerprint=request_fingerprint, state=IN_FLIGHT,
            locked_at=now, created_at=now,
        )
        statement = insert.on_conflict_do_nothing(
            index_elements=["api_key_id", "key"]
        ).returning(IdempotencyRecord.id)
        new_id = connection.scalar(statement)
        if new_id is not None:
            return Claimed(new_id)
        record = connection.execute(
            select(IdempotencyRecord.__table__).where(IdempotencyRecord.api_key_id == api_key_id,
                                                      IdempotencyRecord.key == key)
        ).one()
        if record.fingerprint != request_fingerprint:
            raise IdempotencyKeyReusedError(key)
        if record.state == COMPLETED and record.status_code is not None:
            return Replay(record.status_code, dict(record.response_headers or {}),
                          record.response_body or b"")
        # A lease that ran out means the first request died mid-way: take over.
        taken = connection.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.id == record.id, IdempotencyRecord.state == IN_FLIGHT,
                   IdempotencyRecord.locked_at < now - lease)
            .values(locked_at=now)
        )
        if _rowcount(taken) == 1:
            return Claimed(record.id)
        raise IdempotencyInFlightError(key)


def complete(connection: Connection, record_id: int, status_code: int,
             headers: dict[str, str], body: bytes) -> None:
    """Store the response, in the caller's transaction."""
    connection.execute(
        update(IdempotencyRecord).where(IdempotencyRecord.id == record_id).values(
            state=COMPLETED, status_code=status_code, response_headers=headers,
            response_body=body,
        )
    )


def complete_alone(engine: Engine, record_id: int, status_code: int,
                   headers: dict[str, str], body: bytes) -> None:
    """Store a response that changed nothing (a refusal), in a transaction of its own."""
    with engine.begin() as connection:
        complete(connection, record_id, status_code, headers, body)


def abandon(engine: Engine, record_id: int) -> None:
    """Give the key back after a failure on our side, so that a retry does the work."""
    with engine.begin() as connection:
        connection.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id,
                                            IdempotencyRecord.state == IN_FLIGHT)
        )


def purge(session: Session, created_before: datetime) -> int:
    """Forget keys first used before the given time; return how many."""
    result = session.execute(
        delete(IdempotencyRecord).execution_options(synchronize_session=False)
        .where(IdempotencyRecord.created_at < created_before)
    )
    return _rowcount(result)


@contextmanager
def _autocommit(engine: Engine) -> Iterator[Connection]:
    """Yield a connection on which each statement commits by itself (one round trip)."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # pysqlite's own autocommit switch would undo our BEGIN IMMEDIATE set-up.
            with connection.begin():
                yield connection
        else:
            yield connection.execution_options(isolation_level="AUTOCOMMIT")


def _insert_for(dialect: str) -> Any:
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(IdempotencyRecord)


def _rowcount(result: Any) -> int:
    return int(result.rowcount)
