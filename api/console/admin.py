"""Admin pages: people's accounts and the API keys of integrations."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from api.console.auth import console_blueprint, current_user, page
from api.wiring import services
from engine import access, people
from engine.actors import PEOPLE_ROLES, ROLES
from engine.errors import AlreadyExistsError, InputValidationError, NotFoundError

blp = console_blueprint("console_admin", __name__)


@blp.route("/admin", methods=["GET", "POST"])
@page("admin")
def users() -> Any:
    """List people and keys; create a person (their password is shown once)."""
    created = None
    problems: dict[str, str] = {}
    if request.method == "POST":
        with services().uow() as uow:
            try:
                created = people.create_user(
                    uow, current_user(), request.form.get("username", ""),
                    request.form.getlist("roles"), request.form.get("display_name") or None)
                uow.commit()
            except InputValidationError as error:
                problems = {problem.field: problem.message for problem in error.problems}
            except AlreadyExistsError as error:
                problems = {"username": error.detail}
        created = created and (created.user.username, created.password)
    return _render(created_user=created, user_problems=problems,
                   status=422 if problems else 200)


@blp.route("/admin/users/<username>/disable", methods=["POST"])
@page("admin")
def disable_user(username: str) -> Any:
    """Disable an account: it cannot sign in, and its open sessions end."""
    with services().uow() as uow:
        try:
            people.disable_user(uow, current_user(), username)
        except NotFoundError as error:
            flash(error.detail, "error")
            return redirect(url_for(".users"), code=303)
        uow.commit()
    flash(f"{username} is disabled: their sessions have ended", "success")
    return redirect(url_for(".users"), code=303)


@blp.route("/admin/keys", methods=["POST"])
@page("admin")
def create_key() -> Any:
    """Create an API key for an integration; its value is shown once."""
    form = request.form
    scope = [code.strip() for code in form.get("scope", "").split(",") if code.strip()]
    with services().uow() as uow:
        try:
            key, plaintext = access.create_api_key(uow, form.get("name", "").strip(),
                                                   form.get("role", ""),
                                                   form.get("channel", "").strip() or None,
                                                   scope)
            uow.commit()
        except InputValidationError as error:
            problems = {problem.field: problem.message for problem in error.problems}
            return _render(key_problems=problems, status=422)
        except AlreadyExistsError as error:
            return _render(key_problems={"name": error.detail}, status=422)
    return _render(created_key=(key.name, plaintext))


@blp.route("/admin/keys/<name>/revoke", methods=["POST"])
@page("admin")
def revoke_key(name: str) -> Any:
    """Revoke an API key; it stops working within seconds on every worker."""
    with services().uow() as uow:
        try:
            access.revoke_api_key(uow, name)
        except NotFoundError as error:
            flash(error.detail, "error")
            return redirect(url_for(".users"), code=303)
        uow.commit()
    flash(f"API key {name} is revoked", "success")
    return redirect(url_for(".users"), code=303)


def _render(status: int = 200, **shown: Any) -> Any:
    with services().uow() as uow:
        accounts, keys = people.list_users(uow), access.list_api_keys(uow)
        page_html = render_template("console/admin/users.html", users=accounts, keys=keys,
                                    people_roles=PEOPLE_ROLES, key_roles=ROLES,
                                    form=request.form, **shown)
    return page_html, status
