"""Errors of the service's own machinery (idempotency keys, the schema), not of the order."""

from __future__ import annotations

from engine.errors import OmsError


class IdempotencyKeyReusedError(OmsError):
    """The idempotency key was first used with a different request."""

    code = "idempotency_key_reused"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was already used with a different request; "
            "use a new key for a new request"
        )
        self.key = key


class IdempotencyInFlightError(OmsError):
    """The first request with this idempotency key has not finished yet."""

    code = "idempotency_in_flight"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"a request with Idempotency-Key {key!r} is still being processed; retry later"
        )
        self.key = key


class DatabaseBehindError(OmsError):
    """The database schema is older than the code."""

    code = "database_behind"
