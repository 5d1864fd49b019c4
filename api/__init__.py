"""The HTTP service: `create_app` builds it from settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask
from sqlalchemy.exc import IntegrityError

from adapters.bootstrap import Services, build_services
from adapters.migrations import check_schema_current
from adapters.schedule import start_in_process, wants_in_process
from adapters.settings import Settings
from adapters.sql import SqlUnitOfWork
from adapters.webhooks import TargetPolicy
from api import (
    access,
    carriers,
    console,
    fulfilment,
    health,
    holds,
    inventory,
    kpis,
    orders,
    postal_areas,
    problems,
    reference,
    rules,
    transactions,
    transfers,
    webhooks,
)
from api.carriers import shipped_carriers
from api.docs import init_api
from engine.access import ensure_api_key
from engine.actors import system_actor
from engine.carriers.rate_cards import install_default_carriers
from engine.decisions.rulesets import install_defaults
from engine.errors import AlreadyExistsError

BOOTSTRAP_ADMIN_KEY_NAME = "bootstrap-admin"


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then OMS_* environment variables, then test_config."""
    app = Flask(__name__, static_folder=None)
    app.config.from_mapping(MAX_CONTENT_LENGTH=Settings.max_content_length, JSON_SORT_KEYS=False)
    app.config.from_prefixed_env("OMS")
    if test_config is not None:
        app.config.update(test_config)
    settings = Settings.from_mapping(app.config)
    TargetPolicy.parse(settings.webhook_allowed_hosts)  # a bad entry stops the start
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.json.sort_keys = False  # type: ignore[attr-defined]

    built = build_services(settings)
    try:
        check_schema_current(built.engine)  # refuse to serve a database that is behind
        if settings.admin_api_key:
            _ensure_admin_key(built, settings.admin_api_key)
        _retrying(built, lambda uow: install_defaults(uow, system_actor("rules-installer")))
        _retrying(built, lambda uow: install_default_carriers(uow, shipped_carriers))
    except Exception:
        built.close()
        raise
    app.extensions["oms"] = built

    api = init_api(app)
    problems.register(app)  # after the OpenAPI layer, so that ours answer every error
    access.register(app)
    transactions.register(app)
    for blueprint in (health.blp, orders.blp, holds.blp, rules.blp, reference.customers,
                      reference.products, reference.locations, inventory.blp,
                      inventory.availability_blp, carriers.blp,
                      postal_areas.blp, fulfilment.blp, webhooks.blp, kpis.blp,
                      transfers.blp):
        api.register_blueprint(blueprint)
    console.register(app, settings)
    if wants_in_process(built, testing=app.testing):  # no Redis: nobody else starts them
        start_in_process(built)
    return app


def _ensure_admin_key(built: Services, plaintext: str) -> None:
    _retrying(built, lambda uow: ensure_api_key(uow, BOOTSTRAP_ADMIN_KEY_NAME, "admin",
                                                plaintext))


def _retrying(built: Services, work: Callable[[SqlUnitOfWork], object]) -> None:
    """Run start-up work in its own transaction; every gunicorn worker runs it at once, and
    the one that loses the race finds its sibling's result on the next try."""
    for attempt in range(3):
        try:
            with built.uow() as uow:
                work(uow)
                uow.commit()
            return
        except (AlreadyExistsError, IntegrityError):
            if attempt == 2:
                raise
