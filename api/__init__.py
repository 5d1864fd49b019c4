"""The HTTP service: `create_app` builds it from settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy.exc import IntegrityError

from adapters.bootstrap import Services, build_services
from adapters.migrations import check_schema_current
from adapters.settings import Settings
from api import access, health, orders, problems, reference, transactions
from api.docs import init_api
from engine.access import ensure_api_key
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
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.json.sort_keys = False  # type: ignore[attr-defined]

    built = build_services(settings)
    try:
        check_schema_current(built.engine)  # refuse to serve a database that is behind
        if settings.admin_api_key:
            _ensure_admin_key(built, settings.admin_api_key)
    except Exception:
        built.close()
        raise
    app.extensions["oms"] = built

    api = init_api(app)
    problems.register(app)  # after the OpenAPI layer, so that ours answer every error
    access.register(app)
    transactions.register(app)
    for blueprint in (health.blp, orders.blp, reference.customers, reference.products,
                      reference.locations):
        api.register_blueprint(blueprint)
    return app


def _ensure_admin_key(built: Services, plaintext: str) -> None:
    # Every gunicorn worker runs this at once: the one that loses the race finds the
    # key its sibling created on its second try.
    for attempt in range(3):
        try:
            with built.uow() as uow:
                ensure_api_key(uow, BOOTSTRAP_ADMIN_KEY_NAME, "admin", plaintext)
                uow.commit()
            return
        except (AlreadyExistsError, IntegrityError):
            if attempt == 2:
                raise
