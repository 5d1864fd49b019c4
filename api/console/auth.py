"""Who is signed in to the console, and what each page admits.

People sign in with a username and password (engine/people.py) and get a session cookie;
an API key never opens a page and a session never calls the API. Every page declares the
roles it admits with `@page(...)` (admin may open every page); anything but GET also
needs the session's CSRF token, sent as the form field `csrf_token` or the `X-CSRFToken`
header (htmx sends the header: see base.html). A session ends after `SESSION_IDLE_MINUTES`
without a request, `SESSION_MAX_HOURS` after sign-in, at sign-out, and when the account is
disabled or its password changes.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException

from api.access import PAGE, ROLES_ATTRIBUTE, public
from api.problems import response_for
from api.wiring import services
from engine import people
from engine.actors import PEOPLE_ROLES, Actor
from engine.errors import OmsError, SignInRefusedError

View = TypeVar("View", bound=Callable[..., Any])

PAGE_ROLES_ATTRIBUTE = "oms_page_roles"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRFToken"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def console_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint of console pages under /console: its errors are pages, not problems."""
    blueprint = Blueprint(name, import_name, url_prefix="/console",
                          template_folder="templates")
    blueprint.register_error_handler(HTTPException, lambda error: _error_page(error))
    blueprint.register_error_handler(OmsError, lambda error: _error_page(error))
    return blueprint


blp = console_blueprint("console", __name__)
blp.static_folder = "static"
blp.static_url_path = "/static"


def page(*roles: str) -> Callable[[View], View]:
    """Declare a console page and the people's roles that may open it (admin: every page).
    The view runs with `current_user()` set; a request that changes anything must carry
    the session's CSRF token."""
    unknown = set(roles) - set(PEOPLE_ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}: pages admit {PEOPLE_ROLES}")
    admitted = frozenset(roles) | {"admin"}

    def declare(view: View) -> View:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            actor = _session_actor()
            if actor is None:
                return _to_sign_in()
            g.actor = actor  # also shows who is signed in on a refusal
            if not any(actor.holds(role) for role in admitted):
                abort(403, f"this page is for {', '.join(sorted(admitted))}; you are "
                           f"{', '.join(sorted(actor.roles))}")
            check_csrf()
            return view(*args, **kwargs)

        setattr(guarded, ROLES_ATTRIBUTE, PAGE)
        setattr(guarded, PAGE_ROLES_ATTRIBUTE, admitted)
        return guarded  # type: ignore[return-value]

    return declare


def current_user() -> Actor:
    """Return the person this page request is made by."""
    actor: Actor = g.actor
    return actor


def csrf_token() -> str:
    """Return this session's CSRF token, making one on first use."""
    token = session.get(CSRF_FIELD)
    if not token:
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return str(token)


def csrf_field() -> Markup:
    """The hidden form field that carries the CSRF token."""
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf_token())}">')


def check_csrf() -> None:
    """Refuse a request that changes something without this session's token."""
    if request.method in SAFE_METHODS:
        return
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    expected = session.get(CSRF_FIELD) or ""
    if not expected or not hmac.compare_digest(str(sent), str(expected)):
        abort(400, "this form is missing its security token or it has expired: reload the "
                   "page and try again")


def _session_actor() -> Actor | None:
    """The person this session belongs to, or None (not signed in, expired, disabled)."""
    user_id, epoch = session.get("uid"), session.get("epoch")
    if user_id is None or epoch is None:
        return None
    settings = services().settings
    now = datetime.now(UTC)
    since = datetime.fromtimestamp(session.get("since", 0), UTC)
    seen = datetime.fromtimestamp(session.get("seen", 0), UTC)
    if (now - seen > timedelta(minutes=settings.session_idle_minutes)
            or now - since > timedelta(hours=settings.session_max_hours)):
        session.clear()
        return None
    with services().uow() as uow:
        actor = people.session_actor(uow, int(user_id), int(epoch))
    if actor is None:
        session.clear()
        return None
    session["seen"] = int(now.timestamp())
    return actor


def _to_sign_in() -> Response:
    target = url_for("console.sign_in", next=request.full_path.rstrip("?"))
    if request.headers.get("HX-Request"):  # htmx would swap the sign-in page into a fragment
        response = Response(status=401)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)


def _safe_next(target: str | None) -> str:
    """Only a path of this console, so sign-in cannot be used to bounce people elsewhere."""
    if not target:
        return url_for("console.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/console/"):
        return url_for("console.home")
    return target


@blp.route("/")
@page("analyst", "ops")
def home() -> Any:
    """Start where the person's work is: the sections their roles open."""
    return render_template("console/home.html")


@blp.route("/sign-in", methods=["GET", "POST"])
@public
def sign_in() -> Any:
    """Sign in with a username and password; failures in a row are throttled."""
    error = None
    status = 200
    if request.method == "POST":
        check_csrf()
        username = request.form.get("username", "")
        with services().uow() as uow:
            try:
                user = people.sign_in(uow, username, request.form.get("password", ""))
            except SignInRefusedError as refused:
                uow.commit()  # the failure counts towards the throttle
                error, status = refused.detail, 429 if refused.retry_after else 401
            else:
                uow.commit()
                session.clear()  # a new session: nothing of the one before carries over
                now = int(datetime.now(UTC).timestamp())
                session.update(uid=user.id, epoch=user.session_epoch, since=now, seen=now)
                session.permanent = True
                return redirect(_safe_next(request.args.get("next")), code=303)
    return render_template("console/sign_in.html", error=error,
                           username=request.form.get("username", "")), status


@blp.route("/sign-out", methods=["POST"])
@public
def sign_out() -> Any:
    """End this session."""
    check_csrf()
    session.clear()
    return redirect(url_for("console.sign_in"), code=303)


def _error_page(error: Exception) -> Any:
    if isinstance(error, HTTPException):
        status, title, detail = error.code or 500, error.name, error.description
    else:
        problem = response_for(error)
        status = problem.status_code if problem is not None else 500
        title, detail = "That did not work", getattr(error, "detail", str(error))
    return render_template("console/error.html", status=status, title=title,
                           detail=detail), status


def roles_of(view: Callable[..., Any]) -> frozenset[str] | None:
    """The roles a console page admits, or None if the view is no page."""
    roles: frozenset[str] | None = getattr(view, PAGE_ROLES_ATTRIBUTE, None)
    return roles

