"""The one wiring point: build the services from settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property

from redis import Redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adapters.outbox import Outbox
from adapters.partners import Partners
from adapters.queue import InlineJobQueue, RqJobQueue
from adapters.settings import Settings
from adapters.sql import SqlUnitOfWork, count_statements, make_engine, make_session_factory
from engine.ports import JobQueue


@dataclass
class Services:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    jobs: JobQueue
    redis: Redis | None = None
    stoppers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def outbox(self) -> Outbox:
        return Outbox(self.session_factory, self.jobs, inline=self.redis is None)

    @cached_property
    def partners(self) -> Partners:
        """The warehouse, carrier and finance systems, embedded or over HTTP (the
        configuration is read once)."""
        return Partners(self.settings.partners, self.session_factory)

    def uow(self) -> SqlUnitOfWork:
        """Return a new unit of work (use it as a context manager)."""
        return SqlUnitOfWork(self.session_factory, self.outbox)

    def on_close(self, stop: Callable[[], None]) -> None:
        """Run `stop` first when the services close (e.g. a background scheduler)."""
        self.stoppers.append(stop)

    def close(self) -> None:
        """Stop what runs in the background, release connections to the database and Redis."""
        while self.stoppers:
            self.stoppers.pop()()
        self.engine.dispose()
        if self.redis is not None:
            self.redis.close()


_current: ContextVar[Services | None] = ContextVar("oms_services", default=None)
_from_env: list[Services] = []


def build_services(settings: Settings) -> Services:
    """Create the engine, the session factory and the job queue the settings ask for."""
    settings.hold_sla  # noqa: B018 - a malformed SLA stops the service now, not a request
    settings.wave_policy  # noqa: B018 - and so do impossible waves
    engine = make_engine(settings.database_url, settings.database_pool_size)
    if settings.statement_counts:
        count_statements(engine, settings.statement_counts)
    # A short connect timeout: an unreachable Redis delays work (it waits in the outbox),
    # not requests. No read timeout: RQ workers block on the queue for minutes.
    redis = (Redis.from_url(settings.redis_url, socket_connect_timeout=2)
             if settings.redis_url else None)
    services = Services(settings, engine, make_session_factory(engine),
                        jobs=InlineJobQueue(lambda: using(services)), redis=redis)
    if redis is not None:
        services.jobs = RqJobQueue(redis, settings.queue_name, settings.retry_seconds)
    return services


@contextmanager
def using(services: Services) -> Iterator[Services]:
    """Make these the services that jobs run with, for the duration of the block."""
    token = _current.set(services)
    try:
        yield services
    finally:
        _current.reset(token)


def current_services() -> Services:
    """Return the services jobs run with: those in use, or (in a worker) built from OMS_*."""
    services = _current.get()
    if services is not None:
        return services
    if not _from_env:
        _from_env.append(build_services(Settings.from_env()))
    return _from_env[0]
