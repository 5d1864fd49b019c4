"""People's accounts for the console: created with roles, passwords hashed with Argon2,
sign-ins checked and throttled, resolved to an actor that records their name."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from engine.actors import PEOPLE_ROLES, Actor
from engine.errors import (
    AlreadyExistsError,
    FieldProblem,
    InputValidationError,
    NotFoundError,
    SignInRefusedError,
)
from engine.ports import UnitOfWork
from engine.record import User, utcnow

MIN_PASSWORD_LENGTH = 10
# After this many failed sign-ins in a row, each further attempt waits, doubling from
# THROTTLE_BASE up to THROTTLE_MAX; a correct password during the wait is refused too.
FREE_ATTEMPTS = 5
THROTTLE_BASE = timedelta(seconds=30)
THROTTLE_MAX = timedelta(minutes=15)
_USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so that a wrong name costs what a
    wrong password does and the answer's timing does not tell which names exist (made on
    first use: not every process that imports this signs anyone in)."""
    return _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class NewUser:
    user: User
    password: str  # the one given, or the generated one: shown once, never stored


def create_user(uow: UnitOfWork, actor: Actor, username: str, roles: Iterable[str],
                display_name: str | None = None, password: str | None = None) -> NewUser:
    """Create a person's account; without a password, generate one.

    Raises:
        InputValidationError: a bad name, no or unknown roles, a short password.
        AlreadyExistsError: the username is taken.
    """
    username = username.strip().lower()
    wanted = sorted(set(roles))
    problems = []
    if not username or not set(username) <= _USERNAME_CHARS or len(username) > 64:
        problems.append(FieldProblem("username", "1-64 characters of a-z, 0-9, '.', '_', '-'"))
    if not wanted or not set(wanted) <= set(PEOPLE_ROLES):
        problems.append(FieldProblem("roles", f"one or more of {', '.join(PEOPLE_ROLES)}"))
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        problems.append(FieldProblem("password",
                                     f"at least {MIN_PASSWORD_LENGTH} characters"))
    if problems:
        raise InputValidationError(problems)
    if uow.session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AlreadyExistsError("user", username)
    plaintext = password if password is not None else secrets.token_urlsafe(12)
    user = User(username=username, display_name=(display_name or username).strip()[:200],
                roles=wanted, password_hash=_hasher.hash(plaintext), created_by=actor.label,
                failed_sign_ins=0, session_epoch=0)
    uow.session.add(user)
    uow.session.flush()
    return NewUser(user, plaintext)


def ensure_user(uow: UnitOfWork, actor: Actor, username: str, roles: Iterable[str],
                password: str, display_name: str | None = None) -> User:
    """Make sure `username` exists, enabled, with these roles and this password (demo)."""
    user = uow.session.scalar(select(User).where(User.username == username))
    if user is None:
        return create_user(uow, actor, username, roles, display_name, password).user
    user.roles, user.disabled_at, user.disabled_by = sorted(set(roles)), None, None
    if not _matches(user.password_hash, password):
        user.password_hash = _hasher.hash(password)
        user.session_epoch += 1
    return user


def list_users(uow: UnitOfWork) -> list[User]:
    """Return every account, enabled and disabled, by name."""
    return list(uow.session.scalars(select(User).order_by(User.username)))


def disable_user(uow: UnitOfWork, actor: Actor, username: str) -> User:
    """Stop an account from signing in, and end its open sessions; its past actions stay
    attributed to it."""
    user = _find(uow, username)
    if user.disabled_at is None:
        user.disabled_at, user.disabled_by = utcnow(), actor.label
        user.session_epoch += 1
    return user


def sign_in(uow: UnitOfWork, username: str, password: str,
            now: datetime | None = None) -> User:
    """Check a person's password and return their account.

    Raises:
        SignInRefusedError: wrong name or password, a disabled account (told apart from
            neither, so as not to tell which names exist), or too many failures in a row.
    """
    now = now or utcnow()
    user = uow.session.scalar(select(User).where(User.username == username.strip().lower())
                              .with_for_update())
    if user is None:
        _matches(_dummy_hash(), password)
        raise SignInRefusedError()
    if user.locked_until is not None and user.locked_until > now:
        raise SignInRefusedError(retry_after=user.locked_until - now)
    if user.disabled_at is not None or not _matches(user.password_hash, password):
        user.failed_sign_ins += 1
        if user.failed_sign_ins >= FREE_ATTEMPTS:
            wait = min(THROTTLE_BASE * 2 ** (user.failed_sign_ins - FREE_ATTEMPTS), THROTTLE_MAX)
            user.locked_until = now + wait
        raise SignInRefusedError()
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.failed_sign_ins, user.locked_until, user.last_sign_in_at = 0, None, now
    return user


def session_actor(uow: UnitOfWork, user_id: int, epoch: int) -> Actor | None:
    """Return the actor of a signed-in session, or None once the account was disabled or
    its password changed since the session began."""
    user = uow.session.get(User, user_id)
    if user is None or user.disabled_at is not None or user.session_epoch != epoch:
        return None
    return actor_of(user)


def actor_of(user: User) -> Actor:
    """Return the actor a person acts as: their name, and the highest of their roles."""
    roles = frozenset(user.roles)
    highest = next(role for role in reversed(PEOPLE_ROLES) if role in roles)
    return Actor(type="user", id=user.username, role=highest, roles=roles)


def _find(uow: UnitOfWork, username: str) -> User:
    user = uow.session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None:
        raise NotFoundError("user", username)
    return user


def _matches(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
