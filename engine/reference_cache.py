"""Per-process caches of reference data, and the one rule that keeps them true.

The rule: a cached thing carries the version it was read at; every write to its tables
bumps that version in the same transaction; every transaction reads all versions once.

- `reference_versions` holds one version per kind (KINDS). A transaction's first look-up
  reads them all in one statement (`versions`); they are kept in `session.info` until the
  transaction ends.
- `cached(session, kind, load)` returns the process's value of a kind when it was read at
  the version this transaction saw; otherwise `load(session)` reads it again, and the
  result is kept, with that version, in place of the old one. Values are immutable (or,
  for postal areas, a dict only ever added to or emptied), swapped whole; a lock per kind keeps
  threads from reading the same thing twice.
- Writers bump: `watch(session_factory)` makes every flush that adds, changes or deletes a
  row of a watched table (WATCHED) bump that kind in the same transaction, so no writer
  can forget. A write the ORM does not see (a Core `insert(...)`/`update(...)` on those
  tables) calls `bump` itself.
- A transaction that bumped a kind reads that kind from the database until it ends and
  keeps nothing of it: what it wrote is not committed yet and may roll back.

The caches belong to the engine (one per process in production; tests build one per
database). A look-up sees this transaction's own writes once they are flushed (every
writer flushes).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.record import (
    Carrier,
    CarrierRate,
    CarrierService,
    PostalArea,
    ReferenceVersion,
    RuleSetVersion,
    WebhookSubscription,
)

RULE_SETS, CARRIERS, WEBHOOKS, POSTAL_AREAS = "rule_sets", "carriers", "webhooks", "postal_areas"
KINDS = (RULE_SETS, CARRIERS, WEBHOOKS, POSTAL_AREAS)  # a row each in reference_versions
# The mapped classes whose rows each kind is made of.
WATCHED: Mapping[type[Any], str] = {
    RuleSetVersion: RULE_SETS,
    Carrier: CARRIERS, CarrierService: CARRIERS, CarrierRate: CARRIERS,
    WebhookSubscription: WEBHOOKS,
    PostalArea: POSTAL_AREAS,
}

T = TypeVar("T")


@dataclass(frozen=True)
class _Kept:
    version: int
    value: Any


class _Caches:
    """One engine's caches: the value kept per kind, and a lock per kind for rebuilding."""

    def __init__(self) -> None:
        self.kept: dict[str, _Kept] = {}
        self.locks = {kind: threading.Lock() for kind in KINDS}


_BY_ENGINE: WeakKeyDictionary[Engine, _Caches] = WeakKeyDictionary()
_BY_ENGINE_LOCK = threading.Lock()


def _fresh_locks() -> None:
    # a forked child (an RQ work horse) starts with no thread, so with no lock held
    global _BY_ENGINE_LOCK
    _BY_ENGINE_LOCK = threading.Lock()
    for caches in list(_BY_ENGINE.values()):
        caches.locks = {kind: threading.Lock() for kind in KINDS}


os.register_at_fork(after_in_child=_fresh_locks)


@dataclass
class _Seen:
    """What one transaction knows: the versions it read, and the kinds it wrote."""

    transaction: object
    versions: dict[str, int] | None = None
    written: set[str] = field(default_factory=set)  # read from the database from now on
    bumped: set[str] = field(default_factory=set)  # bumped outside any savepoint


_SEEN = "oms.reference_versions"


def cached(session: Session, kind: str, load: Callable[[Session], T]) -> T:
    """Return the process's value of a kind if it is as new as this transaction's version of
    it; else read it with `load` (in this session) and keep it with that version.

    `load` returns something nobody changes afterwards: a tuple, a frozen dataclass, a
    mapping proxy (or a dict only ever added to or emptied, as the postal areas' are).
    """
    seen = _seen(session)
    if seen.versions is None:
        seen.versions = _read_versions(session)
    version = seen.versions.get(kind)
    if version is None or kind in seen.written:  # no row, or this transaction changed it
        return load(session)
    caches = _caches(session)
    kept = caches.kept.get(kind)
    if kept is not None and kept.version == version:
        found: T = kept.value
        return found
    with caches.locks[kind]:
        kept = caches.kept.get(kind)  # another thread may have read it meanwhile
        if kept is not None and kept.version == version:
            again: T = kept.value
            return again
        value = load(session)
        caches.kept[kind] = _Kept(version, value)
        return value


def versions(session: Session) -> Mapping[str, int]:
    """Return the version of every kind as this transaction first read them."""
    seen = _seen(session)
    if seen.versions is None:
        seen.versions = _read_versions(session)
    return dict(seen.versions)


def bump(session: Session | Connection, kinds: Iterable[str]) -> None:
    """Add one to the version of these kinds, in this transaction: other processes read
    them again once it commits, and this transaction stops using what it had kept.

    A bare connection (a loader writing with Core, no session) is bumped as it is.
    """
    named = set(kinds)
    if isinstance(session, Connection):
        _add_one(session, sorted(named))
        return
    seen = _seen(session)
    wanted = sorted(named - seen.bumped)  # one bump per transaction is enough
    seen.written.update(named)
    if not wanted:
        return
    _add_one(session.connection(), wanted)
    if session.get_nested_transaction() is None:  # a savepoint's bump may be rolled back
        seen.bumped.update(wanted)


def _add_one(connection: Connection, kinds: list[str]) -> None:
    connection.execute(update(ReferenceVersion).where(ReferenceVersion.name.in_(kinds))
                       .values(version=ReferenceVersion.version + 1))


def watch(session_factory: sessionmaker[Session]) -> None:
    """Make every flush of the factory's sessions bump the kinds whose rows it writes."""
    event.listen(session_factory, "before_flush", _bump_what_changes)


def _bump_what_changes(session: Session, _context: Any, _instances: Any) -> None:
    changed = {WATCHED[type(instance)] for instance in (*session.new, *session.deleted)
               if type(instance) in WATCHED}
    changed.update(WATCHED[type(instance)] for instance in session.dirty
                   if type(instance) in WATCHED and session.is_modified(instance))
    if changed:
        bump(session, changed)


def _seen(session: Session) -> _Seen:
    transaction = session.get_transaction()
    if transaction is None:
        session.connection()  # begins it
        transaction = session.get_transaction()
    seen: _Seen | None = session.info.get(_SEEN)
    if seen is None or seen.transaction is not transaction:
        seen = session.info[_SEEN] = _Seen(transaction)
    return seen


def _read_versions(session: Session) -> dict[str, int]:
    rows = session.connection().execute(select(ReferenceVersion.name, ReferenceVersion.version))
    return {name: version for name, version in rows}


def _caches(session: Session) -> _Caches:
    engine = session.get_bind().engine
    found = _BY_ENGINE.get(engine)
    if found is None:
        with _BY_ENGINE_LOCK:
            found = _BY_ENGINE.get(engine)
            if found is None:
                found = _BY_ENGINE[engine] = _Caches()
    return found
