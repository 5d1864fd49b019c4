"""Who may call what: API keys resolved to actors, and on every route the roles it admits
and the scope it is checked against.

Deny by default: a route that declares no access is refused to everyone, so a new
route cannot go out open by mistake. What an integration may see within a route is the
engine's one visibility rule (engine/visibility.py); a route scoped by a path id is
checked here, before its body is read, so an object out of scope answers 404 whatever
was sent.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, g, request

from adapters.signing import SIGNATURE_HEADER, SignatureError, verify
from api.problems import ApiProblem
from api.wiring import services
from engine import access, visibility
from engine.actors import CARRIER, EVERY, ROLES, WAREHOUSE, Actor

View = TypeVar("View", bound=Callable[..., Any])

PUBLIC = "public"
# A console page: it checks the person's session itself (api/console/auth.py), not a key.
PAGE = "page"
ROLES_ATTRIBUTE = "oms_access"
SCOPE_ATTRIBUTE = "oms_scope"
SIGNED_ATTRIBUTE = "oms_signed_by"
# What a route is checked against, besides its roles (see the README's table):
SCOPES = {
    "global": "shared reference data, rules or settings: every admitted role alike",
    "order": "the order in the path: another channel's is a 404",
    "hold": "the hold in the path: a hold of an order out of scope is a 404",
    "simulation": "the simulation in the path: another channel's is a 404",
    "import": "the order import in the path: another channel's is a 404",
    "order_in_body": "the order named in the body (`order_id`): one out of scope is a 404",
    "group": "the fulfilment group named in the body: one of another location is a 404",
    "parcel": "the parcel named in the body: one of another carrier is a 404",
    "location": "the location named in the query or body: another one is a 404 (in bulk, "
                "the row fails with not_found)",
    "list": "a list: it holds only what the caller may see",
}
_PATH_SCOPES = {"order": ("order_id", visibility.check_order),
                "hold": ("hold_id", visibility.check_hold),
                "simulation": ("simulation_id", visibility.check_simulation),
                "import": ("import_id", visibility.check_import)}
_CONVERTER = re.compile(r"<(?:[^<>:]+:)?(\w+)>")
# A revoked key stops working within this many seconds on every worker.
KEY_CACHE_SECONDS = 10.0


def allow(*roles: str, scope: str) -> Callable[[View], View]:
    """Declare which roles may call this route (admin may call every route) and the scope
    it is checked against, one of SCOPES."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}: one of {', '.join(SCOPES)}")

    def declare(view: View) -> View:
        setattr(view, ROLES_ATTRIBUTE, frozenset(roles) | {"admin"})
        setattr(view, SCOPE_ATTRIBUTE, scope)
        return view

    return declare


def signed_by(partner: str) -> Callable[[View], View]:
    """Also accept the request when `partner` (wms, carrier) signed it with one of its
    secrets (OMS_<PARTNER>_EVENT_SECRETS), instead of an API key."""

    def declare(view: View) -> View:
        setattr(view, SIGNED_ATTRIBUTE, partner)
        return view

    return declare


def public(view: View) -> View:
    """Declare a route that needs no key (health, the API description)."""
    setattr(view, ROLES_ATTRIBUTE, PUBLIC)
    return view


def declare_public_endpoints(app: Flask, endpoints: list[str]) -> None:
    """Declare routes we do not define ourselves (the framework's) as needing no key."""
    app.extensions.setdefault("oms_public_endpoints", set()).update(endpoints)


def is_page(endpoint: str | None) -> bool:
    """Whether the endpoint is a console page (or the console's sign-in), not an API route."""
    return endpoint is not None and endpoint.partition(".")[0].startswith("console")


def current_actor() -> Actor:
    """Return the actor of this request (set once its key has been checked)."""
    actor: Actor = g.actor
    return actor


class _KeyCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Actor | None]] = {}
        self._lock = threading.Lock()

    def resolve(self, plaintext: str) -> Actor | None:
        now = time.monotonic()
        digest = access.hash_key(plaintext)
        with self._lock:
            cached = self._entries.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        with services().uow() as uow:
            actor = access.authenticate(uow, plaintext)
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (now + KEY_CACHE_SECONDS, actor)
        return actor


def register(app: Flask) -> None:
    """Check every request's key against the roles its route declares."""
    cache = _KeyCache()
    app.extensions["oms_key_cache"] = cache

    @app.before_request
    def authorize() -> None:
        if request.endpoint is None:
            return  # no such route or method: routing answers 404 or 405
        view = current_app.view_functions[request.endpoint]
        roles = getattr(view, ROLES_ATTRIBUTE, None)
        if roles in (PUBLIC, PAGE) or request.endpoint in app.extensions.get(
                "oms_public_endpoints", ()):
            return
        if roles is None:
            raise ApiProblem(403, "forbidden", "this route declares no access and is closed")
        partner = getattr(view, SIGNED_ATTRIBUTE, None)
        if partner is not None and SIGNATURE_HEADER in request.headers:
            g.actor = _signed_partner(partner)
            return
        presented = _presented_key()
        if presented is None:
            raise ApiProblem(401, "unauthenticated",
                             "send an API key: Authorization: Bearer <key>",
                             headers={"WWW-Authenticate": 'Bearer realm="oms"'})
        actor = cache.resolve(presented)
        if actor is None:
            raise ApiProblem(401, "unauthenticated", "the API key is unknown or revoked",
                             headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if actor.role not in roles:
            raise ApiProblem(403, "forbidden",
                             f"role {actor.role!r} may not call {request.method} "
                             f"{route_as_written()}; allowed: {', '.join(sorted(roles))}")
        g.actor = actor
        _check_path_scope(getattr(view, SCOPE_ATTRIBUTE, None), actor)


def route_as_written() -> str:
    """The route of this request as the API documents it: `/holds/{hold_id}/release`."""
    return _CONVERTER.sub(r"{\1}", request.url_rule.rule if request.url_rule else request.path)


def _check_path_scope(scope: str | None, actor: Actor) -> None:
    # A read is checked by the engine call it makes; a command is checked here too, so
    # that what it sent is not even read for an object out of scope.
    if (scope not in _PATH_SCOPES or visibility.sees_everything(actor)
            or request.method in ("GET", "HEAD")):
        return
    name, check = _PATH_SCOPES[scope]
    with services().uow() as uow:
        check(uow, actor, (request.view_args or {})[name])  # NotFoundError: a 404


def _signed_partner(partner: str) -> Actor:
    """The partner whose secret signed this request: one that speaks for every location
    (or carrier), or one that speaks only for its own."""
    built = services()
    settings = built.settings
    shared = tuple(secret.strip() for secret in
                   getattr(settings, f"{partner}_event_secrets").split(",") if secret.strip())
    candidates = [(None, shared)] if shared else []
    candidates += list(built.partners.event_secrets(partner).items())
    if not candidates:
        raise ApiProblem(401, "unauthenticated",
                         f"signed {partner} events are not configured here; use an API key")
    body = request.get_data(cache=True)
    failure: SignatureError | None = None
    for speaks_for, secrets in candidates:
        try:
            verify(secrets, request.headers, body, settings.event_tolerance_seconds)
        except SignatureError as error:
            failure = error
            continue
        return Actor(type="partner", id=f"{partner}:{speaks_for}" if speaks_for else partner,
                     role=WAREHOUSE if partner == "wms" else CARRIER,
                     scope=frozenset({speaks_for or EVERY}))
    assert failure is not None
    raise ApiProblem(401, failure.reason, {
        "missing_signature": "send X-OMS-Timestamp and X-OMS-Signature",
        "malformed_timestamp": "X-OMS-Timestamp is Unix seconds",
        "stale_timestamp": "the signature's timestamp is outside the tolerance "
                           f"({settings.event_tolerance_seconds} s): replays are refused",
        "bad_signature": "the signature does not match the body",
    }[failure.reason])


def _presented_key() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-API-Key") or None
