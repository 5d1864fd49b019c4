"""The console: pages for people (operations, analysts, admins) in the same service.

Views are thin: load, call the same engine use case the REST route calls, render. Every
page declares its roles (`@page`, api/console/auth.py); every form carries a CSRF token;
templates autoescape; the content security policy admits only this app's own files.
"""

from __future__ import annotations

import functools
import os
import secrets
from datetime import timedelta
from pathlib import Path

from flask import Blueprint, Flask, Response, request, url_for

from adapters.settings import PROJECT_ROOT, Settings
from api.access import declare_public_endpoints, is_page
from api.console import admin, auth, dashboard, inbox, orders, studio

# Each section's blueprint, one line each.
BLUEPRINTS: list[Blueprint] = [auth.blp, admin.blp, inbox.blp, orders.blp, studio.blp,
                               dashboard.blp]

# The console's sections: (label, endpoint, roles). A section shows in the menu when its
# page exists in this app and the person holds one of its roles (admin: all).
NAV = (
    ("Inbox", "console_inbox.inbox", ("ops", "analyst")),
    ("Orders", "console_orders.search", ("ops", "analyst")),
    ("Rule studio", "console_studio.index", ("analyst",)),
    ("Dashboard", "console_dashboard.dashboard", ("ops", "analyst")),
    ("Users and keys", "console_admin.users", ("admin",)),
)

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "form-action 'self'",
))
SECRET_KEY_FILE = PROJECT_ROOT / "instance" / "secret_key"


def register(app: Flask, settings: Settings) -> None:
    """Serve the console: sessions, its pages, the template helpers, the security headers."""
    app.secret_key = settings.secret_key or _kept_secret_key(SECRET_KEY_FILE)
    app.config.update(
        SESSION_COOKIE_NAME="oms_session", SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure.lower() in ("1", "true", "yes"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_max_hours),
    )
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    declare_public_endpoints(app, ["console.static"])  # the style sheet and scripts
    app.jinja_env.globals.update(csrf_field=auth.csrf_field, csrf_token=auth.csrf_token,
                                 console_nav=_nav, static_file=_static_file)

    @app.after_request
    def secure_pages(response: Response) -> Response:
        if is_page(request.endpoint):
            response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Referrer-Policy"] = "same-origin"
            response.headers["X-Frame-Options"] = "DENY"
            if response.mimetype == "text/html":
                response.headers["Cache-Control"] = "no-store"
        return response


def _nav() -> list[tuple[str, str, bool]]:
    """The menu for the person signed in: (label, url, is this the current section)."""
    from flask import current_app, g

    actor = g.get("actor")
    if actor is None:
        return []
    entries = []
    for label, endpoint, roles in NAV:
        if endpoint not in current_app.view_functions:
            continue
        if not any(actor.holds(role) for role in roles):
            continue
        current = request.blueprint == endpoint.partition(".")[0]
        entries.append((label, url_for(endpoint), current))
    return entries


@functools.cache
def _static_version(name: str) -> str:
    """A file's version, from its size and time: read once per process (files change only
    with a new release, which restarts the processes)."""
    stat = (Path(auth.blp.static_folder or "") / name).stat()
    return f"{stat.st_size:x}{int(stat.st_mtime):x}"


def _static_file(name: str) -> str:
    """The URL of one of the console's own files, versioned by its size and time so that a
    new release is fetched anew."""
    return url_for("console.static", filename=name, v=_static_version(name))


def _kept_secret_key(path: Path) -> str:
    """Read the key kept in instance/, or make one; the first of several processes to
    start makes it (written aside, then linked in whole) and the others read it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        aside = path.with_name(f".{path.name}.{os.getpid()}")
        aside.write_text(secrets.token_urlsafe(48) + "\n")
        aside.chmod(0o600)
        try:
            os.link(aside, path)
        except FileExistsError:
            pass  # another process was first: its key is the one
        finally:
            aside.unlink()
    return path.read_text().strip()
