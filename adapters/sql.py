"""The SQL engine for PostgreSQL or SQLite, and the unit of work built on it."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, Table, bindparam, cast, create_engine, event, func, inspect
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import ExecuteStyle
from sqlalchemy.orm import InstanceState, Mapper, Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.interfaces import MANYTOONE

from adapters.outbox import Outbox
from adapters.queue import resolve
from engine import reference_cache
from engine.ports import JobArg
from engine.record import OutboxMessage, utcnow

log = logging.getLogger(__name__)


def make_engine(url: str, pool_size: int = 10) -> Engine:
    """Create the engine; on SQLite, make every transaction take the write lock at BEGIN."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size,
                         pool_pre_ping=True, pool_recycle=1800,
                         paramstyle="numeric_dollar",
                         connect_args={"cursor_factory": psycopg.RawCursor})


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling would defer BEGIN; we issue it ourselves.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA busy_timeout = 30000")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front: two writers queue instead of deadlocking
    # on a read-to-write upgrade, which SQLite reports as "database is locked".
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class StatementCounter:
    """Counts the SQL statements this process sends (an executemany once per parameter
    set, since the server runs each; a multi-row INSERT once) and keeps the total in
    `<directory>/<pid>`, rewritten at most once a second by a background thread and at
    exit, for benchmarks that add up every server and worker process. A forked child
    counts afresh under its own pid."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._start()
        atexit.register(self.write)
        os.register_at_fork(after_in_child=self._start)

    def _start(self) -> None:
        self._lock = threading.Lock()  # anew in a child: a lock held at the fork stays held
        self.total = 0
        self._written = -1
        threading.Thread(target=self._keep_writing, name="oms-statement-counts",
                         daemon=True).start()

    def count(self, _connection: Any, _cursor: Any, _statement: str, parameters: Any,
              context: Any, executemany: bool) -> None:
        # A multi-row INSERT (SQLAlchemy's "insertmanyvalues") arrives flagged as many,
        # with its values flattened: it is one statement.
        one = (not executemany or getattr(context, "execute_style", None)
               is ExecuteStyle.INSERTMANYVALUES)
        with self._lock:  # gunicorn's threads count into one total
            self.total += 1 if one else len(parameters)

    def write(self) -> None:
        """Write the total if it changed (a reader never sees half a file)."""
        total = self.total
        if total == self._written:
            return
        path = self.directory / str(os.getpid())
        temporary = path.with_suffix(".tmp")
        try:
            temporary.write_text(f"{total}\n")
            os.replace(temporary, path)
        except OSError:  # the directory is gone: whoever read the counts has finished
            return
        self._written = total

    def _keep_writing(self) -> None:
        while True:
            time.sleep(1)
            self.write()


_counters: dict[str, StatementCounter] = {}
_counters_lock = threading.Lock()


def count_statements(engine: Engine, directory: str) -> StatementCounter:
    """Count what `engine` sends into this process's counter for `directory` (one per
    process, whatever the number of engines)."""
    with _counters_lock:
        counter = _counters.get(directory)
        if counter is None:
            counter = _counters[directory] = StatementCounter(Path(directory))
    event.listen(engine, "before_cursor_execute", counter.count)
    return counter


class SqlUnitOfWork:
    """One transaction in one session; the jobs it asks for are written to the outbox in
    that transaction, and handed to the queue once it has committed."""

    def __init__(self, session_factory: Callable[[], Session], outbox: Outbox) -> None:
        self._session_factory = session_factory
        self._outbox = outbox
        self._pending: list[OutboxMessage] = []

    def __enter__(self) -> SqlUnitOfWork:
        self.session = self._session_factory()
        self._pending = []
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.session.rollback()  # a no-op after commit
        finally:
            self.session.close()

    def commit(self) -> None:
        self.session.commit()
        pending, self._pending = self._pending, []
        if pending:
            try:
                self._outbox.dispatch([message.id for message in pending])
            except Exception:  # committed: the outbox keeps them for the next dispatch
                log.exception("dispatching %d outbox message(s) failed", len(pending))

    def rollback(self) -> None:
        self._pending = []
        self.session.rollback()

    def enqueue_after_commit(self, job: str, *args: JobArg) -> None:
        resolve(job)  # a name no worker could run fails the caller, not the worker
        message = OutboxMessage(job=job, args=list(args), created_at=utcnow(), attempts=0)
        self.session.add(message)
        self._pending.append(message)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory whose objects stay readable after commit, whose flushes
    bump the version of the reference data they change (`engine.reference_cache`), and
    whose flushes on PostgreSQL write many changed rows of a table in one statement."""
    factory = sessionmaker(engine, expire_on_commit=False)
    # first: the hook below makes the rows it writes clean, unseen by later hooks
    reference_cache.watch(factory)
    if engine.dialect.name == "postgresql":
        event.listen(factory, "before_flush", _updates_in_one_statement)
    return factory


# Fewer changed rows of one shape than this are left to the ORM (one UPDATE each).
BATCHED_UPDATE_MIN_ROWS = 3


def _updates_in_one_statement(session: Session, _context: Any, _instances: Any) -> None:
    """Write the rows a flush would update one by one (a batch of orders moving on, their
    lines, levels, groups) as one `UPDATE ... FROM unnest(<one array per column>)` per
    table and set of changed columns; the ORM then finds them clean. Rows whose many-to-one
    references changed, or that leave a column set on update (`updated_at`) to the ORM, are
    left to the ORM."""
    shapes: dict[tuple[Mapper[Any], tuple[str, ...]], list[InstanceState[Any]]] = {}
    for instance in session.dirty:
        state = inspect(instance)
        # what changed since the row was read: each changed attribute's value as read
        # (much cheaper than every attribute's history)
        committed = state.committed_state
        if state.key is None or state.deleted or not committed:
            continue
        shape = _shape_of(state.mapper)
        if shape is None or any(key in committed for key in shape.references):
            continue
        values = state.dict
        changed = tuple(key for key in shape.columns
                        if key in committed and committed[key] != values.get(key))
        if changed and all(key in changed for key in shape.set_on_update):
            shapes.setdefault((state.mapper, changed), []).append(state)
    for (mapper, changed), states in shapes.items():
        if len(states) >= BATCHED_UPDATE_MIN_ROWS:
            _update_rows(session, mapper, changed, states)


@dataclass(frozen=True)
class _Shape:
    """What the hook asks of a mapped class's rows, worked out once per class."""

    columns: tuple[str, ...]  # its column attributes
    references: tuple[str, ...]  # its many-to-one relationships: rows changing one are left
    set_on_update: tuple[str, ...]  # columns with an onupdate: rows not setting one are left


_SHAPES: dict[Mapper[Any], _Shape | None] = {}


def _shape_of(mapper: Mapper[Any]) -> _Shape | None:
    """The class's shape, or None when its rows are left to the ORM (inherited mappings,
    mappings of something other than a table)."""
    if mapper not in _SHAPES:
        table = mapper.local_table
        _SHAPES[mapper] = None if mapper.inherits is not None or not isinstance(
            table, Table) else _Shape(
            tuple(attribute.key for attribute in mapper.column_attrs),
            tuple(relation.key for relation in mapper.relationships
                  if relation.direction is MANYTOONE),
            tuple(mapper.get_property_by_column(found).key for found in table.columns
                  if found.onupdate is not None))
    return _SHAPES[mapper]


def _update_rows(session: Session, mapper: Mapper[Any], changed: tuple[str, ...],
                 states: list[InstanceState[Any]]) -> None:
    table = mapper.local_table
    assert isinstance(table, Table)  # `_shape_of` leaves anything else to the ORM
    keys = [mapper.get_property_by_column(column).key for column in mapper.primary_key]
    columns = {key: mapper.get_property(key).columns[0] for key in (*keys, *changed)}
    # one array per column, unnested into rows: the statement's text is the same whatever
    # the number of rows, so it is compiled once per shape and sent small
    rows = func.unnest(*[
        cast(bindparam(f"a_{key}", type_=ARRAY(found.type)), ARRAY(found.type))
        for key, found in columns.items()]).table_valued(
            *[f"v_{key}" for key in columns]).render_derived(name="changed")
    updated = session.connection().execute(
        table.update()
        .where(*[columns[key] == rows.c[f"v_{key}"] for key in keys])
        .values({columns[key].name: rows.c[f"v_{key}"] for key in changed}),
        {f"a_{key}": [getattr(state.obj(), key) for state in states] for key in columns})
    if updated.rowcount != len(states):  # as the ORM checks each row it updates
        raise StaleDataError(f"{table.name}: {updated.rowcount} of {len(states)} rows updated")
    for state in states:
        for key in changed:
            set_committed_value(state.obj(), key, getattr(state.obj(), key))
