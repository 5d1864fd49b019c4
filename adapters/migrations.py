"""Alembic, driven from code: upgrade the schema and tell whether a database is behind."""

from __future__ import annotations

import functools

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from adapters.errors import DatabaseBehindError
from adapters.settings import PROJECT_ROOT

UPGRADE_COMMAND = "oms db upgrade"


def alembic_config(database_url: str) -> Config:
    """Return an Alembic config for our migrations folder and this database."""
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to the given revision (the newest by default)."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revisions(engine: Engine) -> set[str]:
    """Return the revisions the database is at (empty for a new database)."""
    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


@functools.cache
def _code_heads() -> frozenset[str]:
    # the migration files are read once per process: the code does not change under it
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return frozenset(script.get_heads())


def head_revisions(engine: Engine) -> set[str]:
    """Return the revisions the code expects."""
    return set(_code_heads())


def check_schema_current(engine: Engine) -> None:
    """Refuse to go on against a database whose schema is behind the code.

    Raises:
        DatabaseBehindError: naming the command that fixes it.
    """
    current, expected = current_revisions(engine), head_revisions(engine)
    if current != expected:
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseBehindError(
            f"the database {where} is at revision {sorted(current) or 'none (empty)'} but "
            f"this code needs {sorted(expected)}: run `{UPGRADE_COMMAND}` "
            "(with the same OMS_DATABASE_URL) to migrate it"
        )
