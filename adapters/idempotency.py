"""Idempotency keys: the first response to a keyed request is kept and replayed.

A request first claims its key with one self-committing INSERT ... ON CONFLICT DO NOTHING,
so that a concurrent twin sees "in flight" at once instead of waiting. A successful
response is then stored in the same transaction as the change it reports, so a replay can
never describe a change that did not commit, nor a change commit without its response.
A refused request changed nothing: it gives its key back, so the corrected request can be
sent under the same key.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from adapters.errors import IdempotencyInFlightError, IdempotencyKeyReusedError
from engine.record import IdempotencyRecord, utcnow

RECORDS = IdempotencyRecord.__table__
IN_FLIGHT = "in_flight"
COMPLETED = "completed"


@dataclass(frozen=True)
class Claimed:
    """This request owns the key (while it holds the token) and must do the work."""

    record_id: int
    token: str


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
    # Two tries: a key whose holder gives it back between our INSERT and our look-up
    # is free again on the second.
    for _ in range(2):
        outcome = _try_claim(engine, api_key_id, key, request_fingerprint, lease)
        if outcome is not None:
            return outcome
    raise IdempotencyInFlightError(key)


def _try_claim(engine: Engine, api_key_id: int, key: str, request_fingerprint: str,
               lease: timedelta) -> Claimed | Replay | None:
    now = utcnow()
    token = secrets.token_hex(16)
    with _autocommit(engine) as connection:
        insert = _insert_for(connection.dialect.name).values(
            api_key_id=api_key_id, key=key, fingerprint=request_fingerprint, state=IN_FLIGHT,
            locked_at=now, created_at=now, claim_token=token,
        )
        statement = insert.on_conflict_do_nothing(
            index_elements=["api_key_id", "key"]
        ).returning(IdempotencyRecord.id)
        new_id = connection.scalar(statement)
        if new_id is not None:
            return Claimed(new_id, token)
        record = connection.execute(
            select(RECORDS).where(RECORDS.c.api_key_id == api_key_id, RECORDS.c.key == key)
        ).one_or_none()
        if record is None:
            return None
        if record.fingerprint != request_fingerprint:
            raise IdempotencyKeyReusedError(key)
        if record.state == COMPLETED and record.status_code is not None:
            return Replay(record.status_code, dict(record.response_headers or {}),
                          record.response_body or b"")
        # A lease that ran out means the first request died mid-way: take over. The new
        # token fences the old holder off: it can no longer complete or release the key.
        taken = connection.execute(
            update(RECORDS)
            .where(RECORDS.c.id == record.id, RECORDS.c.state == IN_FLIGHT,
                   RECORDS.c.locked_at < now - lease)
            .values(locked_at=now, claim_token=token)
        )
        if _rowcount(taken) == 1:
            return Claimed(record.id, token)
        raise IdempotencyInFlightError(key)


def complete(connection: Connection, claimed: Claimed, status_code: int,
             headers: dict[str, str], body: bytes) -> None:
    """Store the response, in the caller's transaction.

    Raises:
        IdempotencyInFlightError: another request took the key over meanwhile; the
            caller's transaction must not commit.
    """
    stored = connection.execute(
        update(RECORDS)
        .where(RECORDS.c.id == claimed.record_id, RECORDS.c.claim_token == claimed.token,
               RECORDS.c.state == IN_FLIGHT)
        .values(state=COMPLETED, status_code=status_code, response_headers=headers,
                response_body=body)
    )
    if _rowcount(stored) != 1:
        key = connection.scalar(select(RECORDS.c.key).where(RECORDS.c.id == claimed.record_id))
        raise IdempotencyInFlightError(key or "?")


def release(engine: Engine, claimed: Claimed) -> None:
    """Give the key back: the request changed nothing, so it may be sent again."""
    with engine.begin() as connection:
        connection.execute(
            delete(RECORDS).where(RECORDS.c.id == claimed.record_id,
                                  RECORDS.c.claim_token == claimed.token,
                                  RECORDS.c.state == IN_FLIGHT)
        )


def purge(session: Session, created_before: datetime) -> int:
    """Forget keys first used before the given time; return how many."""
    result = session.execute(delete(RECORDS).where(RECORDS.c.created_at < created_before))
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
