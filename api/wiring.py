"""The services of the running app, reachable from views."""

from __future__ import annotations

from flask import current_app

from adapters.bootstrap import Services


def services() -> Services:
    """Return the services built for this app by create_app."""
    built: Services = current_app.extensions["oms"]
    return built
