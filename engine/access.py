"""API keys: created with a role or integration kind and its binding, stored hashed, shown
once, resolved to an actor."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from sqlalchemy import select

from engine.actors import CARRIER, CHANNEL, EVERY, ROLES, WAREHOUSE, Actor
from engine.errors import AlreadyExistsError, FieldProblem, InputValidationError, NotFoundError
from engine.ports import UnitOfWork
from engine.record import ApiKey, utcnow

KEY_PREFIX = "oms_"


def hash_key(plaintext: str) -> str:
    """Return the stored form of a key; keys are long random tokens, so one SHA-256 suffices."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def create_api_key(uow: UnitOfWork, name: str, role: str, channel: str | None = None,
                   scope: Sequence[str] = ()) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext, which is never stored.

    A `channel` integration names its channel; a `warehouse` integration its location
    codes and a `carrier` integration its carrier codes, in `scope` ("*": every one).

    Raises:
        InputValidationError: unknown role, or a binding that does not fit the role.
        AlreadyExistsError: a key with this name exists.
    """
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    return _add_key(uow, name, role, channel, scope, plaintext), plaintext


def ensure_api_key(uow: UnitOfWork, name: str, role: str, plaintext: str) -> ApiKey:
    """Make sure the key called `name` has exactly this value and role (for automation).

    Raises:
        IntegrityError: a concurrent caller created it first; trying again finds it.
    """
    key = uow.session.scalar(select(ApiKey).where(ApiKey.name == name).with_for_update())
    if key is None:
        return _add_key(uow, name, role, None, (), plaintext)
    key.key_hash, key.display_prefix = hash_key(plaintext), plaintext[:10]
    key.role, key.channel, key.scope, key.revoked_at = role, None, None, None
    return key


def revoke_api_key(uow: UnitOfWork, name: str) -> ApiKey:
    """Stop a key from working; its past actions stay attributed to it."""
    key = uow.session.scalar(select(ApiKey).where(ApiKey.name == name))
    if key is None:
        raise NotFoundError("api key", name)
    key.revoked_at = utcnow()
    return key


def list_api_keys(uow: UnitOfWork) -> list[ApiKey]:
    """Return every key, oldest first."""
    return list(uow.session.scalars(select(ApiKey).order_by(ApiKey.id)))


def authenticate(uow: UnitOfWork, plaintext: str) -> Actor | None:
    """Return the actor behind a presented key, or None if it is unknown or revoked."""
    key = uow.session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(plaintext)))
    if key is None or key.revoked_at is not None:
        return None
    return Actor(type="api_key", id=key.name, role=key.role, channel=key.channel,
                 api_key_id=key.id, scope=frozenset(key.scope or ()))


def _add_key(uow: UnitOfWork, name: str, role: str, channel: str | None,
             scope: Sequence[str], plaintext: str) -> ApiKey:
    problems = _binding_problems(role, channel, scope)
    if not name.strip():
        problems.append(FieldProblem("name", "must not be blank"))
    if problems:
        raise InputValidationError(problems)
    if uow.session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise AlreadyExistsError("api key", name)
    key = ApiKey(name=name, role=role, channel=channel, scope=sorted(set(scope)) or None,
                 key_hash=hash_key(plaintext), display_prefix=plaintext[:10],
                 created_at=utcnow())
    uow.session.add(key)
    uow.session.flush()
    return key


def _binding_problems(role: str, channel: str | None,
                      scope: Sequence[str]) -> list[FieldProblem]:
    if role not in ROLES:
        return [FieldProblem("role", f"must be one of {', '.join(ROLES)}")]
    problems = []
    if role == CHANNEL and (channel is None or not channel.strip()):
        problems.append(FieldProblem("channel", "a channel integration acts for one channel: "
                                                "name it"))
    if role != CHANNEL and channel is not None:
        problems.append(FieldProblem("channel", "only channel integrations have a channel"))
    what = {WAREHOUSE: "location", CARRIER: "carrier"}.get(role)
    if what is not None and not any(code.strip() for code in scope):
        problems.append(FieldProblem(f"{what}s", f"a {role} integration is bound to one or "
                                                 f"more {what}s (or {EVERY!r}): name them"))
    if what is None and scope:
        problems.append(FieldProblem("scope", "only warehouse and carrier integrations are "
                                              "bound to locations or carriers"))
    return problems
